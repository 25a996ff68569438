/* The Terminals page: a grid of terminals, each its own exec session (term-session.js)
 * on a container of any host. The open terminals are kept in the address
 * (?cols=N&t=HOST/CONTAINER/SHELL&t=...), so a reload opens them again as new sessions.
 * Broadcast input, off by default and never restored from the address, sends what is
 * typed in one terminal to every terminal not excluded from it. */
import { describe, enc, request, showStatus } from "./api.js";
import { describeClose, openTerminal } from "./term-session.js";

const app = document.getElementById("terminals-app");
const form = document.getElementById("term-add");
const hostPicker = document.getElementById("term-add-host");
const containerPicker = document.getElementById("term-add-container");
const shellPicker = document.getElementById("term-add-shell");
const colsPicker = document.getElementById("term-cols");
const broadcast = document.getElementById("term-broadcast");
const banner = document.getElementById("term-broadcast-banner");
const grid = document.getElementById("term-grid");
const empty = document.getElementById("term-empty");
const status = document.getElementById("term-status");
const SHELLS = new Set(Array.from(shellPicker.options, (o) => o.value));
const COLS = new Set(["auto", "1", "2", "3", "4"]);

// Every open panel: {el, host, ref, shell, session}.
const panels = [];
let hostNames = new Map();
let nextId = 1;

function saveState() {
  const q = new URLSearchParams();
  if (colsPicker.value !== "auto") q.set("cols", colsPicker.value);
  for (const p of panels) q.append("t", `${p.host}/${p.ref}/${p.shell}`);
  const search = q.toString();
  history.replaceState(null, "", search ? `?${search}` : location.pathname);
}

/** HOST/CONTAINER/SHELL: the host id may hold a slash, so split from the right. */
function parseEntry(value) {
  const parts = value.split("/");
  if (parts.length < 3) return null;
  const shell = parts.pop();
  const ref = parts.pop();
  const host = parts.join("/");
  if (!host || !ref || !SHELLS.has(shell)) return null;
  return { host, ref, shell };
}

function isExcluded(p) {
  return p.el.querySelector(".term-exclude").checked;
}

function showBroadcast() {
  const on = broadcast.checked;
  banner.hidden = !on;
  grid.classList.toggle("broadcasting", on);
  for (const p of panels) {
    const excluded = isExcluded(p);
    p.el.classList.toggle("in-broadcast", on && !excluded);
    const note = p.el.querySelector(".term-panel-broadcast");
    note.hidden = !on;
    note.textContent = excluded
      ? "Excluded from broadcast: input stays in this terminal"
      : "BROADCAST ON: input goes to all terminals";
  }
}

/** Typed input of one panel: to every panel in the broadcast, or to itself only. The
 * switch is read at each keystroke, so turning it off stops the broadcast at once. */
function routeInput(from, data) {
  if (!broadcast.checked || isExcluded(from)) {
    from.session.send(data);
    return;
  }
  for (const p of panels) {
    if (!isExcluded(p)) p.session.send(data);
  }
}

function panelStatus(p, text, kind) {
  showStatus(p.el.querySelector(".term-panel-status"), text, kind);
}

function addPanel({ host, ref, shell }) {
  const el = document.createElement("section");
  el.className = "term-panel";
  const title = `${hostNames.get(host) || host} \u00b7 ${ref} \u00b7 ${shell}`;
  el.setAttribute("aria-label", `Terminal ${title}`);
  el.dataset.host = host;
  el.dataset.ref = ref;
  el.dataset.shell = shell;
  el.dataset.connected = "0";
  const id = `term-${nextId++}`;

  const head = document.createElement("div");
  head.className = "term-panel-head";
  const h = document.createElement("h2");
  h.className = "term-title";
  h.textContent = title;
  const state = document.createElement("span");
  state.className = "term-panel-status small";
  state.setAttribute("role", "status");
  const exclude = document.createElement("label");
  exclude.className = "check small";
  const box = document.createElement("input");
  box.type = "checkbox";
  box.className = "term-exclude";
  box.id = `${id}-exclude`;
  box.autocomplete = "off";
  exclude.append(box, " Exclude from broadcast");
  const close = document.createElement("button");
  close.type = "button";
  close.className = "btn btn-small term-close";
  close.textContent = "Close";
  close.setAttribute("aria-label", `Close ${title}`);
  head.append(h, state, exclude, close);

  const note = document.createElement("p");
  note.className = "term-panel-broadcast";
  note.hidden = true;
  const frame = document.createElement("div");
  frame.className = "term-panel-frame";
  frame.title = "Drag the corner to resize; the TTY follows.";
  const hostEl = document.createElement("div");
  hostEl.className = "term-host";
  frame.append(hostEl);
  el.append(head, note, frame);
  grid.append(el);

  const panel = { el, host, ref, shell, session: null };
  panels.push(panel);
  empty.hidden = true;
  panelStatus(panel, "Connecting\u2026");
  panel.session = openTerminal(hostEl, {
    host,
    container: ref,
    cmd: shell,
    observe: frame,
    onInput: (data) => routeInput(panel, data),
    onResize(size) {
      el.dataset.cols = String(size.cols);
      el.dataset.rows = String(size.rows);
    },
    onOpen() {
      el.dataset.connected = "1";
      el.dataset.cols = String(panel.session.term.cols);
      el.dataset.rows = String(panel.session.term.rows);
      panelStatus(panel, "Connected");
    },
    onClose(e) {
      el.dataset.connected = "0";
      const { text, failed } = describeClose(e);
      panelStatus(panel, text, failed ? "error" : "info");
    },
  });
  box.addEventListener("change", showBroadcast);
  close.addEventListener("click", () => removePanel(panel));
  showBroadcast();
  saveState();
  return panel;
}

