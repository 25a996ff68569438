/* Live updates of the Containers page from GET /api/events (one EventSource per tab).
 *
 * A container event patches its row at once (state badge, status text, data-state) and
 * then reloads the list shortly after (debounced), which brings the row's action buttons,
 * new rows and removed rows; a host event reloads the host selector. After a reconnect
 * ("hello" again) both are reloaded: events sent while the stream was down are lost.
 * Rows are found by data-host + data-id (core/_container_table.html). */
import { htmx } from "./libs.js";
import { reloadList } from "./list.js";
import { state } from "./state.js";

const RELOAD_MS = 400;

function debounce(fn, ms) {
  let timer = 0;
  return () => {
    clearTimeout(timer);
    timer = setTimeout(fn, ms);
  };
}

function shownHost(hostId) {
  return state.host === "all" || state.host === hostId;
}

function patchRow(data) {
  const list = document.getElementById("container-list");
  if (!list) return false;
  const rows = list.querySelectorAll("tr[data-id]");
  let found = false;
  for (const tr of rows) {
    if (tr.dataset.id !== data.id || tr.dataset.host !== data.host_id) continue;
    found = true;
    if (data.action === "destroy") {
      tr.classList.add("row-gone");
      continue;
    }
    tr.dataset.state = data.state;
    const badge = tr.querySelector(".state-badge");
    if (badge) {
      badge.className = badge.className.replace(/\bstate-(?!badge\b)[a-z]+\b/g, "").trim() + ` state-${data.state}`;
      badge.textContent = data.state;
    }
    const status = tr.querySelector('[data-cell="status"]');
    if (status && data.status) status.textContent = data.status;
  }
  return found;
}

export function initLive() {
  if (typeof EventSource === "undefined") return null;
  const hostList = document.getElementById("host-list");
  const reloadRows = debounce(() => reloadList(), RELOAD_MS);
  const reloadHosts = debounce(() => hostList && htmx.trigger(hostList, "archnest:load"), RELOAD_MS);
  let connected = false;
  const source = new EventSource("/api/events");

  source.addEventListener("hello", () => {
    if (connected) {
      reloadRows();
      reloadHosts();
    }
    connected = true;
    document.body.dataset.live = "on";
  });
  source.addEventListener("container", (e) => {
    const data = JSON.parse(e.data);
    if (!shownHost(data.host_id)) return;
    patchRow(data);
    reloadRows();
  });
  source.addEventListener("host", (e) => {
    const data = JSON.parse(e.data);
    reloadHosts();
    if (shownHost(data.host_id)) reloadRows();
  });
  source.addEventListener("end", () => {
    // The server closed the stream (shutdown, or this tab fell behind): the browser
    // reconnects by itself after the stream's retry delay.
    document.body.dataset.live = "off";
  });
  source.addEventListener("error", () => {
    document.body.dataset.live = "off";
  });
  return source;
}
