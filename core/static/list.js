/* The container list of the chosen host (or of all hosts). htmx loads it from the
 * attributes on #container-list (at start, on "Refresh", when "Show stopped" changes, and
 * on "archnest:load"); this module points the request at the chosen host and runs the
 * rows' quick actions. A row is never redrawn here: after an action its cells are taken
 * from the server's list partial again (core/_container_table.html and the one table of
 * actions in core/_actions.html).
 *
 * The server filters, sorts and pages (core/listing.py): the browser only ever holds one
 * page. The filter box sends q (debounced; a newer request waits for one in flight and
 * the older answer is dropped), the sort headers and the pager send sort/order/page/size, and the
 * URL keeps them (state.list), so a reload or a link restores the view.
 *
 * For other modules (live.js): each row is tr[data-host][data-id] (host id, the
 * container's full id; data-ref is what the API takes), its state badge .state-badge;
 * call reloadList() to fetch the current page again when rows appear or disappear. */
import { htmx } from "./libs.js";
import { apiUrl, describe, listUrl, request, showStatus } from "./api.js";
import { LIST_KEYS, saveState, state } from "./state.js";
import { selectTab } from "./tabs.js";

const FILTER_DELAY_MS = 200;

let listEl = null;
let requested = ""; // what the list's latest request asked for
let scope = null; // host and "show stopped" of the latest request: a new one starts at page 1

function showStopped() {
  return document.getElementById("show-stopped").checked;
}

/** The list parameters the server gets (and the URL keeps); defaults are left out. */
function listParams() {
  const out = {};
  for (const k of LIST_KEYS) if (state.list[k]) out[k] = state.list[k];
  return out;
}

function wanted() {
  return `${listUrl(state.host)} ${showStopped()} ${new URLSearchParams(listParams())}`;
}

/** Load the list of the chosen host again. A request on its way is not aborted (htmx
 * reports each abort as an error): the newest one waits for it (hx-sync "queue last"),
 * and an answer to parameters changed meanwhile is not shown (htmx:beforeSwap). */
const FOCUSABLE = "a[href], button, input, select";

export function reloadList() {
  if (!listEl || !state.host) return;
  htmx.trigger(listEl, "archnest:load");
}

/** Change the list's parameters (page back to 1 unless given), keep them in the URL and
 * ask the server. */
function setList(changes) {
  Object.assign(state.list, { page: "" }, changes);
  if (state.list.page === "1") state.list.page = "";
  saveState();
  reloadList();
}

function isTyping(target) {
  return Boolean(target && target.closest && target.closest("input, textarea, select, [contenteditable]"));
}

