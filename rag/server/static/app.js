// The chat page: streams answers from /v1/chat/completions (SSE over fetch) and shows cited passages.
"use strict";

const KEY = "rag.apiKey";
const $ = (id) => document.getElementById(id);
let messages = []; // the conversation sent as history: {role, content}

function el(tag, attrs = {}, text = "") {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text) node.textContent = text; // never innerHTML: document text is data, not markup
  return node;
}

function showKeyState() {
  const has = Boolean(sessionStorage.getItem(KEY));
  $("key-form").classList.toggle("hidden", has);
  $("key-status").classList.toggle("hidden", !has);
  $("ask-button").disabled = !has;
}

function setStatus(text, isError = false) {
  $("status").textContent = text;
  $("status").classList.toggle("error", isError);
}

function where(c) {
  return c.source + (c.page ? `, page ${c.page}` : "") + (c.section ? ` — ${c.section}` : "");
}

function showPassage(c) {
  $("passage-where").textContent = where(c);
  $("passage-quote").textContent = c.quote;
  const panel = $("passage");
  panel.classList.remove("hidden");
  panel.focus();
  panel.scrollIntoView({ block: "nearest" });
}

function renderFinal(box, final) {
  const { answer, citations = [], refused, refusal_reason: reason } = final;
  const text = box.querySelector(".text");
  text.textContent = "";
  if (refused) {
    box.classList.add("refused");
    text.appendChild(el("strong", {}, "No answer: "));
    text.appendChild(document.createTextNode(answer));
    if (reason) text.appendChild(el("span", { class: "reason" }, ` (${reason})`));
    return;
  }
  const byBlock = new Map(citations.map((c) => [c.block, c]));
  for (const part of answer.split(/(\[\d+\])/)) {
    const m = part.match(/^\[(\d+)\]$/);
    const c = m && byBlock.get(Number(m[1]));
    if (!c) {
      text.appendChild(document.createTextNode(part));
      continue;
    }
    const b = el("button", { type: "button", class: "cite", "aria-label": `Source ${m[1]}: ${c.source}` }, part);
    b.addEventListener("click", () => showPassage(c));
    text.appendChild(b);
  }
  if (citations.length) {
    box.appendChild(el("h3", {}, "Sources"));
    const list = el("ol", { class: "sources" });
    for (const c of citations) {
      const item = el("li", { value: String(c.block) });
      const b = el("button", { type: "button", class: "link" }, where(c));
      b.addEventListener("click", () => showPassage(c));
      item.appendChild(b);
      list.appendChild(item);
    }
    box.appendChild(list);
  }
}

async function errorMessage(res) {
  try {
    const body = await res.json();
    return body.error?.message || res.statusText;
  } catch {
    return res.statusText || `HTTP ${res.status}`;
  }
}

async function ask(question) {
  const key = sessionStorage.getItem(KEY);
  const log = $("log");
  log.appendChild(el("li", { class: "question" }, question));
  const box = el("li", { class: "answer" });
  box.appendChild(el("p", { class: "label" }, "Generated answer"));
  const text = el("p", { class: "text", "aria-live": "polite", "aria-busy": "true" });
  box.appendChild(text);
  log.appendChild(box);
  setStatus("Answering…");
  $("ask-button").disabled = true;
  let final = null;
  try {
    const res = await fetch("/v1/chat/completions", {
      method: "POST",
      headers: { "Content-Type": "application/json", Authorization: `Bearer ${key}` },
      body: JSON.stringify({ model: "rag", stream: true, messages: [...messages, { role: "user", content: question }] }),
    });
    if (!res.ok) {
      if (res.status === 401) {
        sessionStorage.removeItem(KEY);
        showKeyState();
      }
      throw new Error(await errorMessage(res));
    }
    const reader = res.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let cut;
      while ((cut = buffer.indexOf("\n\n")) >= 0) {
        const event = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        for (const line of event.split("\n")) {
          if (!line.startsWith("data:")) continue;
          const data = line.slice(5).trim();
          if (data === "[DONE]") continue;
          const chunk = JSON.parse(data);
          if (chunk.error) throw new Error(chunk.error.message);
          const delta = chunk.choices?.[0]?.delta?.content;
          if (delta) text.textContent += delta;
          if ("citations" in chunk) final = chunk;
        }
      }
    }
    if (!final) throw new Error("the answer stream ended early");
    renderFinal(box, final);
    messages.push({ role: "user", content: question }, { role: "assistant", content: final.answer });
    setStatus(final.refused ? "The system could not answer from the documents." : "Answer complete.");
  } catch (err) {
    box.classList.add("failed");
    text.textContent = `Error: ${err.message}`;
    setStatus(`Error: ${err.message}`, true);
  } finally {
    text.setAttribute("aria-busy", "false");
    $("ask-button").disabled = !sessionStorage.getItem(KEY);
  }
}

document.addEventListener("DOMContentLoaded", () => {
  showKeyState();
  $("key-form").addEventListener("submit", (e) => {
    e.preventDefault();
    sessionStorage.setItem(KEY, $("key-input").value.trim());
    $("key-input").value = "";
    showKeyState();
    $("question").focus();
  });
  $("forget-key").addEventListener("click", () => {
    sessionStorage.removeItem(KEY);
    showKeyState();
    $("key-input").focus();
  });
  $("ask-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const q = $("question").value.trim();
    if (!q || !sessionStorage.getItem(KEY)) return;
    $("question").value = "";
    ask(q);
  });
  $("question").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey) {
      e.preventDefault();
      $("ask-form").requestSubmit();
    }
  });
  $("new-chat").addEventListener("click", () => {
    messages = [];
    $("log").textContent = "";
    $("passage").classList.add("hidden");
    setStatus("New conversation.");
  });
  const close = () => $("passage").classList.add("hidden");
  $("passage-close").addEventListener("click", close);
  document.addEventListener("keydown", (e) => {
    if (e.key === "Escape") close();
  });
});
