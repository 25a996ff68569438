/* The log search page: GET /api/logs/search streams NDJSON (one match per line, then a
 * summary line). The body is read with a ReadableStream reader and parsed line by line
 * as it arrives, so results show while the search runs; Stop aborts the fetch, which
 * ends every reader on the server. Log text is inserted with textContent, never HTML. */

import { describe, errorFrom, request, showStatus } from "./api.js";

const form = document.getElementById("search-form");
const query = document.getElementById("search-q");
const queryError = document.getElementById("search-q-error");
const hostPicker = document.getElementById("search-hosts");
const stopButton = document.getElementById("search-stop");
const goButton = document.getElementById("search-go");
const status = document.getElementById("search-status");
const table = document.getElementById("search-results");
const body = table.querySelector("tbody");
// Rows are added in batches of at most this many per animation frame.
const ROWS_PER_FRAME = 200;

let controller = null;
let hostNames = new Map();

async function loadHosts() {
  try {
    const hosts = await request("/api/hosts?noprobe=1");
    hostNames = new Map(hosts.map((h) => [h.id, h.name]));
    for (const h of hosts) {
      if (!h.capabilities || !h.capabilities.logs) continue;
      const option = document.createElement("option");
      option.value = h.id;
      option.textContent = `${h.name} (${h.id})`;
      hostPicker.append(option);
    }
  } catch (err) {
    showStatus(status, `Could not load the hosts: ${describe(err)}`, "error");
  }
}

/** A datetime-local value (local time) as unix seconds, or "" when empty. */
function unixSeconds(value) {
  if (!value) return "";
  const ms = new Date(value).getTime();
  return Number.isNaN(ms) ? "" : String(Math.floor(ms / 1000));
}

function searchUrl() {
  const params = new URLSearchParams({ q: query.value });
  if (document.getElementById("search-regex").checked) params.set("regex", "1");
  if (document.getElementById("search-case").checked) params.set("case", "1");
  for (const option of hostPicker.selectedOptions) params.append("host", option.value);
  for (const name of document.getElementById("search-container").value.split(",")) {
    if (name.trim()) params.append("container", name.trim());
  }
  const project = document.getElementById("search-project").value.trim();
  if (project) params.set("project", project);
  const since = unixSeconds(document.getElementById("search-since").value);
  const until = unixSeconds(document.getElementById("search-until").value);
  if (since) params.set("since", since);
  if (until) params.set("until", until);
  const limit = document.getElementById("search-limit").value;
  if (limit) params.set("limit", limit);
  return `/api/logs/search?${params}`;
}

function cell(text, cls) {
  const td = document.createElement("td");
  td.textContent = text == null ? "" : String(text);
  if (cls) td.className = cls;
  return td;
}

function row(match) {
  const tr = document.createElement("tr");
  const host = hostNames.get(match.host_id) || match.host_id;
  tr.append(
    cell(host),
    cell(match.container),
    cell(match.ts),
    cell(match.stream),
    cell(match.text, "log-text"),
  );
  return tr;
}

function summaryText(s) {
  const counts = `${s.matched} matches in ${s.scanned.toLocaleString()} lines of ${s.containers} containers`;
  const errors = s.errors && s.errors.length
    ? `; ${s.errors.length} failed: ${s.errors.map((e) => `${e.container || e.host_id}: ${e.message}`).join("; ")}`
    : "";
  if (s.truncated) return `Stopped (${s.reason}): ${counts}${errors}`;
  return `Done: ${counts}${errors}`;
}

/** Reads the NDJSON body, calling onLine with each parsed object as it arrives. */
async function readLines(response, onLine) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let rest = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    rest += decoder.decode(value, { stream: true });
    let at = rest.indexOf("\n");
    while (at >= 0) {
      const line = rest.slice(0, at);
      rest = rest.slice(at + 1);
      if (line.trim()) onLine(JSON.parse(line));
      at = rest.indexOf("\n");
    }
  }
  if (rest.trim()) onLine(JSON.parse(rest));
}

function finish() {
  controller = null;
  stopButton.disabled = true;
  goButton.disabled = false;
  table.setAttribute("aria-busy", "false");
}

async function search() {
  if (controller) controller.abort();
  queryError.textContent = "";
  query.removeAttribute("aria-invalid");
  body.replaceChildren();
  controller = new AbortController();
  const mine = controller;
  stopButton.disabled = false;
  goButton.disabled = true;
  table.setAttribute("aria-busy", "true");
  showStatus(status, "Searching…");
  let pending = [];
  let shown = 0;
  let scheduled = false;
  const flush = () => {
    scheduled = false;
    const batch = pending.splice(0, ROWS_PER_FRAME);
    body.append(...batch.map(row));
    shown += batch.length;
    if (pending.length) schedule();
  };
  const schedule = () => {
    if (!scheduled) {
      scheduled = true;
      requestAnimationFrame(flush);
    }
  };
  let summary = null;
  try {
    const response = await fetch(searchUrl(), {
      credentials: "same-origin",
      headers: { Accept: "application/x-ndjson" },
      signal: mine.signal,
    });
    if (!response.ok) throw errorFrom(response.status, await response.text());
    await readLines(response, (obj) => {
      if (typeof obj.text === "string") {
        pending.push(obj);
        schedule();
        showStatus(status, `Searching… ${shown + pending.length} matches`);
      } else {
        summary = obj;
      }
    });
    flush();
    if (summary) showStatus(status, summaryText(summary), summary.errors.length ? "error" : "ok");
    else showStatus(status, "The search ended without its summary (connection cut).", "error");
  } catch (err) {
    if (err.name === "AbortError") {
      flush();
      showStatus(status, `Stopped: ${shown} matches shown.`);
    } else if (err.field === "q") {
      queryError.textContent = describe(err);
      query.setAttribute("aria-invalid", "true");
      showStatus(status, describe(err), "error");
    } else {
      showStatus(status, describe(err), "error");
    }
  } finally {
    if (controller === mine) finish();
  }
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  search();
});
stopButton.addEventListener("click", () => {
  if (controller) controller.abort();
});
loadHosts();
