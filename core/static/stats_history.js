/* The history charts of a container's Stats tab: CPU %, memory, network and block I/O
 * over 1 h / 24 h / 7 d / 30 d from GET .../stats/history, drawn with uPlot (vendored).
 * Loaded when the Stats tab opens (a hidden panel has no width to draw in) and when a
 * range is picked. Network and block I/O are cumulative counters: drawn as rates.
 * Colours come from the page's computed style, so dark mode is readable. */
import { uPlot } from "./libs.js";
import { describe, request, showStatus } from "./api.js";
import { humanBytes } from "./stats.js";

const loads = new WeakMap(); // box -> number of the latest request
const plots = new WeakMap(); // box -> the uPlot instances drawn in it

function rates(ts, values) {
  // Per second between points; a counter that went down (restart) gives no rate.
  const out = [null];
  for (let i = 1; i < ts.length; i += 1) {
    const dt = ts[i] - ts[i - 1];
    const a = values[i - 1];
    const b = values[i];
    out.push(a === null || b === null || dt <= 0 || b < a ? null : (b - a) / dt);
  }
  return out;
}

function charts(points) {
  const ts = points.map((p) => Date.parse(p.t) / 1000);
  const col = (name) => points.map((p) => (p[name] === undefined ? null : p[name]));
  const bytes = (_u, vals) => vals.map((v) => (v === null ? "" : humanBytes(v)));
  const perSecond = (_u, vals) => vals.map((v) => (v === null ? "" : `${humanBytes(v)}/s`));
  return [
    { title: "CPU %", data: [ts, col("cpu_percent")], series: ["CPU %"], values: null },
    { title: "Memory", data: [ts, col("mem_usage_bytes")], series: ["Memory"], values: bytes },
    {
      title: "Network in / out",
      data: [ts, rates(ts, col("net_rx_bytes")), rates(ts, col("net_tx_bytes"))],
      series: ["In", "Out"],
      values: perSecond,
    },
    {
      title: "Block read / write",
      data: [ts, rates(ts, col("block_read_bytes")), rates(ts, col("block_write_bytes"))],
      series: ["Read", "Write"],
      values: perSecond,
    },
  ];
}

const COLOURS = ["#3b82f6", "#f97316"];

function draw(box, points) {
  const holder = box.querySelector(".stats-charts");
  for (const plot of plots.get(box) || []) plot.destroy();
  holder.replaceChildren();
  const style = getComputedStyle(box);
  const ink = style.color;
  const grid = "rgba(128, 128, 128, 0.25)";
  const width = Math.max(280, holder.clientWidth || box.clientWidth || 640);
  const made = [];
  for (const chart of charts(points)) {
    const figure = document.createElement("figure");
    figure.className = "stats-chart";
    const caption = document.createElement("figcaption");
    caption.textContent = chart.title;
    figure.append(caption);
    holder.append(figure);
    const axis = { stroke: ink, grid: { stroke: grid }, ticks: { stroke: grid } };
    const opts = {
      width,
      height: 150,
      legend: { show: chart.series.length > 1 },
      cursor: { drag: { x: false, y: false } },
      series: [
        {},
        ...chart.series.map((label, i) => ({
          label,
          stroke: COLOURS[i],
          width: 1.5,
          spanGaps: false,
          value: chart.values ? (u, v) => chart.values(u, [v])[0] : undefined,
        })),
      ],
      axes: [{ ...axis }, { ...axis, size: 84, values: chart.values || undefined }],
    };
    made.push(new uPlot(opts, chart.data, figure));
  }
  plots.set(box, made);
}

/** Fetch and draw the selected range of the history box. */
export async function loadHistory(box, range) {
  const chosen = range || box.dataset.range || "1h";
  box.dataset.range = chosen;
  for (const button of box.querySelectorAll("[data-range]")) {
    button.setAttribute("aria-pressed", String(button.dataset.range === chosen));
  }
  const seq = (loads.get(box) || 0) + 1;
  loads.set(box, seq);
  const status = box.querySelector(".stats-history-status");
  box.setAttribute("aria-busy", "true");
  showStatus(status, "Loading the history\u2026");
  try {
    const url = `${box.dataset.historyUrl}?range=${encodeURIComponent(chosen)}`;
    const body = await request(url);
    if (seq !== loads.get(box)) return;
    if (!body.points.length) {
      for (const plot of plots.get(box) || []) plot.destroy();
      box.querySelector(".stats-charts").replaceChildren();
      showStatus(status, "No history yet: samples are taken while the container runs.");
      return;
    }
    draw(box, body.points);
    showStatus(status, `${body.points.length} points.`);
  } catch (err) {
    if (seq !== loads.get(box)) return;
    showStatus(status, `History failed: ${describe(err)}`, "error");
  } finally {
    if (seq === loads.get(box)) box.removeAttribute("aria-busy");
  }
}

export function installHistory(root) {
  root.addEventListener("click", (e) => {
    const button = e.target.closest(".stats-history [data-range]");
    if (button) {
      loadHistory(button.closest(".stats-history"), button.dataset.range);
      return;
    }
    // The Stats tab opened: draw now that the panel has a width.
    const tab = e.target.closest('[role="tab"][id$="-t-stats"]');
    if (!tab) return;
    const panel = document.getElementById(tab.getAttribute("aria-controls") || "");
    const box = panel && panel.querySelector(".stats-history");
    if (box) requestAnimationFrame(() => loadHistory(box));
  });
}
