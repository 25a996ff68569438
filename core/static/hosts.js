/* The host selector. Its content is the /ui/hosts partial, loaded by htmx from the
 * attributes on #host-list (at start, every minute, on "Refresh"); this module marks the
 * chosen host and folds the list away at phone width. */
import { state, saveState } from "./state.js";

const phone = window.matchMedia("(max-width: 760px)");

export function initHosts({ onSelect }) {
  const listEl = document.getElementById("host-list");
  const toggle = document.getElementById("hosts-toggle");

  function setOpen(open) {
    toggle.setAttribute("aria-expanded", open ? "true" : "false");
    listEl.classList.toggle("collapsed", !open);
    updateToggle();
  }

  // The toggle names the current host at phone width.
  function updateToggle() {
    const current = listEl.querySelector(".host-link[aria-current]");
    const arrow = toggle.getAttribute("aria-expanded") === "true" ? " \u25b4" : " \u25be";
    toggle.textContent = (current ? current.dataset.hostName : "Hosts") + arrow;
  }

  function markCurrent() {
    for (const a of listEl.querySelectorAll(".host-link")) {
      if (a.dataset.host === state.host) a.setAttribute("aria-current", "true");
      else a.removeAttribute("aria-current");
    }
    updateToggle();
  }

  // byUser: a click (fold the picker on a phone), not the automatic first choice when
  // the URL names no host.
  function select(id, byUser) {
    state.host = id;
    markCurrent();
    if (byUser && phone.matches) setOpen(false);
    saveState();
    onSelect(byUser);
  }

  listEl.addEventListener("click", (e) => {
    const link = e.target.closest(".host-link");
    if (!link) return;
    e.preventDefault();
    select(link.dataset.host, true);
  });

  // Host statuses change (an engine goes down, an agent goes stale): htmx re-checks them
  // every minute, but not while the page is in the background once it has a list.
  listEl.addEventListener("htmx:configRequest", (e) => {
    if (document.visibilityState !== "visible" && listEl.querySelector(".host-groups")) e.preventDefault();
  });

  listEl.addEventListener("htmx:afterSwap", () => {
    markCurrent();
    if (state.host) return;
    const first = listEl.querySelector('.host-link[data-status="ok"]') || listEl.querySelector(".host-link");
    if (first) select(first.dataset.host, false);
  });

  toggle.addEventListener("click", () => setOpen(toggle.getAttribute("aria-expanded") !== "true"));
  setOpen(!(phone.matches && state.host));

  /** The name of the current host as the selector shows it, for the list's title. */
  return { currentLink: () => listEl.querySelector(".host-link[aria-current]") };
}
