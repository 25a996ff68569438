/* The Containers page: host selector, container list, closeable detail tabs, actions,
 * logs and terminal. The entry module: it wires the others together.
 *
 * Server-rendered partials come from /ui/... and are loaded by htmx from the attributes
 * in containers.html; actions and logs use the JSON API through api.js. Everything from
 * the server is inserted as autoescaped HTML or as text. */
import { errorFrom, RequestError, showFailure } from "./api.js";
import { initDetail, restoreTabs } from "./detail.js";
import { initHosts } from "./hosts.js";
import { initList, reloadList } from "./list.js";
import { initLive } from "./live.js";
import { installLogs } from "./logs.js";
import { readState, saveState, state } from "./state.js";
import { installTabs, selectTab } from "./tabs.js";
import { installTerminals } from "./terminal.js";

const root = document.getElementById("containers-app");

function showHtmxFailures() {
  // The partials answer a host's failure with an inline error (200); anything else that
  // fails (signed out meanwhile, a server error, no connection) is shown in the region
  // that was being loaded, the same way. A request replaced by a newer one is no error.
  document.body.addEventListener("htmx:beforeRequest", (e) => e.detail.target.setAttribute("aria-busy", "true"));
  document.body.addEventListener("htmx:afterRequest", (e) => e.detail.target.removeAttribute("aria-busy"));
  document.body.addEventListener("htmx:responseError", (e) => {
    const { target, xhr } = e.detail;
    showFailure(target, target.dataset.what || "this part of the page", errorFrom(xhr.status, xhr.responseText));
  });
  document.body.addEventListener("htmx:sendError", (e) => {
    const { target } = e.detail;
    const err = new RequestError(0, "unreachable", "the server could not be reached");
    showFailure(target, target.dataset.what || "this part of the page", err);
  });
}

function start() {
  readState(root.dataset.currentHost);
  const stopped = document.getElementById("show-stopped");
  stopped.checked = state.all;
  stopped.addEventListener("change", () => {
    state.all = stopped.checked;
    saveState();
  });

  showHtmxFailures();
  installTabs(document);
  installLogs(document);
  installTerminals(document);
  const hosts = initHosts({
    onSelect(byUser) {
      // A click shows the chosen host's list; the automatic first choice only loads it.
      if (byUser) selectTab(document.getElementById("tab-containers"), false);
      reloadList();
    },
  });
  initList({ currentHostLink: hosts.currentLink });
  initDetail();
  restoreTabs();
  saveState();
  reloadList();
  initLive();
}

// A module runs before DOMContentLoaded, and htmx sets up the page's hx- attributes when
// that event fires (its listener was added first, by its classic script): start after
// it, so the list's triggers are in place when the page first asks for content.
if (root) document.addEventListener("DOMContentLoaded", start, { once: true });
