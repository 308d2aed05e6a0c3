// The web chat page as a person uses it: Debian's chromium (headless, driven by playwright-core)
// opens `zephyr serve`'s page, sets a seed and greedy sampling, types a message, presses Enter,
// and sees the answer stream in; the answer equals the API's for the same request, and a second
// turn keeps the history; with a LoRA adapter served beside the model, picking it on the page gets
// the adapter's answer. A screenshot is kept as a test artifact.
// usage: node check_web_page.mjs ZEPHYR MODEL.gguf REF_DIR (holding node_modules/playwright-core) SCREENSHOT.png
import { spawn } from "node:child_process";
import { createRequire } from "node:module";
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
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

// A peft-format adapter for SmolLM2 (r 2 on every layer's q_proj and v_proj, random A and B), written
// as peft writes one: adapter_config.json and F32 tensors in adapter_model.safetensors.
function writeAdapter(dir) {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, "adapter_config.json"), JSON.stringify({ peft_type: "LORA", r: 2, lora_alpha: 2, bias: "none",
    target_modules: ["q_proj", "v_proj"], base_model_name_or_path: model }));
  let seed = 12345;
  const rand = () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648 - 0.5);
  const tensors = [];
  for (let l = 0; l < 30; l++)
    for (const [proj, out] of [["q_proj", 576], ["v_proj", 192]]) {
      const name = `base_model.model.model.layers.${l}.self_attn.${proj}.lora_`;
      tensors.push([name + "A.weight", [2, 576]], [name + "B.weight", [out, 2]]);
    }
  const header = {};
  let offset = 0;
  for (const [name, shape] of tensors) {
    const bytes = shape[0] * shape[1] * 4;
    header[name] = { dtype: "F32", shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  const head = Buffer.from(JSON.stringify(header));
  const data = new Float32Array(offset / 4).map(() => rand() * 0.3);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(head.length));
  writeFileSync(join(dir, "adapter_model.safetensors"), Buffer.concat([len, head, Buffer.from(data.buffer)]));
}
const adapterDir = join(mkdtempSync(join(tmpdir(), "zephyr-web-")), "pirate");
writeAdapter(adapterDir);

const server = spawn(zephyr, ["serve", "-m", model, "--port", "0", "--model-name", "smollm2", "--lora", "pirate=" + adapterDir],
  { stdio: ["ignore", "ignore", "pipe"] });
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
  // The adapter served beside the model: listed on the page, picked, answering as the API does for it.
  const options = await page.$$eval("#pick option", (os) => os.map((o) => o.value));
  check(JSON.stringify(options) === JSON.stringify(["smollm2", "pirate"]), `the page offers the model and its adapter: ${options}`);
  await page.selectOption("#pick", "pirate");
  await page.click("#clear");
  await page.fill("#input", question);
  await page.press("#input", "Enter");
  await page.waitForFunction(() => document.querySelectorAll(".msg.assistant").length === 1 &&
    !document.getElementById("send").disabled && document.querySelector(".msg.assistant").textContent.length > 0, null, { timeout: 60000 });
  const viaAdapter = await page.textContent(".msg.assistant");
  const apiAdapter = await (await fetch(base + "/v1/chat/completions", { method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ ...body, model: "pirate" }) })).json();
  check(viaAdapter === apiAdapter.choices[0].message.content && apiAdapter.model === "pirate" && viaAdapter !== shown,
    `picking the adapter gets its answer (not the base's): ${JSON.stringify(viaAdapter)}`);
  mkdirSync(dirname(screenshot), { recursive: true });
  await page.screenshot({ path: screenshot });
  check(existsSync(screenshot), `screenshot kept: ${screenshot}`);
} catch (e) {
  check(false, `browser session: ${e.message}`);
} finally {
  if (browser) await browser.close();
  server.kill("SIGINT");
  rmSync(dirname(adapterDir), { recursive: true, force: true });
}
if (failures) {
  console.log(`${failures} web page checks failed`);
  process.exit(1);
}
console.log("the web chat page works in chromium");
