/* One terminal session: an xterm.js terminal with its fit addon over the core's exec
 * WebSocket. Shared by the container detail tab (terminal.js) and the terminal grid
 * (terminals.js). Protocol (core/exec_bridge.py): binary frames carry stdin/stdout; a
 * text frame {"type":"resize","cols":N,"rows":M} resizes the TTY. */
import { FitAddon, Terminal } from "./libs.js";

const encoder = new TextEncoder();

/** What a closed exec socket means, as {text, failed}. */
export function describeClose(e) {
  const why = e.reason ? `: ${e.reason}` : "";
  // 4000 + HTTP status: the session could not start (e.g. 4409 not running); a failed
  // handshake (429 too many terminals, 403) arrives as an unclean close.
  const failed = !e.wasClean || e.code >= 4000;
  let what = "Connection closed";
  if (e.code >= 4000) what = "Could not start the shell";
  else if (e.code === 1001) what = "Server shutting down";
  else if (e.wasClean) what = "Session ended";
  return { text: `${what}${why}.`, failed };
}

/**
 * Open a terminal in `el` and a session on the exec WebSocket.
 *
 * Options: host, container, cmd (a shell name the server allows); observe: the element
 * whose size the terminal follows (default el); onInput(data): when given, typed input
 * goes there instead of to this session (the grid routes it, e.g. to every terminal);
 * onOpen(), onClose(closeEvent), onResize({cols, rows}).
 *
 * Returns {term, send(data), fit(), close(), dispose(), isOpen()}: close() ends the
 * session and leaves the terminal on screen, read-only, so its last output can still
 * be read; dispose() also removes the terminal.
 */
export function openTerminal(el, opts) {
  const { host, container, cmd = "sh", onInput, onOpen, onClose, onResize } = opts;
  const observed = opts.observe || el;
  el.textContent = "";
  const term = new Terminal({
    cursorBlink: true,
    fontSize: 13,
    scrollback: 5000,
    fontFamily: "ui-monospace, SFMono-Regular, Menlo, Consolas, monospace",
    theme: { background: "#10151f" },
  });
  const fitAddon = new FitAddon();
  term.loadAddon(fitAddon);
  term.open(el);

  function fit() {
    // Only a visible, sized element can be measured; fit() then fires onResize.
    if (observed.offsetWidth === 0 || observed.offsetHeight === 0) return;
    try {
      fitAddon.fit();
    } catch {
      // detached mid-resize, or hidden: fitted again when shown
    }
  }
  fit();

  const q = new URLSearchParams({
    host,
    container,
    cmd,
    cols: String(Math.max(10, term.cols)),
    rows: String(Math.max(5, term.rows)),
  });
  const proto = location.protocol === "https:" ? "wss:" : "ws:";
  const ws = new WebSocket(`${proto}//${location.host}/api/exec?${q}`);
  ws.binaryType = "arraybuffer";
  let ended = false;

  const isOpen = () => !ended && ws.readyState === WebSocket.OPEN;
  function send(data) {
    if (isOpen()) ws.send(encoder.encode(data));
  }
  function sendSize() {
    if (isOpen()) ws.send(JSON.stringify({ type: "resize", cols: term.cols, rows: term.rows }));
  }

  const resizeObserver = new ResizeObserver(fit);
  resizeObserver.observe(observed);
  const dataSub = term.onData((d) => (onInput ? onInput(d) : send(d)));
  const resizeSub = term.onResize((size) => {
    if (onResize) onResize(size);
    sendSize();
  });

  // Stops input and resizing; the socket is closed too unless it closed itself.
  function stop(closeSocket) {
    if (ended) return;
    ended = true;
    resizeObserver.disconnect();
    dataSub.dispose();
    resizeSub.dispose();
    if (closeSocket && ws.readyState <= WebSocket.OPEN) ws.close(1000, "closed by user");
  }

  ws.onopen = () => {
    // The size may have changed between building the URL and the upgrade.
    sendSize();
    if (onOpen) onOpen();
  };
  ws.onmessage = (e) => term.write(typeof e.data === "string" ? e.data : new Uint8Array(e.data));
  ws.onclose = (e) => {
    stop(false);
    // Also after close(): the server's answer says how the session ended.
    if (onClose) onClose(e);
  };

  return {
    term,
    send,
    fit,
    isOpen,
    close: () => stop(true),
    dispose() {
      stop(true);
      term.dispose();
    },
  };
}