function removePanel(panel) {
  const i = panels.indexOf(panel);
  if (i < 0) return;
  panels.splice(i, 1);
  // Closing the socket ends the session on the host.
  panel.session.dispose();
  panel.el.remove();
  empty.hidden = panels.length > 0;
  saveState();
}

function setCols(value) {
  colsPicker.value = COLS.has(value) ? value : "auto";
  grid.dataset.cols = colsPicker.value;
  // The grid's columns changed: every terminal refits (its ResizeObserver fires too).
  for (const p of panels) p.session.fit();
}

async function loadContainers() {
  const host = hostPicker.value;
  containerPicker.textContent = "";
  containerPicker.disabled = true;
  if (!host) {
    containerPicker.append(new Option("Pick a host first", ""));
    return;
  }
  containerPicker.append(new Option("Loading\u2026", ""));
  try {
    const body = await request(`/api/containers?host=${enc(host)}`);
    if (hostPicker.value !== host) return; // another host was picked meanwhile
    containerPicker.textContent = "";
    const running = body.containers.filter((c) => c.state === "running");
    const failed = body.hosts.find((h) => h.id === host && h.error);
    if (!running.length) {
      const why = failed ? `host error: ${failed.error}` : "no running containers";
      containerPicker.append(new Option(`(${why})`, ""));
      return;
    }
    for (const c of running) containerPicker.append(new Option(`${c.name} (${c.image})`, c.name || c.id));
    containerPicker.disabled = false;
  } catch (err) {
    containerPicker.textContent = "";
    containerPicker.append(new Option("(could not list)", ""));
    showStatus(status, `Could not list the containers: ${describe(err)}`, "error");
  }
}

async function loadHosts() {
  try {
    const hosts = await request("/api/hosts?noprobe=1");
    hostNames = new Map(hosts.map((h) => [h.id, h.name]));
    hostPicker.textContent = "";
    const usable = hosts.filter((h) => h.capabilities && h.capabilities.exec);
    hostPicker.append(new Option(usable.length ? "Pick a host" : "(no host offers terminals)", ""));
    for (const h of usable) hostPicker.append(new Option(`${h.name} (${h.id})`, h.id));
  } catch (err) {
    showStatus(status, `Could not load the hosts: ${describe(err)}`, "error");
  }
}

function restore() {
  const q = new URLSearchParams(location.search);
  setCols(q.get("cols") || "auto");
  let bad = 0;
  for (const value of q.getAll("t")) {
    const entry = parseEntry(value);
    if (entry) addPanel(entry);
    else bad += 1;
  }
  if (bad) showStatus(status, `${bad} terminal(s) in the address could not be read and were left out.`, "error");
  saveState();
}

if (app && form) {
  // Never on after a reload, whatever the browser restores into the form.
  broadcast.checked = false;
  broadcast.addEventListener("change", showBroadcast);
  colsPicker.addEventListener("change", () => {
    setCols(colsPicker.value);
    saveState();
  });
  hostPicker.addEventListener("change", loadContainers);
  document.getElementById("term-add-reload").addEventListener("click", loadContainers);
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    if (!hostPicker.value || !containerPicker.value) {
      showStatus(status, "Pick a host and a running container first.", "error");
      return;
    }
    const panel = addPanel({ host: hostPicker.value, ref: containerPicker.value, shell: shellPicker.value });
    showStatus(status, "");
    panel.session.term.focus();
  });
  loadHosts().then(restore);
}
