/* The container list of the chosen host (or of all hosts). htmx loads it from the
 * attributes on #container-list (at start, on "Refresh", when "Show stopped" changes, and
 * on "archnest:load"); this module points the request at the chosen host, filters the
 * rows and runs the rows' quick actions. A row is never redrawn here: after an action
 * its cells are taken from the server's list partial again (core/_container_table.html
 * and the one table of actions in core/_actions.html). */
import { htmx } from "./libs.js";
import { apiUrl, describe, listUrl, request, showStatus } from "./api.js";
import { state } from "./state.js";

let listEl = null;
let requested = ""; // what the list's latest request asked for

function wanted() {
  return `${listUrl(state.host)} ${document.getElementById("show-stopped").checked}`;
}

/** Load the list of the chosen host again, unless that very list is on its way: a newer
 * request replaces one in flight (hx-sync), and htmx reports each request it aborts as
 * an error, so a click on the host chosen automatically a moment before sends nothing. */
export function reloadList() {
  if (!listEl || !state.host) return;
  if (listEl.classList.contains("htmx-request") && requested === wanted()) return;
  htmx.trigger(listEl, "archnest:load");
}

export function initList({ currentHostLink }) {
  listEl = document.getElementById("container-list");
  const filterEl = document.getElementById("container-filter");
  const titleEl = document.getElementById("list-title");

  function applyFilter() {
    const words = filterEl.value.trim().toLowerCase().split(/\s+/).filter(Boolean);
    const rows = listEl.querySelectorAll("tbody tr");
    let shown = 0;
    for (const tr of rows) {
      // State and status change with the quick actions: read them live.
      const status = tr.querySelector(".col-status");
      const hay = [tr.dataset.search, tr.dataset.searchHost, tr.dataset.state, status && status.textContent.toLowerCase()]
        .filter(Boolean)
        .join(" ");
      const ok = words.every((w) => hay.includes(w));
      tr.hidden = !ok;
      if (ok) shown++;
    }
    const count = listEl.querySelector(".shown-count");
    if (count) count.textContent = String(shown);
    const none = listEl.querySelector(".no-match");
    if (none) none.hidden = shown !== 0 || rows.length === 0;
  }

  // The element's hx-get names no host: the request goes to the chosen one, or nowhere
  // until one is chosen. "Show stopped" adds all=1 itself (hx-include).
  listEl.addEventListener("htmx:configRequest", (e) => {
    if (e.target !== listEl) return;
    if (!state.host) {
      e.preventDefault();
      return;
    }
    e.detail.path = listUrl(state.host);
    requested = wanted();
  });

  listEl.addEventListener("htmx:afterSwap", (e) => {
    if (e.detail.target !== listEl) return;
    const named = listEl.querySelector(".host-summary") || currentHostLink();
    titleEl.textContent = named
      ? named.dataset.hostName + (named.dataset.source ? ` \u00b7 ${named.dataset.source}` : "")
      : state.host;
    applyFilter();
  });

  listEl.addEventListener("click", (e) => {
    const btn = e.target.closest(".row-action");
    if (btn) runRowAction(btn, applyFilter);
  });
  filterEl.addEventListener("input", applyFilter);
}

async function runRowAction(btn, applyFilter) {
  const tr = btn.closest("tr");
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
  try {
    await refreshRow(tr);
  } catch (err) {
    for (const b of buttons) b.disabled = false;
    if (outcome[1] === "ok") outcome = [`${action}: done; the row could not be refreshed: ${describe(err)}`, "error"];
  }
  showStatus(tr.querySelector(".row-result"), ...outcome);
  if (focusAt >= 0) {
    const again = tr.querySelectorAll(".row-action")[focusAt];
    if (again) again.focus();
  }
  applyFilter();
  document.dispatchEvent(new CustomEvent("archnest:changed", { detail: { host, ref } }));
}

/** Replace the row's data-cell cells by those the server renders now (from its host's
 * list, stopped ones included, so a container just stopped is still there). */
async function refreshRow(tr) {
  // Accepting anything, as htmx does: signed out meanwhile is then the API's 401 error,
  // not a redirect to the sign-in page.
  const html = await request(`${listUrl(tr.dataset.host)}?all=1`, { accept: "*/*" });
  const doc = new DOMParser().parseFromString(html, "text/html");
  const failure = doc.querySelector(".host-failure .error-message");
  if (failure) throw new Error(failure.textContent);
  const fresh = [...doc.querySelectorAll("tbody tr")].find((r) => r.dataset.ref === tr.dataset.ref);
  if (!fresh) throw new Error("the container is no longer listed");
  tr.dataset.state = fresh.dataset.state;
  tr.dataset.search = fresh.dataset.search;
  for (const cell of fresh.querySelectorAll("[data-cell]")) {
    const old = tr.querySelector(`[data-cell="${cell.dataset.cell}"]`);
    if (old) old.replaceWith(document.importNode(cell, true));
  }
}
