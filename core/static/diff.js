/* Compare two containers (GET /api/diff): pick them with the "Compare" box of their
 * rows (any hosts: the picks stay while another host's list is shown) or with
 * "Compare with…" in a container's tab, then "Compare" opens a tab that shows every
 * field side by side, the differences highlighted. Values are inserted as text; secret
 * env values arrive masked and only their verdict is shown. */
import { describe, enc, request } from "./api.js";
import { selectTab } from "./tabs.js";

const picked = new Map(); // "host/ref" -> {host, ref, name}, oldest first, at most 2
let seq = 0;

function keyOf(t) {
  return `${t.host}/${t.ref}`;
}

function label(t) {
  return `${t.name || t.ref} (${t.host})`;
}

function bar() {
  return document.getElementById("compare-bar");
}

function syncBoxes() {
  for (const box of document.querySelectorAll(".pick-compare")) {
    box.checked = picked.has(keyOf(box.dataset));
  }
}

function render(hint) {
  const el = bar();
  if (!el) return;
  const items = [...picked.values()];
  el.hidden = items.length === 0;
  const text = el.querySelector(".compare-picked");
  if (items.length === 2) text.textContent = `Compare ${label(items[0])} with ${label(items[1])}.`;
  else if (items.length === 1)
    text.textContent = hint || `${label(items[0])} picked: tick a second container, on any host.`;
  el.querySelector(".compare-go").disabled = items.length !== 2;
  syncBoxes();
}

function pick(t, on) {
  const key = keyOf(t);
  if (!on) picked.delete(key);
  else if (!picked.has(key)) {
    picked.set(key, { host: t.host, ref: t.ref, name: t.name || t.ref });
    while (picked.size > 2) picked.delete(picked.keys().next().value);
  }
}

function cell(tag, text, className) {
  const el = document.createElement(tag);
  if (className) el.className = className;
  el.textContent = text;
  return el;
}

function valueCell(value) {
  if (value === null || value === undefined) return cell("td", "not set", "muted");
  const td = document.createElement("td");
  const text = Array.isArray(value) ? (value.length ? value.join("\n") : "none") : String(value);
  td.appendChild(cell("code", text, "wrap"));
  return td;
}

const VERDICT = { true: ["same", "same"], false: ["differs", "differs"], null: ["cannot tell", "unknown"] };

function renderDiff(panel, body) {
  panel.textContent = "";
  const head = document.createElement("div");
  head.className = "diff-head";
  const differs = body.fields.filter((f) => f.same === false).length;
  head.appendChild(cell("h2", `${body.a.name} \u2194 ${body.b.name}`));
  head.appendChild(
    cell("p", `${differs} of ${body.fields.length} fields differ. A: ${body.a.host_id}, B: ${body.b.host_id}.`, "muted small diff-summary"),
  );
  const only = document.createElement("label");
  only.className = "toggle";
  const box = document.createElement("input");
  box.type = "checkbox";
  box.className = "diff-only";
  only.append(box, " Only differences");
  head.appendChild(only);
  panel.appendChild(head);

  const table = document.createElement("table");
  table.className = "kv diff-table";
  table.setAttribute("aria-label", `Differences between ${body.a.name} and ${body.b.name}`);
  const thead = table.createTHead().insertRow();
  for (const title of ["Field", `A: ${body.a.name}`, `B: ${body.b.name}`, "Result"]) {
    const th = cell("th", title);
    th.scope = "col";
    thead.appendChild(th);
  }
  const tbody = table.createTBody();
  for (const f of body.fields) {
    const [word, cls] = VERDICT[String(f.same)];
    const tr = tbody.insertRow();
    tr.className = `diff-row diff-${cls}`;
    tr.dataset.field = f.field;
    tr.appendChild(cell("th", f.field)).scope = "row";
    tr.append(valueCell(f.a), valueCell(f.b), cell("td", word, "diff-verdict"));
  }
  panel.appendChild(table);
  panel.appendChild(
    cell(
      "p",
      "Env values whose names look secret stay masked (****): they are compared on the server without being revealed. " +
        "\u201ccannot tell\u201d: the host masked them before sending (agent hosts).",
      "muted small",
    ),
  );
  box.addEventListener("change", () => {
    for (const tr of tbody.rows) tr.hidden = box.checked && !tr.classList.contains("diff-differs");
  });
}

