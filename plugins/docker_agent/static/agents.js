/* Settings › Agents: enroll hosts (token and install command shown once), revoke,
 * re-issue, and install the agent over SSH, all through the JSON API. No token is ever
 * kept in the page: it lives only in the dialog that shows it. */

import { bindForm, confirmAction, el, request, send, showOnce, when } from "/static/core/forms.js";
import { describe, enc } from "/static/core/api.js";

const API = "/api/agents/docker/enrollments";
const STATUS = {
  ok: ["badge badge-ok", "ok"],
  stale: ["badge badge-stale", "stale"],
  never: ["badge badge-unknown", "never reported"],
  revoked: ["badge badge-error", "revoked"],
};

const table = document.querySelector("#enrollment-table tbody");
const listError = document.getElementById("enrollments-error");
const status = document.getElementById("enrollments-status");
const enrollForm = document.getElementById("enroll-form");
const sshForm = document.getElementById("ssh-install-form");
const targetSelect = document.getElementById("ssh-target");
const sshResult = document.getElementById("ssh-install-result");

function say(text) {
  status.hidden = false;
  status.textContent = text;
}

function showToken(title, answer) {
  return showOnce(title, [
    { label: "Install command", value: answer.install_command },
    { label: "Token", value: answer.token },
  ], "Shown once: copy it now, it cannot be shown again. Run the install command on the host (it needs curl, jq, bash and the docker CLI).");
}

function row(entry) {
  const [cls, label] = STATUS[entry.status] || STATUS.never;
  const hidden = (text) => el("span", { class: "visually-hidden" }, ` ${text}`);
  const reissue = el("button", { type: "button", class: "btn btn-small" }, "Re-issue token", hidden(entry.host));
  reissue.addEventListener("click", () => reissueToken(entry.host));
  const actions = [reissue];
  if (!entry.revoked) {
    const revoke = el("button", { type: "button", class: "btn btn-small btn-danger" }, "Revoke", hidden(entry.host));
    revoke.addEventListener("click", () => revokeHost(entry.host));
    actions.push(" ", revoke);
  }
  return el(
    "tr",
    { "data-host": entry.host, "data-status": entry.status },
    el("td", {}, entry.host),
    el("td", {}, when(entry.created_at)),
    el("td", { class: "last-report" }, when(entry.last_report_at)),
    el("td", {}, el("span", { class: cls }, label)),
    el("td", { class: "actions" }, ...actions),
  );
}

async function load() {
  table.parentElement.setAttribute("aria-busy", "true");
  listError.textContent = "";
  try {
    const entries = await request(API);
    table.replaceChildren(
      ...(entries.length ? entries.map(row) : [el("tr", {}, el("td", { colspan: 5, class: "muted" }, "No host is enrolled yet."))]),
    );
  } catch (err) {
    listError.textContent = `Could not load the enrolled hosts: ${describe(err)}`;
    listError.setAttribute("role", "alert");
  } finally {
    table.parentElement.setAttribute("aria-busy", "false");
  }
}

async function revokeHost(host) {
  const ok = await confirmAction(`Revoke the agent token of ${host}? Its agent is refused (401) from its next report on; the last report stays.`, "Revoke");
  if (!ok) return;
  try {
    await send(`${API}/${enc(host)}`, { method: "DELETE" });
    say(`Revoked the token of ${host}.`);
  } catch (err) {
    listError.textContent = describe(err);
    listError.setAttribute("role", "alert");
  }
  await load();
}

async function reissueToken(host) {
  const ok = await confirmAction(`Issue a new token for ${host}? The current token stops working at once; run the new install command on the host.`, "Re-issue token");
  if (!ok) return;
  try {
    const answer = await send(`${API}/${enc(host)}/token`, { body: {} });
    await load();
    await showToken(`New token for ${host}`, answer);
  } catch (err) {
    listError.textContent = describe(err);
    listError.setAttribute("role", "alert");
    await load();
  }
}

async function loadTargets() {
  try {
    const targets = await request("/api/ssh/targets");
    targetSelect.replaceChildren(
      ...(targets.length
        ? targets.map((t) => el("option", { value: t.id }, `${t.name} (${t.username}@${t.host}:${t.port})`))
        : [el("option", { value: "" }, "No SSH target: add one under SSH targets")]),
    );
  } catch (err) {
    targetSelect.replaceChildren(el("option", { value: "" }, `Could not load SSH targets: ${describe(err)}`));
  }
}

bindForm(enrollForm, async (values) => {
  const answer = await send(API, { body: { host: values.host } });
  enrollForm.reset();
  await load();
  await showToken(`Agent host ${answer.host} enrolled`, answer);
});

bindForm(sshForm, async (values) => {
  const body = { target_id: values.target_id === "" ? null : Number(values.target_id) };
  if (values.host) body.host = values.host;
  if (values.docker_host) body.docker_host = values.docker_host;
  if (values.interval !== null) body.interval = values.interval;
  sshResult.replaceChildren(el("p", { class: "muted" }, "Installing…"));
  try {
    const answer = await send("/api/agents/docker/ssh-install", { body });
    sshResult.replaceChildren(
      el("p", { class: "ok-text" }, el("strong", {}, `Installed on ${answer.host}.`), " It reports within one interval."),
      el("pre", { class: "command" }, answer.output),
    );
  } catch (err) {
    sshResult.replaceChildren();
    throw err;
  } finally {
    await load();
  }
});

load();
loadTargets();
