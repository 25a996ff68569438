/* Container tabs: one closeable tab per opened container, its panel filled by htmx from
 * the /ui detail partial (attributes on the panel template in containers.html: loaded
 * when the tab opens, on "Refresh" and on "archnest:refresh"), and the detail's actions.
 * The partial answers from inspect alone; its Stats tab is filled afterwards (stats.js). */
import { htmx } from "./libs.js";
import { apiUrl, describe, detailUrl, request, showStatus } from "./api.js";
import { ALL_HOSTS, keyOf, saveState, state } from "./state.js";
import { selectTab } from "./tabs.js";
import { reloadList } from "./list.js";
import { initDiff } from "./diff.js";
import { loadLogs, stopLogs } from "./logs.js";
import { installStats, loadStats } from "./stats.js";
import { installHistory } from "./stats_history.js";
import { installTimeline } from "./timeline.js";
import { stopTerminals } from "./terminal.js";

const openTabs = new Map(); // "host/ref" -> {host, ref, tab, wrap, panel}
// A panel being reloaded after an action: the result to show once the new detail is in.
const pendingResult = new WeakMap();
let seq = 0;
let tablist = null;
let workspace = null;

function stopWidgets(panel) {
  stopLogs(panel);
  stopTerminals(panel);
}

function entryOf(panel) {
  return [...openTabs.values()].find((entry) => entry.panel === panel) || null;
}

function currentSection(panel) {
  const sel = panel.querySelector('.subtabs [aria-selected="true"]');
  return sel ? sel.dataset.section : null;
}

/** Load an open container's detail again; result: [text, kind] to show after it. */
function reloadDetail(entry, result) {
  if (result) pendingResult.set(entry.panel, result);
  htmx.trigger(entry.panel, "archnest:refresh");
}

export function openTab(t, activate) {
  const key = keyOf(t);
  let entry = openTabs.get(key);
  if (!entry) {
    seq += 1;
    const wrap = document.getElementById("tab-template").content.firstElementChild.cloneNode(true);
    const tab = wrap.querySelector("[role=tab]");
    const close = wrap.querySelector(".tab-close");
    const label = t.name || t.ref;
    tab.id = `tab-c${seq}`;
    tab.dataset.key = key;
    tab.setAttribute("aria-controls", `panel-c${seq}`);
    tab.textContent = label;
    tab.title = `${label} on ${t.host} (Delete closes)`;
    close.dataset.key = key;
    close.setAttribute("aria-label", `Close ${label}`);
    const panel = document.getElementById("panel-template").content.firstElementChild.cloneNode(true);
    panel.id = `panel-c${seq}`;
    panel.setAttribute("aria-labelledby", tab.id);
    panel.setAttribute("hx-get", detailUrl(t.host, t.ref));
    tablist.appendChild(wrap);
    workspace.appendChild(panel);
    entry = { host: t.host, ref: t.ref, tab, wrap, panel };
    openTabs.set(key, entry);
    if (!state.tabs.some((x) => keyOf(x) === key)) state.tabs.push({ host: t.host, ref: t.ref });
    htmx.process(panel); // its "load" trigger fetches the detail
  }
  if (activate) selectTab(entry.tab, true);
  else saveState();
  return entry;
}

export function closeTab(key) {
  const entry = openTabs.get(key);
  if (!entry) return;
  const wasActive = entry.tab.getAttribute("aria-selected") === "true";
  const idx = [...tablist.querySelectorAll("[role=tab]")].indexOf(entry.tab);
  stopWidgets(entry.panel);
  entry.wrap.remove();
  entry.panel.remove();
  openTabs.delete(key);
  state.tabs = state.tabs.filter((x) => keyOf(x) !== key);
  if (wasActive) {
    const rest = tablist.querySelectorAll("[role=tab]");
    selectTab(rest[Math.min(idx, rest.length) - 1] || rest[0], true);
  } else {
    saveState();
  }
}

function flash(text) {
  document.getElementById("flash").textContent = text;
}

