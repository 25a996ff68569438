/* The Stats tab of a container's detail. The detail answers from inspect alone and
 * renders at once; the sample comes from GET .../stats (a second or two on docker and
 * ssh hosts: the CPU share needs two readings), fetched when the detail opens and on
 * the tab's "Refresh". Values are inserted as text. */
import { describe, request, showStatus } from "./api.js";

const UNITS = ["B", "KiB", "MiB", "GiB", "TiB"];
// Per stats box: the number of the latest request (only the latest may fill the box).
const loads = new WeakMap();

/** Bytes as the server's human_bytes filter writes them (core/ui_format.py). */
export function humanBytes(value) {
  if (value === null || value === undefined) return "\u2013";
  let size = Number(value);
  for (const unit of UNITS) {
    if (Math.abs(size) < 1024 || unit === UNITS[UNITS.length - 1]) {
      return unit === "B" ? `${size.toFixed(0)} B` : `${size.toFixed(1)} ${unit}`;
    }
    size /= 1024;
  }
  return `${size.toFixed(1)} TiB`;
}

function na() {
  const span = document.createElement("span");
  span.className = "na";
  span.textContent = "not available from this source";
  return span;
}

function pair(a, b) {
  return a === null || a === undefined ? na() : `${humanBytes(a)} / ${humanBytes(b)}`;
}

function fill(box, s) {
  const dd = (name) => box.querySelector(`[data-stat="${name}"]`);
  dd("cpu").replaceChildren(s.cpu_percent === null ? na() : `${s.cpu_percent.toFixed(2)} %`);
  const mem = dd("mem");
  if (s.mem_usage_bytes === null) {
    mem.replaceChildren(na());
  } else if (s.mem_limit_bytes) {
    const meter = document.createElement("meter");
    meter.min = 0;
    meter.max = s.mem_limit_bytes;
    meter.value = s.mem_usage_bytes;
    meter.setAttribute("aria-label", "Memory use");
    mem.replaceChildren(pair(s.mem_usage_bytes, s.mem_limit_bytes), meter);
  } else {
    mem.replaceChildren(humanBytes(s.mem_usage_bytes));
  }
  dd("net").replaceChildren(pair(s.net_rx_bytes, s.net_tx_bytes));
  dd("block").replaceChildren(pair(s.block_read_bytes, s.block_write_bytes));
  dd("pids").replaceChildren(s.pids === null ? na() : String(s.pids));
}

/** Take a sample into the box (the detail opening does this, and "Refresh"). */
export async function loadStats(box) {
  const seq = (loads.get(box) || 0) + 1;
  loads.set(box, seq);
  const status = box.querySelector(".stats-status");
  const facts = box.querySelector("dl.stats");
  box.setAttribute("aria-busy", "true");
  showStatus(status, "Taking a sample\u2026");
  try {
    const body = await request(box.dataset.statsUrl);
    if (seq !== loads.get(box)) return;
    const when = new Date(body.at).toLocaleTimeString();
    if (body.stats) {
      fill(box, body.stats);
      facts.hidden = false;
      showStatus(status, `One sample, taken at ${when}; \u201cRefresh\u201d takes another.`);
    } else {
      facts.hidden = true;
      showStatus(status, `No stats: the container is not running (checked at ${when}).`);
    }
  } catch (err) {
    if (seq !== loads.get(box)) return;
    facts.hidden = true;
    showStatus(status, `Stats failed: ${describe(err)}`, "error");
  } finally {
    if (seq === loads.get(box)) box.removeAttribute("aria-busy");
  }
}

export function installStats(root) {
  root.addEventListener("click", (e) => {
    if (!e.target.closest(".stats-refresh")) return;
    const box = e.target.closest(".stats-box");
    if (box) loadStats(box);
  });
}
