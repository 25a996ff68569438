/* The Logs tab: tail N, timestamps, download (the whole log, streamed), live follow over EventSource (SSE from
 * GET .../logs?follow=1). Lines are inserted as text, never as HTML. */
import { describe, errorFrom, request, showStatus } from "./api.js";

const MAX_LOG_LINES = 5000;
// Per log box: the open EventSource, and the number of the latest Load (only the
// latest request may fill the output; an older, slower one is dropped).
const follows = new WeakMap();
const loads = new WeakMap();

function logUrl(box, extra = {}) {
  const tailEl = box.querySelector(".log-tail");
  const tail = Math.max(0, Math.min(100000, parseInt(tailEl.value, 10) || 0));
  tailEl.value = String(tail);
  const q = new URLSearchParams({ tail: String(tail) });
  if (box.querySelector(".log-ts").checked) q.set("timestamps", "1");
  for (const [k, v] of Object.entries(extra)) q.set(k, v);
  return `${box.dataset.logsUrl}?${q}`;
}

/** The Download link: the whole log streamed as a file (.../logs/download), with times
 * when the tab's Timestamps box is ticked. */
function updateDownload(box) {
  const q = box.querySelector(".log-ts").checked ? "?timestamps=1" : "";
  box.querySelector(".log-download").href = `${box.dataset.logsUrl}/download${q}`;
}

function appendLine(out, line) {
  const nearBottom = out.scrollHeight - out.scrollTop - out.clientHeight < 40;
  const span = document.createElement("span");
  span.className = line.stream === "stderr" ? "log-line stderr" : "log-line";
  span.textContent = `${line.ts ? `${line.ts} ` : ""}${line.text.replace(/\n$/, "")}\n`;
  out.appendChild(span);
  while (out.childNodes.length > MAX_LOG_LINES) out.removeChild(out.firstChild);
  if (nearBottom) out.scrollTop = out.scrollHeight;
}

function status(box, text, kind) {
  showStatus(box.querySelector(".log-status"), text, kind);
}

function stopFollow(box, why) {
  const source = follows.get(box);
  if (source) {
    source.close();
    follows.delete(box);
  }
  const btn = box.querySelector(".log-follow");
  btn.setAttribute("aria-pressed", "false");
  btn.textContent = "Follow";
  if (why) status(box, why);
}

/** Load the tail into the box (the first visit of a Logs tab does this). */
export async function loadLogs(box) {
  stopFollow(box);
  updateDownload(box);
  status(box, "Loading\u2026");
  const seq = (loads.get(box) || 0) + 1;
  loads.set(box, seq);
  try {
    const body = await request(logUrl(box));
    if (seq !== loads.get(box)) return;
    const out = box.querySelector(".log-output");
    out.textContent = "";
    for (const line of body.lines) appendLine(out, line);
    out.scrollTop = out.scrollHeight;
    status(box, `${body.lines.length} lines, loaded ${new Date().toLocaleTimeString()}.`);
  } catch (err) {
    if (seq === loads.get(box)) status(box, `Logs failed: ${describe(err)}`, "error");
  }
}

function toggleFollow(box) {
  if (follows.has(box)) {
    stopFollow(box, "Stopped following.");
    return;
  }
  loads.set(box, (loads.get(box) || 0) + 1); // a pending Load must not wipe the stream
  updateDownload(box);
  const out = box.querySelector(".log-output");
  out.textContent = "";
  const es = new EventSource(logUrl(box, { follow: "1" }));
  follows.set(box, es);
  const btn = box.querySelector(".log-follow");
  btn.setAttribute("aria-pressed", "true");
  btn.textContent = "Stop following";
  status(box, "Connecting\u2026");
  es.onopen = () => status(box, "Following live (new lines appear below).");
  es.onmessage = (e) => {
    try {
      appendLine(out, JSON.parse(e.data));
    } catch {
      // keep-alive or junk
    }
  };
  es.addEventListener("end", () => stopFollow(box, "The log stream ended (container stopped?)."));
  es.addEventListener("error", (e) => {
    // The server's "error" event carries the API's error JSON; a bare one is a lost
    // connection.
    let detail = "connection lost";
    if (e.data) {
      const err = errorFrom(0, e.data);
      detail = err.code.startsWith("http_") ? String(e.data) : describe(err);
    }
    stopFollow(box);
    status(box, `Follow stopped: ${detail}`, "error");
  });
}

/** Close every follow under root (a container tab closed or reloaded). */
export function stopLogs(root) {
  for (const box of root.querySelectorAll(".logs")) stopFollow(box);
}

export function installLogs(root) {
  root.addEventListener("click", (e) => {
    const box = e.target.closest(".logs");
    if (!box) return;
    if (e.target.closest(".log-load")) loadLogs(box);
    else if (e.target.closest(".log-follow")) toggleFollow(box);
  });
  root.addEventListener("change", (e) => {
    const box = e.target.closest(".logs");
    if (box) updateDownload(box);
  });
}