async function runAction(btn) {
  const entry = entryOf(btn.closest(".container-panel"));
  if (!entry) return;
  const art = btn.closest(".detail");
  const action = btn.dataset.action;
  const name = art.dataset.name;
  // The server words the question (core/_actions.html), e.g. that a running container
  // is stopped first, and says whether to force.
  if (btn.dataset.confirm && !window.confirm(btn.dataset.confirm)) return;
  for (const b of art.querySelectorAll(".btn-action")) b.disabled = true;
  showStatus(art.querySelector(".action-result"), `${action}: working\u2026`, "ok");
  const url = `${apiUrl(entry.host, entry.ref)}/${action}${btn.dataset.force ? "?force=1" : ""}`;
  try {
    await request(url, { method: "POST" });
  } catch (err) {
    // The reload brings back the buttons the container's state allows.
    reloadDetail(entry, [`${action} failed: ${describe(err)}`, "error"]);
    return;
  }
  const when = new Date().toLocaleTimeString();
  if (action === "remove") {
    closeTab(keyOf(entry));
    flash(`Removed ${name} at ${when}.`);
    reloadList();
    return;
  }
  if (entry.host === state.host || state.host === ALL_HOSTS) reloadList();
  reloadDetail(entry, [`${action} ${name}: done at ${when}.`, "ok"]);
}

function isPanel(el) {
  return el instanceof Element && el.classList.contains("container-panel");
}

export function initDetail() {
  tablist = document.getElementById("main-tabs");
  workspace = tablist.parentElement;
  initDiff();
  installStats(workspace);
  installHistory(workspace);
  installTimeline(workspace);

  document.addEventListener("click", (e) => {
    const opener = e.target.closest(".open-container");
    if (opener) {
      openTab({ host: opener.dataset.host, ref: opener.dataset.ref, name: opener.dataset.name }, true);
      return;
    }
    const close = e.target.closest(".tab-close");
    if (close) {
      closeTab(close.dataset.key);
      return;
    }
    const action = e.target.closest(".btn-action");
    if (action) runAction(action);
  });

  tablist.addEventListener("archnest:tabselect", (e) => {
    state.active = e.target.dataset.key || null;
    saveState();
  });
  tablist.addEventListener("archnest:tabclose", (e) => closeTab(e.target.dataset.key));

  // The first visit to a Logs tab shows the tail straight away.
  workspace.addEventListener("archnest:tabselect", (e) => {
    if (e.target.dataset.section !== "logs") return;
    const box = document.getElementById(e.target.getAttribute("aria-controls")).querySelector(".logs");
    if (box && !box.dataset.loaded) {
      box.dataset.loaded = "1";
      loadLogs(box);
    }
  });

  // A reload keeps the sub-tab that was open and ends the old detail's follows and
  // terminal sessions.
  workspace.addEventListener("htmx:beforeSwap", (e) => {
    const panel = e.detail.target;
    if (!isPanel(panel) || !e.detail.shouldSwap) return;
    panel.dataset.section = currentSection(panel) || "";
    stopWidgets(panel);
  });
  workspace.addEventListener("htmx:afterSwap", (e) => {
    const panel = e.detail.target;
    if (!isPanel(panel)) return;
    const entry = entryOf(panel);
    const art = panel.querySelector(".detail");
    if (entry && art && art.dataset.name) entry.tab.textContent = art.dataset.name;
    const section = panel.dataset.section;
    const sub = section && panel.querySelector(`.subtabs [data-section="${CSS.escape(section)}"]`);
    if (sub) selectTab(sub, false);
    const result = pendingResult.get(panel);
    pendingResult.delete(panel);
    if (result) showStatus(panel.querySelector(".action-result"), ...result);
    // The detail is shown; its stats sample follows on its own request.
    const stats = panel.querySelector(".stats-box");
    if (stats) loadStats(stats);
  });
  for (const type of ["htmx:responseError", "htmx:sendError"]) {
    workspace.addEventListener(type, (e) => {
      if (isPanel(e.detail.target)) stopWidgets(e.detail.target);
    });
  }

  // A quick action in the list changed a container: its open tab shows the new state.
  document.addEventListener("archnest:changed", (e) => {
    const entry = openTabs.get(keyOf(e.detail));
    if (entry) reloadDetail(entry);
  });
}

/** Open the tabs the saved state names and select the one that was active. */
export function restoreTabs() {
  const wantActive = state.active;
  for (const t of state.tabs.slice()) openTab(t, false);
  const active = wantActive && openTabs.get(wantActive);
  selectTab(active ? active.tab : document.getElementById("tab-containers"), false);
}
