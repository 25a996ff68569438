/* The Projects page: compose projects across hosts (GET /api/projects), each with its
 * services and their containers per host, and project-wide start/stop/restart for admins
 * (POST /api/projects/{name}/{action}); it follows GET /api/events without a reload. Everything is built as DOM nodes with text: no
 * value from a host is ever parsed as markup. */

import { describe, enc, showStatus } from "./api.js";
import { confirmAction, el, request, send } from "./forms.js";

const root = document.getElementById("projects-app");
const ACTIONS = ["start", "stop", "restart"];
const STATE_BADGE = { running: "state-running", partial: "badge-stale", stopped: "state-exited" };
// What the Containers page accepts as a container reference (core/containers.py).
// How long the list waits after a live event before it is read again (ms): a burst (a
// project restarting) is one reload.
const RELOAD_MS = 500;
// When the list is read again after an action (ms).
const SETTLE_MS = [1000, 2500];
// The last action's outcome per project, shown under its title.
const outcomes = new Map();
const REF = /^(?:[0-9a-f]{12,64}|[A-Za-z0-9][A-Za-z0-9_.-]{0,127})$/;

function refOf(c) {
  return REF.test(c.name) ? c.name : c.id.slice(0, 64);
}

/** The Containers page with this container's detail open (state.js reads these). */
export function containerHref(c) {
  const key = `${c.host_id}/${refOf(c)}`;
  const q = new URLSearchParams({ host: c.host_id, open: key, tab: key });
  return `/containers?${q}`;
}

/** The Containers page's list of every host (stopped containers too), filtered to one project. */
export function projectListHref(name) {
  return `/containers?${new URLSearchParams({ host: "all", all: "1", project: name })}`;
}

function badge(text, cls) {
  return el("span", { class: `badge ${cls}` }, text);
}

function summary(answer) {
  const done = answer.results.filter((r) => r.ok).length;
  const skipped = answer.results.filter((r) => r.skipped).length;
  const failed = answer.results.filter((r) => !r.ok && !r.skipped);
  let text = `${answer.action}: ${done} done`;
  if (skipped) text += `, ${skipped} skipped (read-only host)`;
  if (failed.length) {
    text += `, ${failed.length} failed: ` + failed.map((r) => `${r.name} on ${r.host_id}: ${r.error}`).join("; ");
  }
  return { text, kind: failed.length ? "error" : "ok" };
}

async function act(project, action, section) {
  if (action !== "start") {
    const containers = project.services.reduce((n, s) => n + s.containers.length, 0);
    const ok = await confirmAction(
      `${action === "stop" ? "Stop" : "Restart"} every container of project “${project.name}” (${containers} on ${project.hosts.length} host${project.hosts.length === 1 ? "" : "s"})?`,
      action === "stop" ? "Stop" : "Restart",
    );
    if (!ok) return;
  }
  const line = section.querySelector(".project-result");
  const buttons = [...section.querySelectorAll(".project-action")];
  for (const b of buttons) b.disabled = true;
  showStatus(line, `${action}…`);
  let outcome;
  try {
    // A page limited to some hosts (?host=) acts on those hosts only.
    const answer = await send(`/api/projects/${enc(project.name)}/${enc(action)}${hostQuery()}`);
    outcome = summary(answer);
  } catch (err) {
    outcome = { text: describe(err), kind: "error" };
  }
  // Kept across reloads of the list: the sections are rebuilt each time.
  outcomes.set(project.name, outcome);
  await load();
  // The list answers from the live state, which follows the engines' events within a
  // couple of seconds: look again so the new states show without a click.
  for (const delay of SETTLE_MS) setTimeout(load, delay);
}

function actionButtons(project, section) {
  if (root.dataset.admin !== "true" || project.read_only) return null;
  const group = el("span", { class: "project-actions", role: "group", "aria-label": `Actions on project ${project.name}` });
  for (const action of ACTIONS) {
    const disabled = (action === "start" && project.state === "running") || (action === "stop" && project.state === "stopped");
    const button = el(
      "button",
      {
        type: "button",
        class: `btn btn-small project-action${action === "start" ? "" : " btn-danger"}`,
        "data-action": action,
        "aria-label": `${action[0].toUpperCase()}${action.slice(1)} project ${project.name}`,
        disabled,
      },
      `${action[0].toUpperCase()}${action.slice(1)}`,
    );
    button.addEventListener("click", () => act(project, action, section));
    group.append(button);
  }
  return group;
}

function containerRow(service, c, first) {
  const host = el("td", { class: "col-host" }, el("span", { class: "row-host" }, c.host_name || c.host_id), " ", badge(c.host_id.split(":")[0], "badge-source"));
  if (!c.manageable) host.append(" ", badge("read-only", "badge-unknown"));
  return el(
    "tr",
    { "data-host": c.host_id, "data-id": c.id, "data-name": c.name, "data-service": service.name, "data-state": c.state },
    first
      ? el("th", { scope: "row", rowspan: service.containers.length, class: "col-service" }, service.name || el("span", { class: "muted" }, "(no service label)"))
      : null,
    el("td", { class: "col-name" }, el("a", { href: containerHref(c), class: "container-link", title: `Open ${c.name} on ${c.host_name || c.host_id}` }, c.name)),
    host,
    el("td", { "data-cell": "state" }, badge(c.state, `state state-${c.state}`)),
    el("td", { class: "col-status" }, c.status || ""),
  );
}

