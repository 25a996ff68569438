/* The Containers page: host selector, container list, closeable detail tabs, actions, logs.
 * Server-rendered partials come from /ui/...; actions and logs use the JSON API.
 * Everything from the server is inserted as text (textContent) or as autoescaped HTML. */
(function () {
  "use strict";

  var root = document.getElementById("containers-app");
  if (!root) return;

  var STORE_KEY = "archnest.containers.v1";
  var LIVE_STATES = ["running", "paused", "restarting"];
  var ALL_HOSTS = "all";
  var state = { host: "", all: false, tabs: [], active: null };
  var openTabs = new Map(); // key -> {host, ref, tab, wrap, panel}
  var seq = 0;

  var tablist = document.getElementById("main-tabs");
  var workspace = tablist.parentElement;
  var tabTemplate = document.getElementById("tab-template");
  var listEl = document.getElementById("container-list");
  var hostListEl = document.getElementById("host-list");
  var filterEl = document.getElementById("container-filter");
  var stoppedEl = document.getElementById("show-stopped");
  var titleEl = document.getElementById("list-title");

  window.ArchNest = { state: state };

  // ---- state: URL first (shareable), localStorage as the fallback -----------------
  function keyOf(t) { return t.host + "/" + t.ref; }

  function parseKey(text) {
    if (typeof text !== "string") return null;
    var i = text.lastIndexOf("/");
    if (i < 1 || i === text.length - 1) return null;
    return { host: text.slice(0, i), ref: text.slice(i + 1) };
  }

  function readState() {
    var q = new URLSearchParams(location.search);
    var saved = {};
    try { saved = JSON.parse(localStorage.getItem(STORE_KEY) || "{}") || {}; } catch (e) { saved = {}; }
    var fromUrl = q.has("host") || q.has("open");
    state.host = q.get("host") || root.dataset.currentHost || (fromUrl ? "" : saved.host || "");
    state.all = fromUrl ? q.get("all") === "1" : !!saved.all;
    var keys = fromUrl ? q.getAll("open") : saved.tabs || [];
    state.tabs = keys.map(parseKey).filter(Boolean);
    state.active = fromUrl ? q.get("tab") : saved.active || null;
  }

  function saveState() {
    var q = new URLSearchParams();
    if (state.host) q.set("host", state.host);
    if (state.all) q.set("all", "1");
    state.tabs.forEach(function (t) { q.append("open", keyOf(t)); });
    if (state.active) q.set("tab", state.active);
    var qs = q.toString();
    history.replaceState(null, "", location.pathname + (qs ? "?" + qs : ""));
    try {
      localStorage.setItem(STORE_KEY, JSON.stringify({
        host: state.host, all: state.all, tabs: state.tabs.map(keyOf), active: state.active
      }));
    } catch (e) { /* private mode: the URL still carries the state */ }
  }

  function enc(s) { return encodeURIComponent(s); }
  function apiBase(host, ref) { return "/api/hosts/" + enc(host) + "/containers/" + enc(ref); }

  // ---- hosts ---------------------------------------------------------------------
  function loadHosts() {
    hostListEl.setAttribute("aria-busy", "true");
    return htmx.ajax("GET", "/ui/hosts?host=" + enc(state.host), {
      source: hostListEl, target: hostListEl, swap: "innerHTML"
    }).catch(superseded);
  }

  function markCurrentHost() {
    hostListEl.querySelectorAll(".host-link").forEach(function (a) {
      if (a.dataset.host === state.host) a.setAttribute("aria-current", "true");
      else a.removeAttribute("aria-current");
    });
  }

  // Phone width: the host list folds away once a host is chosen, behind a toggle
  // that names the current host.
  var phone = window.matchMedia("(max-width: 760px)");
  var hostsToggle = document.getElementById("hosts-toggle");

  function setHostsOpen(open) {
    hostsToggle.setAttribute("aria-expanded", open ? "true" : "false");
    hostListEl.classList.toggle("collapsed", !open);
  }

  function updateHostsToggle() {
    var current = hostListEl.querySelector('.host-link[aria-current]');
    hostsToggle.textContent = (current ? current.dataset.hostName : "Hosts") +
      (hostsToggle.getAttribute("aria-expanded") === "true" ? " \u25b4" : " \u25be");
  }

  // byUser: a click (show its list, fold the picker on a phone), not the automatic
  // first choice when the URL names no host.
  function selectHost(id, byUser) {
    state.host = id;
    markCurrentHost();
    if (byUser && phone.matches) setHostsOpen(false);
    updateHostsToggle();
    saveState();
    if (byUser) selectTab(document.getElementById("tab-containers"), false);
    loadList();
  }

  // ---- container list ------------------------------------------------------------
  function loadList() {
    if (!state.host) return Promise.resolve();
    listEl.setAttribute("aria-busy", "true");
    // "all" is no host id (those are "source:key"): the one table of every host.
    var url = (state.host === ALL_HOSTS ? "/ui/containers" : "/ui/hosts/" + enc(state.host) + "/containers") +
      (state.all ? "?all=1" : "");
    // Its own element as the source: htmx syncs requests per source element (hx-sync on
    // #container-list: a newer list replaces one in flight), so the host list loading at
    // the same time does not drop this one.
    return htmx.ajax("GET", url, { source: listEl, target: listEl, swap: "innerHTML" })
      .catch(superseded);
  }

  // htmx rejects the promise of a request that a newer one on the same element replaced
  // (hx-sync); the newer one brings the content, so there is nothing to report.
  function superseded() { /* replaced by a newer request */ }

  function applyFilter() {
    var words = filterEl.value.trim().toLowerCase().split(/\s+/).filter(Boolean);
    var rows = listEl.querySelectorAll("tbody tr");
    var shown = 0;
    rows.forEach(function (tr) {
      // State and status change with the row's quick actions: read them live.
      var status = tr.querySelector(".col-status");
      var hay = (tr.dataset.search || "") + " " + (tr.dataset.state || "") + " " +
        (status ? status.textContent.toLowerCase() : "");
      var ok = words.every(function (w) { return hay.indexOf(w) !== -1; });
      tr.hidden = !ok;
      if (ok) shown++;
    });
    var count = listEl.querySelector(".shown-count");
    if (count) count.textContent = String(shown);
    var none = listEl.querySelector(".no-match");
    if (none) none.hidden = shown !== 0 || rows.length === 0;
  }

  function afterListSwap() {
    listEl.removeAttribute("aria-busy");
    var summary = listEl.querySelector(".host-summary");
    var link = hostListEl.querySelector(".host-link[aria-current]");
    var named = summary || link;
    titleEl.textContent = named
      ? named.dataset.hostName + (named.dataset.source ? " \u00b7 " + named.dataset.source : "")
      : state.host;
    applyFilter();
  }

  // ---- main tabs -----------------------------------------------------------------
  function selectTab(tab, focus) {
    if (!tab) return;
    var list = tab.closest("[role=tablist]");
    list.querySelectorAll("[role=tab]").forEach(function (t) {
      var on = t === tab;
      t.setAttribute("aria-selected", on ? "true" : "false");
      t.tabIndex = on ? 0 : -1;
      var panel = document.getElementById(t.getAttribute("aria-controls"));
      if (panel) panel.hidden = !on;
    });
    if (focus) tab.focus();
    if (list === tablist) {
      state.active = tab.dataset.key || null;
      saveState();
    } else if (tab.dataset.section === "logs") {
      // The first visit to a Logs tab shows the tail straight away.
      var box = document.getElementById(tab.getAttribute("aria-controls")).querySelector(".logs");
      if (box && !box.dataset.loaded) {
        box.dataset.loaded = "1";
        window.ArchNestLogs.load(box);
      }
    }
  }

  function openTab(t, activate) {
    var key = keyOf(t);
    var entry = openTabs.get(key);
    if (!entry) {
      seq += 1;
      var frag = tabTemplate.content.cloneNode(true);
      var wrap = frag.querySelector(".tab-wrap");
      var tab = wrap.querySelector("[role=tab]");
      var close = wrap.querySelector(".tab-close");
      var label = t.name || t.ref;
      tab.id = "tab-c" + seq;
      tab.dataset.key = key;
      tab.setAttribute("aria-controls", "panel-c" + seq);
      tab.textContent = label;
      tab.title = label + " on " + t.host + " (Delete closes)";
      close.dataset.key = key;
      close.setAttribute("aria-label", "Close " + label);
      var panel = document.createElement("div");
      panel.id = "panel-c" + seq;
      panel.className = "tabpanel";
      panel.setAttribute("role", "tabpanel");
      panel.setAttribute("aria-labelledby", tab.id);
      panel.tabIndex = 0;
      panel.hidden = true;
      tablist.appendChild(wrap);
      workspace.appendChild(panel);
      entry = { host: t.host, ref: t.ref, tab: tab, wrap: wrap, panel: panel };
      openTabs.set(key, entry);
      if (!state.tabs.some(function (x) { return keyOf(x) === key; })) {
        state.tabs.push({ host: t.host, ref: t.ref });
      }
      loadDetail(entry);
    }
    if (activate) selectTab(entry.tab, true);
    else saveState();
    return entry;
  }

  function closeTab(key) {
    var entry = openTabs.get(key);
    if (!entry) return;
    var wasActive = entry.tab.getAttribute("aria-selected") === "true";
    var tabs = Array.prototype.slice.call(tablist.querySelectorAll("[role=tab]"));
    var idx = tabs.indexOf(entry.tab);
    stopWidgets(entry.panel);
    entry.wrap.remove();
    entry.panel.remove();
    openTabs.delete(key);
    state.tabs = state.tabs.filter(function (x) { return keyOf(x) !== key; });
    if (wasActive) {
      var rest = tablist.querySelectorAll("[role=tab]");
      selectTab(rest[Math.min(idx, rest.length) - 1] || rest[0], true);
    } else {
      saveState();
    }
  }

  // ---- container detail ----------------------------------------------------------
  function stopWidgets(el) {
    el.querySelectorAll(".logs, .terminal-box").forEach(function (w) {
      if (w.archnestStop) w.archnestStop();
    });
  }

  function loadDetail(entry, keepSection) {
    var url = "/ui/hosts/" + enc(entry.host) + "/containers/" + enc(entry.ref);
    entry.panel.setAttribute("aria-busy", "true");
    if (!entry.panel.firstChild) entry.panel.innerHTML = '<p class="muted loading">Loading…</p>';
    return fetch(url, { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then(function (r) { return r.text(); })
      .then(function (html) {
        stopWidgets(entry.panel);
        entry.panel.innerHTML = html;
        htmx.process(entry.panel);
        var art = entry.panel.querySelector(".detail");
        if (art && art.dataset.name) {
          entry.tab.textContent = art.dataset.name;
        }
        if (keepSection) {
          var sub = entry.panel.querySelector('.subtabs [data-section="' + keepSection + '"]');
          if (sub) selectTab(sub, false);
        }
      })
      .catch(function (err) {
        entry.panel.innerHTML = "";
        var p = document.createElement("p");
        p.className = "alert alert-error";
        p.setAttribute("role", "alert");
        p.textContent = "Could not load the container: " + err.message;
        entry.panel.appendChild(p);
      })
      .finally(function () { entry.panel.removeAttribute("aria-busy"); });
  }

  function entryOf(el) {
    var art = el.closest(".detail");
    return art ? openTabs.get(art.dataset.host + "/" + art.dataset.ref) : null;
  }

  function currentSection(entry) {
    var sel = entry.panel.querySelector('.subtabs [aria-selected="true"]');
    return sel ? sel.dataset.section : null;
  }

  function showResult(entry, text, isError) {
    var out = entry.panel.querySelector(".action-result");
    if (!out) return;
    out.textContent = text;
    out.className = "action-result " + (isError ? "alert alert-error" : "ok-text");
    out.setAttribute("role", isError ? "alert" : "status");
  }

  function runAction(btn) {
    var entry = entryOf(btn);
    if (!entry) return;
    var art = btn.closest(".detail");
    var action = btn.dataset.action;
    var name = art.dataset.name;
    var force = false;
    if (action === "remove") {
      var running = LIVE_STATES.indexOf(art.dataset.state) !== -1;
      var msg = "Remove container \u201c" + name + "\u201d? This cannot be undone." +
        (running ? "\nIt is " + art.dataset.state + " and will be stopped first (force)." : "");
      if (!window.confirm(msg)) return;
      force = running;
    }
    var buttons = art.querySelectorAll(".btn-action");
    buttons.forEach(function (b) { b.disabled = true; });
    showResult(entry, action + ": working\u2026", false);
    var url = apiBase(entry.host, entry.ref) + "/" + action + (force ? "?force=1" : "");
    fetch(url, { method: "POST", credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) {
        return r.json().catch(function () { return null; }).then(function (body) {
          if (!r.ok) {
            var m = body && body.error ? body.error.message + " (" + body.error.code + ")" : "HTTP " + r.status;
            throw new Error(m);
          }
        });
      })
      .then(function () {
        var when = new Date().toLocaleTimeString();
        if (action === "remove") {
          closeTab(keyOf(entry));
          flash("Removed " + name + " at " + when + ".");
          return loadList();
        }
        if (entry.host === state.host || state.host === ALL_HOSTS) loadList();
        return loadDetail(entry, currentSection(entry)).then(function () {
          showResult(entry, action + " " + name + ": done at " + when + ".", false);
        });
      })
      .catch(function (err) {
        // Re-enable what the server state allows by reloading, then show the error.
        loadDetail(entry, currentSection(entry)).then(function () {
          showResult(entry, action + " failed: " + err.message, true);
        });
      });
  }

  // ---- row quick actions (start/stop, restart) ---------------------------------------
  function showRowResult(tr, text, isError) {
    var out = tr.querySelector(".row-result");
    if (!out) return;
    out.textContent = text;
    out.className = "row-result " + (isError ? "error-text" : "ok-text");
    out.setAttribute("role", isError ? "alert" : "status");
  }

  function setRowState(tr, c) {
    tr.dataset.state = c.state;
    var badge = tr.querySelector(".state");
    if (badge) {
      badge.textContent = c.state;
      badge.className = "badge state state-" + c.state;
    }
    var status = tr.querySelector(".col-status");
    if (status) status.textContent = c.status || "";
    var toggle = tr.querySelector(".row-toggle");
    if (toggle) {
      var verb = LIVE_STATES.indexOf(c.state) !== -1 ? "Stop" : "Start";
      toggle.dataset.action = verb.toLowerCase();
      toggle.textContent = verb;
      toggle.setAttribute("aria-label", verb + " " + c.name);
    }
  }

  function fetchJson(url, method) {
    return fetch(url, { method: method, credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) {
        return r.json().catch(function () { return null; }).then(function (body) {
          if (!r.ok) {
            throw new Error(body && body.error ? body.error.message + " (" + body.error.code + ")" : "HTTP " + r.status);
          }
          return body;
        });
      });
  }

  function runRowAction(btn) {
    var tr = btn.closest("tr");
    var action = btn.dataset.action;
    var host = tr.dataset.host;
    var ref = tr.dataset.ref;
    var buttons = tr.querySelectorAll(".row-action");
    var hadFocus = document.activeElement === btn;
    buttons.forEach(function (b) { b.disabled = true; });
    showRowResult(tr, action + "\u2026", false);
    var refresh = function () {
      return fetchJson(apiBase(host, ref), "GET").then(function (c) { setRowState(tr, c); });
    };
    fetchJson(apiBase(host, ref) + "/" + action, "POST")
      .then(function () {
        return refresh().then(function () {
          showRowResult(tr, action + ": done", false);
          var entry = openTabs.get(host + "/" + ref);
          if (entry) loadDetail(entry, currentSection(entry));
        });
      })
      .catch(function (err) {
        showRowResult(tr, action + " failed: " + err.message, true);
        return refresh().catch(function () { /* the error above says enough */ });
      })
      .finally(function () {
        buttons.forEach(function (b) { b.disabled = false; });
        if (hadFocus) btn.focus();
        applyFilter();
      });
  }

  function flash(text) {
    var el = document.getElementById("flash");
    if (el) el.textContent = text;
  }

  // ---- events --------------------------------------------------------------------
  document.body.addEventListener("htmx:afterSwap", function (e) {
    if (e.detail.target === hostListEl) {
      hostListEl.removeAttribute("aria-busy");
      markCurrentHost();
      updateHostsToggle();
      if (!state.host) {
        var first = hostListEl.querySelector('.host-link[data-status="ok"]') ||
          hostListEl.querySelector(".host-link");
        if (first) selectHost(first.dataset.host, false);
      }
    } else if (e.detail.target === listEl) {
      afterListSwap();
    }
  });

  document.addEventListener("click", function (e) {
    var t = e.target;
    var hostLink = t.closest(".host-link");
    if (hostLink) { e.preventDefault(); selectHost(hostLink.dataset.host, true); return; }
    var opener = t.closest(".open-container");
    if (opener) {
      openTab({ host: opener.dataset.host, ref: opener.dataset.ref, name: opener.dataset.name }, true);
      return;
    }
    var close = t.closest(".tab-close");
    if (close) { closeTab(close.dataset.key); return; }
    var tab = t.closest("[role=tab]");
    if (tab) { selectTab(tab, false); return; }
    var rowAction = t.closest(".row-action");
    if (rowAction) { runRowAction(rowAction); return; }
    var action = t.closest(".btn-action");
    if (action) { runAction(action); return; }
    var refresh = t.closest(".detail-refresh");
    if (refresh) {
      var entry = entryOf(refresh);
      if (entry) loadDetail(entry, currentSection(entry));
      return;
    }
  });

  // Arrow keys move between tabs (WAI-ARIA tabs pattern); Delete closes a container tab.
  document.addEventListener("keydown", function (e) {
    var tab = e.target.closest && e.target.closest("[role=tab]");
    if (!tab) return;
    var tabs = Array.prototype.slice.call(tab.closest("[role=tablist]").querySelectorAll("[role=tab]"));
    var i = tabs.indexOf(tab);
    var next = null;
    if (e.key === "ArrowRight") next = tabs[(i + 1) % tabs.length];
    else if (e.key === "ArrowLeft") next = tabs[(i - 1 + tabs.length) % tabs.length];
    else if (e.key === "Home") next = tabs[0];
    else if (e.key === "End") next = tabs[tabs.length - 1];
    else if (e.key === "Delete" && tab.dataset.key) { e.preventDefault(); closeTab(tab.dataset.key); return; }
    if (next) { e.preventDefault(); selectTab(next, true); }
  });

  filterEl.addEventListener("input", applyFilter);
  stoppedEl.addEventListener("change", function () {
    state.all = stoppedEl.checked;
    saveState();
    loadList();
  });
  document.getElementById("list-refresh").addEventListener("click", loadList);
  document.getElementById("hosts-refresh").addEventListener("click", loadHosts);
  hostsToggle.addEventListener("click", function () {
    setHostsOpen(hostsToggle.getAttribute("aria-expanded") !== "true");
    updateHostsToggle();
  });

  window.ArchNest.selectTab = selectTab;

  // ---- start -----------------------------------------------------------------------
  readState();
  stoppedEl.checked = state.all;
  var wantActive = state.active;
  state.tabs.slice().forEach(function (t) { openTab(t, false); });
  var activeEntry = wantActive && openTabs.get(wantActive);
  selectTab(activeEntry ? activeEntry.tab : document.getElementById("tab-containers"), false);
  saveState();
  // Host statuses change (an engine goes down, an agent goes stale): re-check them
  // now and then while the page is visible.
  setInterval(function () {
    if (document.visibilityState === "visible") loadHosts();
  }, 60000);
  setHostsOpen(!(phone.matches && state.host));
  loadHosts();
  if (state.host) loadList();
})();
