/* Exec terminal: xterm.js + fit addon over the core's exec WebSocket.
 * Protocol (core/hosts.py make_exec_handler): binary frames carry stdin/stdout;
 * a text frame {"type":"resize","cols":N,"rows":M} resizes the TTY. */
(function () {
  "use strict";

  var encoder = new TextEncoder();

  function setStatus(box, text, isError) {
    var s = box.querySelector(".term-status");
    s.textContent = text;
    s.classList.toggle("error-text", !!isError);
  }

  function connect(box) {
    if (box.archnestTerm) return;
    var frame = box.querySelector(".term-frame");
    var hostEl = box.querySelector(".term-host");
    hostEl.textContent = "";
    var term = new window.Terminal({
      cursorBlink: true,
      fontSize: 13,
      scrollback: 5000,
      fontFamily: "ui-monospace, SFMono-Regular, Menlo, Consolas, monospace",
      theme: { background: "#10151f" }
    });
    var fit = new window.FitAddon.FitAddon();
    term.loadAddon(fit);
    term.open(hostEl);
    try { fit.fit(); } catch (e) { /* hidden panel: fitted again when shown */ }

    var shell = box.querySelector(".term-shell").value;
    var q = new URLSearchParams({
      host: box.dataset.host, container: box.dataset.ref, cmd: shell,
      cols: String(Math.max(10, term.cols)), rows: String(Math.max(5, term.rows))
    });
    var proto = location.protocol === "https:" ? "wss:" : "ws:";
    var ws = new WebSocket(proto + "//" + location.host + "/api/exec?" + q.toString());
    ws.binaryType = "arraybuffer";
    setStatus(box, "Connecting\u2026");

    var connectBtn = box.querySelector(".term-connect");
    var disconnectBtn = box.querySelector(".term-disconnect");
    connectBtn.disabled = true;
    disconnectBtn.disabled = false;

    var resizeObserver = new ResizeObserver(function () {
      // Only a visible, sized frame can be measured; fit() then fires onResize.
      if (frame.offsetWidth > 0 && frame.offsetHeight > 0) {
        try { fit.fit(); } catch (e) { /* element detached mid-resize */ }
      }
    });
    resizeObserver.observe(frame);

    var dataSub = term.onData(function (d) {
      if (ws.readyState === WebSocket.OPEN) ws.send(encoder.encode(d));
    });
    var resizeSub = term.onResize(function (size) {
      box.dataset.cols = String(size.cols);
      box.dataset.rows = String(size.rows);
      if (ws.readyState === WebSocket.OPEN) {
        ws.send(JSON.stringify({ type: "resize", cols: size.cols, rows: size.rows }));
      }
    });

    ws.onopen = function () {
      setStatus(box, "Connected (" + shell + "). Drag the lower edge to resize.");
      box.dataset.connected = "1";
      box.dataset.cols = String(term.cols);
      box.dataset.rows = String(term.rows);
      // The size may have changed between building the URL and the upgrade.
      ws.send(JSON.stringify({ type: "resize", cols: term.cols, rows: term.rows }));
      term.focus();
    };
    ws.onmessage = function (e) {
      term.write(typeof e.data === "string" ? e.data : new Uint8Array(e.data));
    };
    ws.onclose = function (e) {
      box.dataset.connected = "0";
      var why = e.reason ? ": " + e.reason : "";
      // 4000 + HTTP status: the session could not start (e.g. 4409 not running); a
      // failed handshake (429 too many terminals, 403) arrives as an unclean close.
      var failed = !e.wasClean || e.code >= 4000;
      var what = e.code >= 4000 ? "Could not start the shell" :
        e.code === 1001 ? "Server shutting down" :
        e.wasClean ? "Session ended" : "Connection closed";
      setStatus(box, what + why + ".", failed);
      teardown(false);
    };

    function teardown(closeSocket) {
      resizeObserver.disconnect();
      dataSub.dispose();
      resizeSub.dispose();
      if (closeSocket && ws.readyState <= WebSocket.OPEN) ws.close(1000, "closed by user");
      connectBtn.disabled = false;
      disconnectBtn.disabled = true;
      box.archnestTerm = null;
      // The terminal stays on screen (read-only) so the last output can still be read.
      box.archnestDispose = function () { term.dispose(); };
    }

    box.archnestTerm = { term: term, ws: ws, fit: fit, teardown: teardown };
  }

  function disconnect(box) {
    if (box.archnestTerm) box.archnestTerm.teardown(true);
  }

  document.addEventListener("click", function (e) {
    var box = e.target.closest && e.target.closest(".terminal-box");
    if (!box) return;
    if (e.target.closest(".term-connect")) {
      if (box.archnestDispose) { box.archnestDispose(); box.archnestDispose = null; }
      connect(box);
    } else if (e.target.closest(".term-disconnect")) {
      disconnect(box);
    }
  });

  // Closing or reloading a container tab stops its session (app.js calls archnestStop).
  new MutationObserver(function () {
    document.querySelectorAll(".terminal-box:not([data-ready])").forEach(function (box) {
      box.dataset.ready = "1";
      box.archnestStop = function () {
        disconnect(box);
        if (box.archnestDispose) box.archnestDispose();
      };
    });
  }).observe(document.body, { childList: true, subtree: true });
})();
