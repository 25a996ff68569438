/* The Terminal tab of a container's detail: one session (term-session.js) per terminal
 * box, started by Connect and ended by Disconnect. */
import { showStatus } from "./api.js";
import { describeClose, openTerminal } from "./term-session.js";

// Per terminal box: the live session and, once it ended, the terminal left on screen
// (read-only, so its last output can still be read) until the next Connect.
const sessions = new WeakMap();
const leftovers = new WeakMap();

function status(box, text, kind) {
  showStatus(box.querySelector(".term-status"), text, kind);
}

function dispose(box) {
  const leftover = leftovers.get(box);
  if (leftover) leftover.dispose();
  leftovers.delete(box);
}

function setButtons(box, connected) {
  box.querySelector(".term-connect").disabled = connected;
  box.querySelector(".term-disconnect").disabled = !connected;
}

function ended(box, session) {
  if (sessions.get(box) !== session) return;
  sessions.delete(box);
  leftovers.set(box, session);
  setButtons(box, false);
}

function connect(box) {
  if (sessions.has(box)) return;
  dispose(box);
  const shell = box.querySelector(".term-shell").value;
  const session = openTerminal(box.querySelector(".term-host"), {
    host: box.dataset.host,
    container: box.dataset.ref,
    cmd: shell,
    observe: box.querySelector(".term-frame"),
    onResize(size) {
      box.dataset.cols = String(size.cols);
      box.dataset.rows = String(size.rows);
    },
    onOpen() {
      status(box, `Connected (${shell}). Drag the lower edge to resize.`);
      box.dataset.connected = "1";
      box.dataset.cols = String(session.term.cols);
      box.dataset.rows = String(session.term.rows);
      session.term.focus();
    },
    onClose(e) {
      // A newer session may own the box already (Disconnect then Connect at once).
      if (sessions.has(box) && sessions.get(box) !== session) return;
      box.dataset.connected = "0";
      const { text, failed } = describeClose(e);
      status(box, text, failed ? "error" : "info");
      ended(box, session);
    },
  });
  sessions.set(box, session);
  status(box, "Connecting\u2026");
  setButtons(box, true);
}

function disconnect(box) {
  const session = sessions.get(box);
  if (!session) return;
  session.close();
  ended(box, session);
}

/** End every session under root and free its terminal (a container tab closed or
 * reloaded). */
export function stopTerminals(root) {
  for (const box of root.querySelectorAll(".terminal-box")) {
    disconnect(box);
    dispose(box);
  }
}

export function installTerminals(root) {
  root.addEventListener("click", (e) => {
    const box = e.target.closest(".terminal-box");
    if (!box) return;
    if (e.target.closest(".term-connect")) connect(box);
    else if (e.target.closest(".term-disconnect")) disconnect(box);
  });
}