export function initList({ currentHostLink }) {
  listEl = document.getElementById("container-list");
  const filterEl = document.getElementById("container-filter");
  const titleEl = document.getElementById("list-title");
  filterEl.value = state.list.q || "";
  let focusAfter = null; // the control to focus again once the new page is in

  // The element's hx-get names no host: the request goes to the chosen one, or nowhere
  // until one is chosen. "Show stopped" adds all=1 itself (hx-include).
  listEl.addEventListener("htmx:configRequest", (e) => {
    if (e.target !== listEl) return;
    if (!state.host) {
      e.preventDefault();
      return;
    }
    const now = `${state.host} ${showStopped()}`;
    if (scope !== null && scope !== now && state.list.page) {
      state.list.page = "";
      saveState();
    }
    scope = now;
    e.detail.path = listUrl(state.host);
    for (const [k, v] of Object.entries(listParams())) e.detail.parameters[k] = v;
    requested = wanted();
  });

  // A reload that brings exactly what is shown (live.js reloads on every event of the
  // host, most of them about rows on other pages) swaps nothing: the rows, the focus
  // and a quick action's result stay where they are.
  // Texts that change by themselves ("Up 5 seconds", "3 minutes ago") are updated in
  // place when nothing else changed.
  let shownHtml = null;
  let results = [];
  let rowFocus = null; // the focused control of a row, found again after a swap
  listEl.addEventListener("htmx:beforeSwap", (e) => {
    if (e.detail.target !== listEl) return;
    if (requested !== wanted()) {
      // Asked for other rows since (typing, a page): the newer request follows.
      e.detail.shouldSwap = false;
      return;
    }
    const html = e.detail.xhr.status === 200 ? steady(e.detail.serverResponse) : null;
    if (html !== null && html === shownHtml && listEl.querySelector(".host-summary")) {
      e.detail.shouldSwap = false;
      updateTexts(e.detail.serverResponse);
      return;
    }
    shownHtml = html;
    // A quick action's result stays beside its row through a reload.
    results = [...listEl.querySelectorAll("tr[data-id] .row-result:not(:empty)")].map((el) => {
      const tr = el.closest("tr");
      return { host: tr.dataset.host, id: tr.dataset.id, node: el.cloneNode(true) };
    });
    // So does the keyboard focus: a live reload must not drop a keyboard user's place
    // (the same row's control at the same position, "Stop" having become "Start").
    const active = document.activeElement;
    const activeRow = active && listEl.contains(active) ? active.closest("tr[data-id]") : null;
    rowFocus = activeRow
      ? {
          host: activeRow.dataset.host,
          id: activeRow.dataset.id,
          index: [...activeRow.querySelectorAll(FOCUSABLE)].indexOf(active),
        }
      : null;
  });

  listEl.addEventListener("htmx:afterSwap", (e) => {
    if (e.detail.target !== listEl) return;
    const named = listEl.querySelector(".host-summary") || currentHostLink();
    titleEl.textContent = named
      ? named.dataset.hostName + (named.dataset.source ? ` \u00b7 ${named.dataset.source}` : "")
      : state.host;
    for (const { host, id, node } of results) {
      const tr = listEl.querySelector(`tr[data-host="${CSS.escape(host)}"][data-id="${CSS.escape(id)}"]`);
      const slot = tr && tr.querySelector(".row-result");
      if (slot) slot.replaceWith(node);
    }
    results = [];
    if (rowFocus && rowFocus.index >= 0) {
      const sel = `tr[data-host="${CSS.escape(rowFocus.host)}"][data-id="${CSS.escape(rowFocus.id)}"]`;
      const tr = listEl.querySelector(sel);
      const again = tr && tr.querySelectorAll(FOCUSABLE)[rowFocus.index];
      if (again) again.focus();
    }
    rowFocus = null;
    // The server clamps a page past the end (rows went meanwhile): the URL follows.
    const pager = listEl.querySelector(".pager");
    const page = pager && pager.dataset.page !== "1" ? pager.dataset.page : "";
    if (state.list.page !== page) {
      state.list.page = page;
      saveState();
    }
    if (focusAfter) {
      const again = listEl.querySelector(focusAfter);
      const fallback = listEl.querySelector(".pager button:not(:disabled)");
      const target = again && !again.disabled ? again : fallback;
      if (target) target.focus();
      focusAfter = null;
    }
  });

  listEl.addEventListener("click", (e) => {
    const action = e.target.closest(".row-action");
    if (action) {
      runRowAction(action);
      return;
    }
    const sortBtn = e.target.closest(".sort-button");
    if (sortBtn) {
      const key = sortBtn.dataset.sort;
      const th = sortBtn.closest("th");
      const current = th.getAttribute("aria-sort");
      // The same column flips; another starts ascending (newest first for "created").
      let order = key === "created" ? "desc" : "asc";
      if (current) order = current === "ascending" ? "desc" : "asc";
      focusAfter = `.sort-button[data-sort="${key}"]`;
      setList({ sort: key, order });
      return;
    }
    const pageBtn = e.target.closest(".pager button[data-page]");
    if (pageBtn) {
      focusAfter = pageBtn.classList.contains("pager-next") ? ".pager-next" : ".pager-prev";
      setList({ page: pageBtn.dataset.page });
      return;
    }
    if (e.target.closest(".clear-filters")) {
      filterEl.value = "";
      setList({ q: "", project: "", state: "" });
    }
  });

  listEl.addEventListener("change", (e) => {
    const size = e.target.closest(".page-size");
    if (!size) return;
    focusAfter = ".page-size";
    setList({ size: size.value === "100" ? "" : size.value });
  });

  // Typing asks the server once the typing pauses; a newer request replaces the older.
  let timer = 0;
  filterEl.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(() => {
      const q = filterEl.value.trim();
      if (q !== (state.list.q || "")) setList({ q });
    }, FILTER_DELAY_MS);
  });
  filterEl.addEventListener("keydown", (e) => {
    // Escape leaves the box (a search field would clear itself instead).
    if (e.key !== "Escape") return;
    e.preventDefault();
    filterEl.blur();
  });

  // "/" anywhere but in a field focuses the filter, from any tab.
  document.addEventListener("keydown", (e) => {
    if (e.key !== "/" || e.ctrlKey || e.metaKey || e.altKey || e.defaultPrevented) return;
    if (isTyping(e.target)) return;
    e.preventDefault();
    const tab = document.getElementById("tab-containers");
    if (tab.getAttribute("aria-selected") !== "true") selectTab(tab, false);
    filterEl.focus();
    const end = filterEl.value.length; // typing goes on from the end of what is there
    filterEl.setSelectionRange(end, end);
  });
}