function projectSection(project) {
  const search = [project.name, ...project.hosts, ...project.services.flatMap((s) => [s.name, ...s.containers.flatMap((c) => [c.name, c.host_name])])]
    .join(" ")
    .toLowerCase();
  const section = el("section", {
    class: "project",
    "data-project": project.name,
    "data-state": project.state,
    "data-search": search,
    "aria-label": `Project ${project.name}`,
  });
  const hosts = project.hosts.length;
  const head = el(
    "div",
    { class: "project-head" },
    el("h2", { class: "project-name" }, project.name),
    badge(project.state, `project-state ${STATE_BADGE[project.state] || "badge-unknown"}`),
    project.read_only ? badge("read-only", "badge-unknown") : null,
    el("span", { class: "muted small" }, `${project.services.length} service${project.services.length === 1 ? "" : "s"} on ${hosts} host${hosts === 1 ? "" : "s"}`),
    el("a", { href: projectListHref(project.name), class: "project-containers" }, "Show in Containers"),
    actionButtons(project, section),
  );
  const body = el("tbody");
  for (const service of project.services) {
    service.containers.forEach((c, i) => body.append(containerRow(service, c, i === 0)));
  }
  const table = el(
    "table",
    { class: "containers project-table", "aria-label": `Services of ${project.name}` },
    el(
      "thead",
      {},
      el("tr", {}, ...["Service", "Container", "Host", "State", "Status"].map((t) => el("th", { scope: "col" }, t))),
    ),
    body,
  );
  const result = el("p", { class: "project-result", role: "status" });
  const outcome = outcomes.get(project.name);
  if (outcome) showStatus(result, outcome.text, outcome.kind);
  section.append(head, result, el("div", { class: "table-wrap" }, table));
  return section;
}

function applyFilter() {
  const words = document.getElementById("project-filter").value.trim().toLowerCase().split(/\s+/).filter(Boolean);
  let shown = 0;
  for (const section of document.querySelectorAll("#project-list .project")) {
    const match = words.every((w) => section.dataset.search.includes(w));
    section.hidden = !match;
    if (match) shown += 1;
  }
  const none = document.querySelector("#project-list .no-match");
  if (none) none.hidden = shown > 0;
}

/** ?host= of the page (repeatable): it limits the page, and its actions, to those hosts. */
function hostQuery() {
  const hosts = new URLSearchParams(location.search).getAll("host");
  return hosts.length ? `?${new URLSearchParams(hosts.map((h) => ["host", h]))}` : "";
}

let loads = 0;

async function load() {
  const list = document.getElementById("project-list");
  const status = document.getElementById("projects-status");
  const mine = ++loads;
  list.setAttribute("aria-busy", "true");
  try {
    const projects = await request(`/api/projects${hostQuery()}`);
    if (mine !== loads) return; // a newer load answers instead
    status.textContent = "";
    if (!projects.length) {
      list.replaceChildren(el("p", { class: "muted empty" }, "No compose projects on any host: no container carries the com.docker.compose.project label."));
    } else {
      list.replaceChildren(...projects.map(projectSection), el("p", { class: "muted no-match", hidden: true }, "No project matches the filter."));
      applyFilter();
    }
  } catch (err) {
    if (err.status === 401) {
      window.location.assign(`/login?next=${enc(location.pathname + location.search)}`);
      return;
    }
    if (mine === loads) showStatus(status, `Could not load the projects: ${describe(err)}`, "error");
  } finally {
    if (mine === loads) list.removeAttribute("aria-busy");
  }
}

/** Follow GET /api/events (one stream per tab, as the Containers page): a container of
 * a shown project gets its new state at once, then the list is read again (debounced) for
 * the project's state, buttons, and containers that joined or left; a host event or a
 * reconnect (events lost meanwhile) reads it again too. */
function follow() {
  if (typeof EventSource === "undefined") return;
  let timer = 0;
  const reload = () => {
    clearTimeout(timer);
    timer = setTimeout(load, RELOAD_MS);
  };
  let connected = false;
  const source = new EventSource("/api/events");
  source.addEventListener("hello", () => {
    if (connected) reload();
    connected = true;
    root.dataset.live = "on";
  });
  source.addEventListener("container", (e) => {
    const data = JSON.parse(e.data);
    let shown = false;
    for (const tr of document.querySelectorAll("#project-list tr[data-id]")) {
      if (tr.dataset.id !== data.id || tr.dataset.host !== data.host_id) continue;
      shown = true;
      tr.dataset.state = data.state;
      const cell = tr.querySelector('[data-cell="state"]');
      if (cell) cell.replaceChildren(badge(data.state, `state state-${data.state}`));
    }
    // A container not shown matters only when it appears or goes (it may carry the labels).
    if (shown || data.action === "create" || data.action === "destroy") reload();
  });
  source.addEventListener("host", reload);
  const off = () => {
    root.dataset.live = "off";
  };
  source.addEventListener("end", off);
  source.addEventListener("error", off);
}

if (root) {
  document.getElementById("projects-refresh").addEventListener("click", () => load());
  document.getElementById("project-filter").addEventListener("input", applyFilter);
  load();
  follow();
}
