/* The Timeline tab of a container: its state changes (start, die with the exit code,
 * restart, OOM kill, health), newest first, from GET .../timeline. Loaded when the tab
 * opens and on Refresh; the text goes in as text, never as markup. */
import { describe, request, showStatus } from "./api.js";

const loads = new WeakMap(); // box -> number of the latest request

const WORDS = {
  start: "Started",
  die: "Exited",
  restart: "Restarted",
  oom: "Killed: out of memory",
  health: "Health",
};

function detail(entry) {
  if (entry.event === "die") return entry.exit_code === null ? "" : `exit code ${entry.exit_code}`;
  if (entry.event === "health") return entry.health || "";
  return "";
}

function cell(row, text, cls) {
  const td = document.createElement("td");
  if (cls) td.className = cls;
  td.textContent = text;
  row.append(td);
  return td;
}

async function loadTimeline(box) {
  const seq = (loads.get(box) || 0) + 1;
  loads.set(box, seq);
  const status = box.querySelector(".timeline-status");
  const table = box.querySelector(".timeline-table");
  box.setAttribute("aria-busy", "true");
  showStatus(status, "Loading the timeline\u2026");
  try {
    const entries = await request(box.dataset.timelineUrl);
    if (seq !== loads.get(box)) return;
    const body = table.querySelector("tbody");
    body.replaceChildren();
    for (const entry of entries) {
      const row = document.createElement("tr");
      row.dataset.event = entry.event;
      const when = cell(row, new Date(entry.t).toLocaleString());
      when.title = entry.t;
      const failed = (entry.event === "die" && entry.exit_code !== 0) || entry.event === "oom";
      const unhealthy = entry.event === "health" && entry.health === "unhealthy";
      cell(row, WORDS[entry.event] || entry.event, failed || unhealthy ? "timeline-bad" : "");
      cell(row, detail(entry));
      body.append(row);
    }
    table.hidden = entries.length === 0;
    showStatus(
      status,
      entries.length
        ? `${entries.length} change(s), newest first.`
        : "No state changes recorded yet for this container.",
    );
  } catch (err) {
    if (seq !== loads.get(box)) return;
    showStatus(status, `Timeline failed: ${describe(err)}`, "error");
  } finally {
    if (seq === loads.get(box)) box.removeAttribute("aria-busy");
  }
}

export function installTimeline(root) {
  root.addEventListener("click", (e) => {
    const refresh = e.target.closest(".timeline-refresh");
    if (refresh) loadTimeline(refresh.closest(".timeline-box"));
  });
  // Selected by a click, the keyboard or a restored tab: load it each time it shows.
  root.addEventListener("archnest:tabselect", (e) => {
    const tab = e.target;
    if (!(tab instanceof Element) || !tab.matches('[role="tab"][id$="-t-timeline"]')) return;
    const panel = document.getElementById(tab.getAttribute("aria-controls") || "");
    const box = panel && panel.querySelector(".timeline-box");
    if (box) loadTimeline(box);
  });
}