const STATUS_CELL = /(<td class="col-status" data-cell="status">)[^<]*(<\/td>)/g;
const TIME_TEXT = /(<time [^>]*>)[^<]*(<\/time>)/g;

/** The partial without the texts that change with the clock alone. */
function steady(html) {
  return html.replace(STATUS_CELL, "$1$2").replace(TIME_TEXT, "$1$2");
}

/** Same rows in the same order: take over only their status and time texts. */
function updateTexts(html) {
  const doc = new DOMParser().parseFromString(html, "text/html");
  const fresh = doc.querySelectorAll("tbody tr");
  const rows = listEl.querySelectorAll("tbody tr");
  fresh.forEach((tr, i) => {
    const row = rows[i];
    if (!row) return;
    const status = tr.querySelector('[data-cell="status"]');
    const old = row.querySelector('[data-cell="status"]');
    if (status && old && old.textContent !== status.textContent) old.textContent = status.textContent;
    const time = tr.querySelector("time");
    const was = row.querySelector("time");
    if (time && was && was.textContent !== time.textContent) was.textContent = time.textContent;
  });
}

/** The row of this container in the list as it is now: the list may have been loaded
 * again meanwhile (live.js, a refresh), leaving the row an action started on detached. */
function currentRow(tr) {
  if (tr.isConnected || !listEl) return tr;
  const { host, id } = tr.dataset;
  return listEl.querySelector(`tr[data-host="${CSS.escape(host)}"][data-id="${CSS.escape(id)}"]`) || tr;
}

async function runRowAction(btn) {
  let tr = btn.closest("tr");
  const { host, ref } = tr.dataset;
  const action = btn.dataset.action;
  const buttons = [...tr.querySelectorAll(".row-action")];
  // The same place keeps the focus although the cell is rendered anew ("Stop" turns
  // into "Start" under the keyboard).
  const focusAt = document.activeElement === btn ? buttons.indexOf(btn) : -1;
  for (const b of buttons) b.disabled = true;
  showStatus(tr.querySelector(".row-result"), `${action}\u2026`, "ok");
  let outcome = [`${action}: done`, "ok"];
  try {
    await request(`${apiUrl(host, ref)}/${action}`, { method: "POST" });
  } catch (err) {
    outcome = [`${action} failed: ${describe(err)}`, "error"];
  }
  tr = currentRow(tr);
  try {
    await refreshRow(tr);
  } catch (err) {
    for (const b of tr.querySelectorAll(".row-action")) b.disabled = false;
    if (outcome[1] === "ok") outcome = [`${action}: done; the row could not be refreshed: ${describe(err)}`, "error"];
  }
  tr = currentRow(tr);
  showStatus(tr.querySelector(".row-result"), ...outcome);
  if (focusAt >= 0) {
    const again = tr.querySelectorAll(".row-action")[focusAt];
    if (again) again.focus();
  }
  document.dispatchEvent(new CustomEvent("archnest:changed", { detail: { host, ref } }));
}

/** Replace the row's data-cell cells by those the server renders now: its host's list
 * narrowed to this one container (stopped ones included, so a container just stopped
 * is still there), whatever page or filter the table shows. */
async function refreshRow(tr) {
  const q = new URLSearchParams({ all: "1", q: `id=${tr.dataset.id}` });
  // Accepting anything, as htmx does: signed out meanwhile is then the API's 401 error,
  // not a redirect to the sign-in page.
  const html = await request(`${listUrl(tr.dataset.host)}?${q}`, { accept: "*/*" });
  const doc = new DOMParser().parseFromString(html, "text/html");
  const failure = doc.querySelector(".host-failure .error-message");
  if (failure) throw new Error(failure.textContent);
  const fresh = [...doc.querySelectorAll("tbody tr")].find((r) => r.dataset.id === tr.dataset.id);
  if (!fresh) throw new Error("the container is no longer listed");
  tr.dataset.state = fresh.dataset.state;
  for (const cell of fresh.querySelectorAll("[data-cell]")) {
    const old = tr.querySelector(`[data-cell="${cell.dataset.cell}"]`);
    if (old) old.replaceWith(document.importNode(cell, true));
  }
}
