/* Logs tab: tail N, timestamps, download, live follow over EventSource (SSE from
 * GET .../logs?follow=1). Lines are inserted as text, never as HTML. */
(function () {
  "use strict";

  var MAX_LOG_LINES = 5000;

  function logParams(box, extra) {
    var tailEl = box.querySelector(".log-tail");
    var tail = Math.max(0, Math.min(100000, parseInt(tailEl.value, 10) || 0));
    tailEl.value = String(tail);
    var q = new URLSearchParams({ tail: String(tail) });
    if (box.querySelector(".log-ts").checked) q.set("timestamps", "1");
    Object.keys(extra || {}).forEach(function (k) { q.set(k, extra[k]); });
    return box.dataset.logsUrl + "?" + q.toString();
  }

  function updateDownload(box) {
    box.querySelector(".log-download").href = logParams(box, { format: "text" });
  }

  function appendLine(out, line) {
    var nearBottom = out.scrollHeight - out.scrollTop - out.clientHeight < 40;
    var span = document.createElement("span");
    span.className = "log-line" + (line.stream === "stderr" ? " stderr" : "");
    var text = line.text.replace(/\n$/, "");
    span.textContent = (line.ts ? line.ts + " " : "") + text + "\n";
    out.appendChild(span);
    while (out.childNodes.length > MAX_LOG_LINES) out.removeChild(out.firstChild);
    if (nearBottom) out.scrollTop = out.scrollHeight;
  }

  function logStatus(box, text, isError) {
    var s = box.querySelector(".log-status");
    s.textContent = text;
    s.classList.toggle("error-text", !!isError);
  }

  function stopFollow(box, why) {
    if (box.archnestSource) {
      box.archnestSource.close();
      box.archnestSource = null;
    }
    var btn = box.querySelector(".log-follow");
    btn.setAttribute("aria-pressed", "false");
    btn.textContent = "Follow";
    if (why) logStatus(box, why, false);
  }

  function loadLogs(box) {
    stopFollow(box);
    updateDownload(box);
    logStatus(box, "Loading\u2026");
    var out = box.querySelector(".log-output");
    // Only the latest request may fill the output (an older, slower one is dropped).
    var seq = (box.archnestSeq || 0) + 1;
    box.archnestSeq = seq;
    fetch(logParams(box), { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) {
        return r.json().then(function (body) {
          if (!r.ok) throw new Error(body.error ? body.error.message : "HTTP " + r.status);
          return body;
        });
      })
      .then(function (body) {
        if (seq !== box.archnestSeq) return;
        out.textContent = "";
        body.lines.forEach(function (l) { appendLine(out, l); });
        out.scrollTop = out.scrollHeight;
        logStatus(box, body.lines.length + " lines, loaded " + new Date().toLocaleTimeString() + ".");
      })
      .catch(function (err) { logStatus(box, "Logs failed: " + err.message, true); });
  }

  function toggleFollow(box) {
    if (box.archnestSource) { stopFollow(box, "Stopped following."); return; }
    box.archnestSeq = (box.archnestSeq || 0) + 1; // a pending Load must not wipe the stream
    updateDownload(box);
    var out = box.querySelector(".log-output");
    out.textContent = "";
    var es = new EventSource(logParams(box, { follow: "1" }));
    box.archnestSource = es;
    var btn = box.querySelector(".log-follow");
    btn.setAttribute("aria-pressed", "true");
    btn.textContent = "Stop following";
    logStatus(box, "Connecting\u2026");
    es.onopen = function () { logStatus(box, "Following live (new lines appear below)."); };
    es.onmessage = function (e) {
      try { appendLine(out, JSON.parse(e.data)); } catch (err) { /* keep-alive or junk */ }
    };
    es.addEventListener("end", function () { stopFollow(box, "The log stream ended (container stopped?)."); });
    es.addEventListener("error", function (e) {
      // The server's "error" event carries JSON; a bare error is a lost connection.
      var detail = "connection lost";
      if (e.data) {
        try { detail = JSON.parse(e.data).error.message; } catch (err) { detail = String(e.data); }
      }
      stopFollow(box);
      logStatus(box, "Follow stopped: " + detail, true);
    });
  }

  document.addEventListener("click", function (e) {
    var box = e.target.closest && e.target.closest(".logs");
    if (!box) return;
    if (e.target.closest(".log-load")) loadLogs(box);
    else if (e.target.closest(".log-follow")) toggleFollow(box);
  });

  document.addEventListener("change", function (e) {
    var box = e.target.closest && e.target.closest(".logs");
    if (box) updateDownload(box);
  });

  // Closing or reloading a container tab must close its EventSource (app.js calls archnestStop).
  new MutationObserver(function () {
    document.querySelectorAll(".logs:not([data-ready])").forEach(function (box) {
      box.dataset.ready = "1";
      box.archnestStop = function () { stopFollow(box); };
    });
  }).observe(document.body, { childList: true, subtree: true });

  window.ArchNestLogs = { load: loadLogs };
})();
