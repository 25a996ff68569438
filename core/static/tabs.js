/* Tabs after the WAI-ARIA pattern: the main tab bar (Containers + one tab per open
 * container) and each detail's sub-tabs. Selecting a tab fires "archnest:tabselect" on
 * it (bubbling), so whoever owns a tab list reacts without this module knowing them. */

export function selectTab(tab, focus = false) {
  if (!tab) return;
  const list = tab.closest("[role=tablist]");
  for (const t of list.querySelectorAll("[role=tab]")) {
    const on = t === tab;
    t.setAttribute("aria-selected", on ? "true" : "false");
    t.tabIndex = on ? 0 : -1;
    const panel = document.getElementById(t.getAttribute("aria-controls"));
    if (panel) panel.hidden = !on;
  }
  if (focus) tab.focus();
  tab.dispatchEvent(new CustomEvent("archnest:tabselect", { bubbles: true }));
}

/** Clicks select tabs; arrow keys, Home and End move between them; Delete fires
 * "archnest:tabclose" on a tab that can be closed (data-key). */
export function installTabs(root) {
  root.addEventListener("click", (e) => {
    const tab = e.target.closest("[role=tab]");
    if (tab) selectTab(tab, false);
  });
  root.addEventListener("keydown", (e) => {
    const tab = e.target.closest && e.target.closest("[role=tab]");
    if (!tab) return;
    const tabs = [...tab.closest("[role=tablist]").querySelectorAll("[role=tab]")];
    const i = tabs.indexOf(tab);
    let next = null;
    if (e.key === "ArrowRight") next = tabs[(i + 1) % tabs.length];
    else if (e.key === "ArrowLeft") next = tabs[(i - 1 + tabs.length) % tabs.length];
    else if (e.key === "Home") next = tabs[0];
    else if (e.key === "End") next = tabs[tabs.length - 1];
    else if (e.key === "Delete" && tab.dataset.key) {
      e.preventDefault();
      tab.dispatchEvent(new CustomEvent("archnest:tabclose", { bubbles: true }));
      return;
    }
    if (next) {
      e.preventDefault();
      selectTab(next, true);
    }
  });
}
