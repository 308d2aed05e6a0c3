// The same measurement with Hugging Face's JavaScript tokenizer (@huggingface/tokenizers).
// Usage: node tokenizer_throughput.mjs REF_DIR TOKENIZER_DIR TEXTFILE
import { readFileSync } from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";

const [refDir, tokDir, textFile] = process.argv.slice(2);
const entry = path.resolve(refDir, "node_modules/@huggingface/tokenizers/dist/tokenizers.mjs");
const { Tokenizer } = await import(pathToFileURL(entry).href);
const tokenizer = new Tokenizer(
  JSON.parse(readFileSync(path.join(tokDir, "tokenizer.json"), "utf8")),
  JSON.parse(readFileSync(path.join(tokDir, "tokenizer_config.json"), "utf8")),
);
const text = readFileSync(textFile, "utf8");
const lines = text.split("\n").map((l) => l + "\n");
if (lines.length && lines[lines.length - 1] === "\n") lines.pop();
let tokens = 0;
const t0 = performance.now();
for (const l of lines) tokens += tokenizer.encode(l, { add_special_tokens: false }).ids.length;
const s = (performance.now() - t0) / 1000;
const mb = Buffer.byteLength(text) / 1e6;
console.log(JSON.stringify({ impl: "@huggingface/tokenizers (JS)", mb: +mb.toFixed(2), seconds: +s.toFixed(3), mb_per_s: +(mb / s).toFixed(2), tokens }));
