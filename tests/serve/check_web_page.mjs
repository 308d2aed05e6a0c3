// The web chat page as a person uses it: Debian's chromium (headless, driven by playwright-core)
// opens `zephyr serve`'s page, sets a seed and greedy sampling, types a message, presses Enter,
// and sees the answer stream in; the answer equals the API's for the same request, and a second
// turn keeps the history. A screenshot is kept as a test artifact.
// usage: node check_web_page.mjs ZEPHYR MODEL.gguf REF_DIR (holding node_modules/playwright-core) SCREENSHOT.png
import { spawn } from "node:child_process";
import { createRequire } from "node:module";
import { existsSync, mkdirSync } from "node:fs";
import { dirname, join, resolve } from "node:path";

const [zephyr, model, refDir, screenshot] = process.argv.slice(2);
const chromiumPath = "/usr/bin/chromium";
if (!existsSync(chromiumPath)) {
  console.log("FAIL /usr/bin/chromium is missing (make deps installs Debian's chromium)");
  process.exit(1);
}
const { chromium } = createRequire(resolve(refDir, "package.json"))("playwright-core");

let failures = 0;
const check = (ok, what) => {
  console.log((ok ? "ok   " : "FAIL ") + what);
  if (!ok) failures++;
};

const server = spawn(zephyr, ["serve", "-m", model, "--port", "0", "--model-name", "smollm2"], { stdio: ["ignore", "ignore", "pipe"] });
const port = await new Promise((resolve, reject) => {
  let err = "";
  server.stderr.on("data", (d) => {
    err += d;
    const m = err.match(/http:\/\/127\.0\.0\.1:(\d+)/);
    if (m) resolve(+m[1]);
  });
  server.on("exit", (code) => reject(new Error(`the server exited (${code}): ${err}`)));
});
const base = `http://127.0.0.1:${port}`;
let browser;
try {
  browser = await chromium.launch({ executablePath: chromiumPath, headless: true, args: ["--no-sandbox"] });
  const page = await browser.newPage({ viewport: { width: 1100, height: 700 } });
  await page.goto(base + "/");
  check((await page.title()) === "zephyr chat", "the page loads from the binary");
  await page.waitForFunction(() => document.getElementById("model").textContent !== "model: …", null, { timeout: 10000 });
  check((await page.textContent("#model")) === "model: smollm2", "it names the served model (from /v1/models)");
  await page.fill("#system", "You are a friendly chatbot who always responds in the style of a pirate");
  await page.fill("#temperature", "0.7");
  await page.fill("#max_tokens", "40");
  await page.fill("#seed", "1");
  const question = "How many helicopters can a human eat in one sitting?";
  await page.fill("#input", question);
  await page.press("#input", "Enter");
  // Streaming: the answer bubble fills while the Stop button is enabled, then Send comes back.
  await page.waitForFunction(() => document.querySelectorAll(".msg.assistant").length === 1 &&
    document.querySelector(".msg.assistant").textContent.length > 0, null, { timeout: 60000 });
  await page.waitForFunction(() => !document.getElementById("send").disabled, null, { timeout: 60000 });
  const shown = await page.textContent(".msg.assistant");
  const body = {
    messages: [{ role: "system", content: "You are a friendly chatbot who always responds in the style of a pirate" },
      { role: "user", content: question }],
    temperature: 0.7, top_p: 0.95, top_k: 50, max_tokens: 40, seed: 1,
  };
  const api = await (await fetch(base + "/v1/chat/completions", { method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body) })).json();
  check(shown === api.choices[0].message.content, `the streamed answer is the API's: ${JSON.stringify(shown)}`);
  await page.fill("#input", "And a boat?");
  await page.press("#input", "Enter");
  await page.waitForFunction(() => document.querySelectorAll(".msg.assistant").length === 2 &&
    !document.getElementById("send").disabled && document.querySelectorAll(".msg.assistant")[1].textContent.length > 0,
    null, { timeout: 60000 });
  check((await page.locator(".msg.user").count()) === 2, "a second turn: both questions and answers stay on the page");
  // Stop: a long answer, stopped mid-stream from the page; the server's slot is free again.
  await page.fill("#max_tokens", "3000");
  await page.fill("#input", "Tell me a very long story about the sea.");
  await page.press("#input", "Enter");
  await page.waitForFunction(() => document.querySelectorAll(".msg.assistant").length === 3 &&
    document.querySelectorAll(".msg.assistant")[2].textContent.length > 20, null, { timeout: 60000 });
  await page.click("#stop");
  await page.waitForFunction(() => document.querySelectorAll(".msg.assistant")[2].textContent.endsWith("[stopped]"), null, { timeout: 10000 });
  let busy = -1;
  for (let i = 0; i < 100 && busy !== 0; i++) {
    const m = (await (await fetch(base + "/metrics")).text()).match(/^zephyr_slots_busy (\S+)$/m);
    busy = m ? +m[1] : -1;
    if (busy !== 0) await new Promise((r) => setTimeout(r, 50));
  }
  check(busy === 0, "Stop ends the streamed answer on the page and frees the server's slot");
  await page.fill("#max_tokens", "40");
  mkdirSync(dirname(screenshot), { recursive: true });
  await page.screenshot({ path: screenshot });
  check(existsSync(screenshot), `screenshot kept: ${screenshot}`);
} catch (e) {
  check(false, `browser session: ${e.message}`);
} finally {
  if (browser) await browser.close();
  server.kill("SIGINT");
}
if (failures) {
  console.log(`${failures} web page checks failed`);
  process.exit(1);
}
console.log("the web chat page works in chromium");