async function openDiff(a, b) {
  seq += 1;
  const tablist = document.getElementById("main-tabs");
  const wrap = document.getElementById("tab-template").content.firstElementChild.cloneNode(true);
  const tab = wrap.querySelector("[role=tab]");
  const close = wrap.querySelector(".tab-close");
  const key = `diff:${seq}`;
  const title = `${a.name} \u2194 ${b.name}`;
  tab.id = `tab-d${seq}`;
  tab.dataset.key = key;
  tab.dataset.diff = "1";
  tab.setAttribute("aria-controls", `panel-d${seq}`);
  tab.textContent = title;
  tab.title = `Compare ${label(a)} with ${label(b)} (Delete closes)`;
  close.dataset.key = key;
  close.dataset.diff = "1";
  close.setAttribute("aria-label", `Close ${title}`);
  const panel = document.createElement("div");
  panel.className = "tabpanel diff-panel";
  panel.id = `panel-d${seq}`;
  panel.setAttribute("role", "tabpanel");
  panel.setAttribute("aria-labelledby", tab.id);
  panel.tabIndex = 0;
  panel.hidden = true;
  panel.appendChild(cell("p", "Comparing\u2026", "muted loading"));
  tablist.appendChild(wrap);
  tablist.parentElement.appendChild(panel);
  selectTab(tab, true);
  const url = `/api/diff?a=${enc(keyOf(a))}&b=${enc(keyOf(b))}`;
  try {
    renderDiff(panel, await request(url));
  } catch (err) {
    panel.textContent = "";
    panel.appendChild(cell("p", `The comparison failed: ${describe(err)}`, "error-message"));
  }
}

function closeDiff(key) {
  const tab = document.querySelector(`#main-tabs [data-key="${CSS.escape(key)}"]`);
  if (!tab) return;
  const wasActive = tab.getAttribute("aria-selected") === "true";
  document.getElementById(tab.getAttribute("aria-controls"))?.remove();
  tab.closest(".tab-wrap").remove();
  if (wasActive) selectTab(document.getElementById("tab-containers"), true);
}

export function initDiff() {
  document.addEventListener("change", (e) => {
    const box = e.target.closest && e.target.closest(".pick-compare");
    if (!box) return;
    pick(box.dataset, box.checked);
    render();
  });
  document.addEventListener("click", (e) => {
    const fromDetail = e.target.closest(".detail-compare");
    if (fromDetail) {
      picked.clear();
      pick(fromDetail.dataset, true);
      render(`Pick a container to compare with ${label(fromDetail.dataset)}: tick its box, on any host.`);
      selectTab(document.getElementById("tab-containers"), true);
      return;
    }
    if (e.target.closest(".compare-go")) {
      const [a, b] = picked.values();
      if (a && b) openDiff(a, b);
      return;
    }
    if (e.target.closest(".compare-clear")) {
      picked.clear();
      render();
      return;
    }
    const close = e.target.closest(".tab-close[data-diff]");
    if (close) closeDiff(close.dataset.key);
  });
  document.getElementById("main-tabs").addEventListener("archnest:tabclose", (e) => {
    if (e.target.dataset.diff) closeDiff(e.target.dataset.key);
  });
  // A list loaded again (another host, a refresh) shows which of its rows are picked.
  document.addEventListener("htmx:afterSwap", (e) => {
    if (e.detail.target.id === "container-list") syncBoxes();
  });
}
