/* The Terminal tab: xterm.js and its fit addon over the core's exec WebSocket.
 * Protocol (core/exec_bridge.py): binary frames carry stdin/stdout; a text frame
 * {"type":"resize","cols":N,"rows":M} resizes the TTY. */
import { FitAddon, Terminal } from "./libs.js";
import { showStatus } from "./api.js";

const encoder = new TextEncoder();
// Per terminal box: the live session ({teardown}) and, once it ended, how to dispose
// of the terminal left on screen (read-only, so its last output can still be read).
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

function connect(box) {
  if (sessions.has(box)) return;
  dispose(box);
  const frame = box.querySelector(".term-frame");
  const hostEl = box.querySelector(".term-host");
  hostEl.textContent = "";
  const term = new Terminal({
    cursorBlink: true,
    fontSize: 13,
    scrollback: 5000,
    fontFamily: "ui-monospace, SFMono-Regular, Menlo, Consolas, monospace",
    theme: { background: "#10151f" },
  });
  const fit = new FitAddon();
  term.loadAddon(fit);
  term.open(hostEl);
  try {
    fit.fit();
  } catch {
    // hidden panel: fitted again when shown
  }

  const shell = box.querySelector(".term-shell").value;
  const q = new URLSearchParams({
    host: box.dataset.host,
    container: box.dataset.ref,
    cmd: shell,
    cols: String(Math.max(10, term.cols)),
    rows: String(Math.max(5, term.rows)),
  });
  const proto = location.protocol === "https:" ? "wss:" : "ws:";
  const ws = new WebSocket(`${proto}//${location.host}/api/exec?${q}`);
  ws.binaryType = "arraybuffer";
  status(box, "Connecting\u2026");

  const connectBtn = box.querySelector(".term-connect");
  const disconnectBtn = box.querySelector(".term-disconnect");
  connectBtn.disabled = true;
  disconnectBtn.disabled = false;

  const resizeObserver = new ResizeObserver(() => {
    // Only a visible, sized frame can be measured; fit() then fires onResize.
    if (frame.offsetWidth > 0 && frame.offsetHeight > 0) {
      try {
        fit.fit();
      } catch {
        // element detached mid-resize
      }
    }
  });
  resizeObserver.observe(frame);

  const dataSub = term.onData((d) => {
    if (ws.readyState === WebSocket.OPEN) ws.send(encoder.encode(d));
  });
  const resizeSub = term.onResize((size) => {
    box.dataset.cols = String(size.cols);
    box.dataset.rows = String(size.rows);
    if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ type: "resize", cols: size.cols, rows: size.rows }));
  });

  function teardown(closeSocket) {
    resizeObserver.disconnect();
    dataSub.dispose();
    resizeSub.dispose();
    if (closeSocket && ws.readyState <= WebSocket.OPEN) ws.close(1000, "closed by user");
    connectBtn.disabled = false;
    disconnectBtn.disabled = true;
    sessions.delete(box);
    leftovers.set(box, term);
  }

  ws.onopen = () => {
    status(box, `Connected (${shell}). Drag the lower edge to resize.`);
    box.dataset.connected = "1";
    box.dataset.cols = String(term.cols);
    box.dataset.rows = String(term.rows);
    // The size may have changed between building the URL and the upgrade.
    ws.send(JSON.stringify({ type: "resize", cols: term.cols, rows: term.rows }));
    term.focus();
  };
  ws.onmessage = (e) => term.write(typeof e.data === "string" ? e.data : new Uint8Array(e.data));
  ws.onclose = (e) => {
    const current = sessions.get(box);
    if (current && current !== session) return; // a newer session owns the box now
    box.dataset.connected = "0";
    const why = e.reason ? `: ${e.reason}` : "";
    // 4000 + HTTP status: the session could not start (e.g. 4409 not running); a
    // failed handshake (429 too many terminals, 403) arrives as an unclean close.
    const failed = !e.wasClean || e.code >= 4000;
    let what = "Connection closed";
    if (e.code >= 4000) what = "Could not start the shell";
    else if (e.code === 1001) what = "Server shutting down";
    else if (e.wasClean) what = "Session ended";
    status(box, `${what}${why}.`, failed ? "error" : "info");
    if (current) teardown(false);
  };

  const session = { teardown };
  sessions.set(box, session);
}

function disconnect(box) {
  const session = sessions.get(box);
  if (session) session.teardown(true);
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
