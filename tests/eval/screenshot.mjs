// A screenshot of an SVG file in Debian's headless chromium (driven by playwright-core): the
// radar chart as a browser shows it, kept as a test artifact.
// usage: node screenshot.mjs REF_DIR (holding node_modules/playwright-core) FILE.svg OUT.png
import { createRequire } from "node:module";
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";

const [refDir, svg, out] = process.argv.slice(2);
const { chromium } = createRequire(resolve(refDir, "package.json"))("playwright-core");
const browser = await chromium.launch({ executablePath: "/usr/bin/chromium", args: ["--no-sandbox"] });
try {
  const page = await browser.newPage({ viewport: { width: 900, height: 620 } });
  await page.goto(pathToFileURL(resolve(svg)).href);
  const polygons = await page.locator("polygon.model").count();
  if (polygons < 1) throw new Error(`no model polygon rendered in ${svg}`);
  await page.screenshot({ path: out });
  console.log(`ok   ${svg}: ${polygons} polygons rendered, screenshot ${out}`);
} finally {
  await browser.close();
}
