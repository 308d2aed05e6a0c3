#include "serve/web_page.h"

namespace zephyr::serve {

// One self-contained page (no CDN, no build step): it talks to this server's
// /v1/chat/completions with stream: true and renders the SSE deltas as they arrive.
const char* const kWebChatPage = R"HTML(<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>zephyr chat</title>
<style>
  :root { --fg: #1d1d1f; --muted: #6e6e73; --line: #d2d2d7; --user: #e8f0fe; --bot: #f5f5f7; --accent: #3367d6; }
  * { box-sizing: border-box; }
  body { margin: 0; font: 15px/1.5 system-ui, sans-serif; color: var(--fg); display: flex; height: 100vh; }
  aside { width: 280px; padding: 16px; border-right: 1px solid var(--line); overflow-y: auto; }
  main { flex: 1; display: flex; flex-direction: column; min-width: 0; }
  h1 { font-size: 18px; margin: 0 0 12px; }
  label { display: block; font-size: 13px; color: var(--muted); margin-top: 12px; }
  input, textarea, select { width: 100%; font: inherit; padding: 6px 8px; border: 1px solid var(--line); border-radius: 6px; }
  #log { flex: 1; overflow-y: auto; padding: 16px; }
  .msg { max-width: 80ch; margin: 0 0 12px; padding: 10px 12px; border-radius: 10px; white-space: pre-wrap; word-wrap: break-word; }
  .user { background: var(--user); margin-left: auto; }
  .assistant { background: var(--bot); }
  .note { color: var(--muted); font-size: 13px; }
  form { display: flex; gap: 8px; padding: 12px 16px; border-top: 1px solid var(--line); }
  form textarea { flex: 1; resize: none; height: 60px; }
  button { font: inherit; padding: 0 16px; border: 0; border-radius: 6px; background: var(--accent); color: white; cursor: pointer; }
  button:disabled { opacity: .4; cursor: default; }
  #stop { background: #c5221f; }
</style>
</head>
<body>
<aside>
  <h1>zephyr chat</h1>
  <div class="note" id="model">model: …</div>
  <div id="adapters" hidden><label for="pick">Model or adapter</label><select id="pick"></select></div>
  <label for="system">System prompt</label>
  <textarea id="system" rows="4" placeholder="You are a helpful assistant."></textarea>
  <label for="temperature">Temperature</label>
  <input id="temperature" type="number" min="0" max="2" step="0.05" value="0.7">
  <label for="top_p">Top-p</label>
  <input id="top_p" type="number" min="0.01" max="1" step="0.01" value="0.95">
  <label for="top_k">Top-k</label>
  <input id="top_k" type="number" min="0" step="1" value="50">
  <label for="max_tokens">Max tokens</label>
  <input id="max_tokens" type="number" min="1" step="1" value="512">
  <label for="seed">Seed (empty: random)</label>
  <input id="seed" type="number" step="1">
  <label for="key">API key (if the server needs one)</label>
  <input id="key" type="password" autocomplete="off">
  <p><button type="button" id="clear">New conversation</button></p>
</aside>
<main>
  <div id="log"></div>
  <form id="form">
    <textarea id="input" placeholder="Type a message; Enter sends, Shift+Enter starts a new line"></textarea>
    <button type="submit" id="send">Send</button>
    <button type="button" id="stop" disabled>Stop</button>
  </form>
</main>
<script>
const $ = (id) => document.getElementById(id);
let history = [], controller = null;
$("key").value = localStorage.getItem("zephyr-key") || "";
$("key").onchange = () => localStorage.setItem("zephyr-key", $("key").value);
const headers = () => Object.assign({"Content-Type": "application/json"},
  $("key").value ? {"Authorization": "Bearer " + $("key").value} : {});
// The base, then the LoRA adapters served beside it (if any): the picked one is the request's model.
fetch("/v1/models", {headers: headers()}).then(r => r.json()).then(j => {
  $("model").textContent = "model: " + j.data[0].id;
  if (j.data.length < 2) return;
  for (const m of j.data) $("pick").add(new Option(m.parent ? m.id + " (LoRA on " + m.parent + ")" : m.id, m.id));
  $("adapters").hidden = false;
}).catch(() => {});

function bubble(role, text) {
  const div = document.createElement("div");
  div.className = "msg " + role;
  div.textContent = text;
  $("log").appendChild(div);
  $("log").scrollTop = $("log").scrollHeight;
  return div;
}

async function send(text) {
  history.push({role: "user", content: text});
  bubble("user", text);
  const out = bubble("assistant", "");
  const messages = ($("system").value.trim() ? [{role: "system", content: $("system").value}] : []).concat(history);
  const body = {messages, stream: true, temperature: +$("temperature").value, top_p: +$("top_p").value,
                top_k: +$("top_k").value, max_tokens: +$("max_tokens").value};
  if ($("seed").value !== "") body.seed = +$("seed").value;
  if (!$("adapters").hidden) body.model = $("pick").value;
  controller = new AbortController();
  $("send").disabled = true; $("stop").disabled = false;
  let answer = "";
  try {
    const r = await fetch("/v1/chat/completions", {method: "POST", headers: headers(), body: JSON.stringify(body), signal: controller.signal});
    if (!r.ok) { const j = await r.json(); throw new Error(j.error ? j.error.message : r.statusText); }
    const reader = r.body.getReader(), dec = new TextDecoder();
    let buf = "";
    for (;;) {
      const {value, done} = await reader.read();
      if (done) break;
      buf += dec.decode(value, {stream: true});
      let cut;
      while ((cut = buf.indexOf("\n\n")) >= 0) {
        const event = buf.slice(0, cut); buf = buf.slice(cut + 2);
        if (!event.startsWith("data: ")) continue;
        const data = event.slice(6);
        if (data === "[DONE]") continue;
        const delta = JSON.parse(data).choices[0]?.delta?.content;
        if (delta) { answer += delta; out.textContent = answer; $("log").scrollTop = $("log").scrollHeight; }
      }
    }
  } catch (e) {
    if (e.name !== "AbortError") { out.classList.add("note"); out.textContent = answer + " [error: " + e.message + "]"; }
    else out.textContent = answer + " [stopped]";
  }
  history.push({role: "assistant", content: answer});
  controller = null;
  $("send").disabled = false; $("stop").disabled = true;
  $("input").focus();
}

$("form").onsubmit = (ev) => { ev.preventDefault(); const t = $("input").value.trim(); if (!t || controller) return; $("input").value = ""; send(t); };
$("input").onkeydown = (ev) => { if (ev.key === "Enter" && !ev.shiftKey) { ev.preventDefault(); $("form").requestSubmit(); } };
$("stop").onclick = () => controller && controller.abort();
$("clear").onclick = () => { history = []; $("log").innerHTML = ""; };
</script>
</body>
</html>
)HTML";

}  // namespace zephyr::serve
