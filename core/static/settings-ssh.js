/* Settings > SSH targets (core/templates/core/settings_ssh.html). Everything goes
 * through the JSON API (/api/ssh/...): the targets list, the plugins' extra fields,
 * scanning and pinning host keys, testing and saving. Credentials are only ever sent,
 * never read back: the API says whether one is set. */

import { describe } from "./api.js";
import { bindForm, clearErrors, confirmAction, el, fileIntoTextarea, formValues, request, send, showError } from "./forms.js";

const AUTH_LABEL = { key: "private key", password: "password", certificate: "OpenSSH certificate" };
const SECRETS = ["private_key", "passphrase", "password", "certificate"];

const $ = (id) => document.getElementById(id);
const form = $("target-form");
const editor = $("target-editor");

const state = {
  targets: [],
  fields: [], // the plugins' extra fields (GET /api/ssh/target-fields)
  editing: null, // the saved target being edited, or null for a new one
  jump: [], // ids of the chosen jump hosts, in order
  hostKeys: [], // the keys pinned in the form (saved with the target)
  fingerprints: {}, // host key line -> its SHA256 fingerprint, for what is pinned
};

function setStatus(node, text, kind = "info") {
  node.textContent = text;
  node.classList.toggle("error-text", kind === "error");
  node.classList.toggle("ok-text", kind === "ok");
  node.setAttribute("role", kind === "error" ? "alert" : "status");
}

function byId(id) {
  return state.targets.find((t) => t.id === id);
}

function testOutcome(result) {
  const via = result.hops ? ` through ${result.hops} jump host${result.hops > 1 ? "s" : ""}` : "";
  return `Connected${via}: ${result.server_version} (${result.algorithm} ${result.fingerprint}), ${result.seconds} s`;
}

/* ---- the table ------------------------------------------------------------ */

function renderTable() {
  const body = $("targets-table").querySelector("tbody");
  body.replaceChildren(...state.targets.map(row));
  $("targets-empty").hidden = state.targets.length > 0;
}

function row(t) {
  const jumps = t.jump.map((id) => (byId(id) ? byId(id).name : `#${id}`)).join(" → ");
  const keys = t.host_key_fingerprints.length
    ? t.host_key_fingerprints.map((fp) => el("code", { class: "fingerprint" }, fp))
    : el("span", { class: "error-text" }, "none pinned");
  const outcome = el("p", { class: "row-status", "aria-live": "polite" });
  const test = el("button", { type: "button", class: "btn btn-small" }, "Test");
  const edit = el("button", { type: "button", class: "btn btn-small" }, "Edit");
  const remove = el("button", { type: "button", class: "btn btn-small btn-danger" }, "Remove");
  test.addEventListener("click", async () => {
    test.disabled = true;
    setStatus(outcome, "Testing…");
    try {
      setStatus(outcome, testOutcome(await send(`/api/ssh/targets/${t.id}/test`)), "ok");
    } catch (err) {
      setStatus(outcome, describe(err), "error");
    } finally {
      test.disabled = false;
    }
  });
  edit.addEventListener("click", () => openEditor(t));
  remove.addEventListener("click", () => removeTarget(t, outcome));
  return el(
    "tr",
    { "data-id": t.id, "data-name": t.name },
    el("td", {}, t.name),
    el("td", {}, `${t.username}@${t.host}:${t.port}`),
    el("td", {}, AUTH_LABEL[t.auth] || t.auth),
    el("td", {}, jumps || "direct"),
    el("td", { class: "keys" }, keys),
    el("td", {}, el("div", { class: "form-actions" }, test, edit, remove), outcome),
  );
}

async function removeTarget(t, outcome) {
  const users = state.targets.filter((o) => o.jump.includes(t.id)).map((o) => o.name);
  if (users.length) {
    // The API refuses it too (409); saying so first spares a pointless confirmation.
    setStatus(outcome, `${t.name} is a jump host of ${users.join(", ")}: remove it from their jump hosts first.`, "error");
    return;
  }
  const sure = await confirmAction(
    `Remove the SSH target “${t.name}” (${t.username}@${t.host}:${t.port})? Its stored credentials and pinned keys are deleted, and hosts using it disappear from the Containers page.`,
    "Remove",
  );
  if (!sure) return;
  try {
    await send(`/api/ssh/targets/${t.id}`, { method: "DELETE" });
    if (state.editing && state.editing.id === t.id) closeEditor();
    await load();
    setStatus($("targets-status"), `Removed ${t.name}.`, "ok");
  } catch (err) {
    setStatus(outcome, describe(err), "error");
  }
}

/* ---- the form ------------------------------------------------------------- */

function auth() {
  return form.querySelector('input[name="auth"]:checked').value;
}

function showAuthFields() {
  const kind = auth();
  for (const group of form.querySelectorAll("[data-auth]")) {
    const on = group.dataset.auth.split(" ").includes(kind);
    group.hidden = !on;
    for (const control of group.querySelectorAll("input, textarea")) control.disabled = !on;
  }
}

function renderJumps() {
  const own = state.editing ? state.editing.id : null;
  $("jump-list").replaceChildren(
    ...state.jump.map((id, i) => {
      const name = byId(id) ? byId(id).name : `#${id}`;
      const up = el("button", { type: "button", class: "btn btn-small" }, "Move up");
      const down = el("button", { type: "button", class: "btn btn-small" }, "Move down");
      const drop = el("button", { type: "button", class: "btn btn-small" }, "Remove from chain");
      up.disabled = i === 0;
      down.disabled = i === state.jump.length - 1;
      const move = (to) => {
        const [item] = state.jump.splice(i, 1);
        state.jump.splice(to, 0, item);
        renderJumps();
      };
      up.addEventListener("click", () => move(i - 1));
      down.addEventListener("click", () => move(i + 1));
      drop.addEventListener("click", () => {
        state.jump.splice(i, 1);
        renderJumps();
      });
      return el("li", { "data-id": id }, el("span", { class: "jump-name" }, name), " ", up, down, drop);
    }),
  );
  $("jump-none").hidden = state.jump.length > 0;
  const choices = state.targets.filter((t) => t.id !== own && !state.jump.includes(t.id));
  $("t-jump-pick").replaceChildren(
    ...choices.map((t) => el("option", { value: t.id }, `${t.name} (${t.username}@${t.host}:${t.port})`)),
  );
  $("jump-add").disabled = choices.length === 0;
}

function renderPinned() {
  const fps = state.hostKeys.map((k) => state.fingerprints[k] || k);
  $("pinned-keys").replaceChildren(
    fps.length
      ? el("p", {}, "Pinned: ", ...fps.map((fp) => el("code", { class: "fingerprint" }, fp)))
      : el("p", { class: "muted" }, "No host key pinned yet: scan it, compare the fingerprint with the server's, then pin it."),
  );
}

function pin(scan) {
  state.hostKeys = [scan.host_key];
  state.fingerprints[scan.host_key] = scan.fingerprint;
  renderPinned();
  const note = state.editing ? "Pinned in the form: save the target to keep it." : "Pinned in the form: it is stored when you save.";
  $("scan-result").replaceChildren(el("p", { class: "ok-text", role: "status" }, note));
  form.querySelector('[data-error-for="host_keys"]').textContent = "";
}

function renderScan(scan) {
  const box = $("scan-result");
  const presented = el("div", { class: "new" }, el("strong", {}, "Presented now"), el("br"), `${scan.algorithm} `, el("code", { class: "fingerprint" }, scan.fingerprint));
  if (scan.matches) {
    box.replaceChildren(el("p", { class: "ok-text", role: "status" }, `${scan.algorithm} ${scan.fingerprint}: this key is pinned already.`));
    return;
  }
  if (!state.hostKeys.length) {
    const button = el("button", { type: "button", class: "btn btn-primary" }, "Pin this key");
    button.addEventListener("click", () => pin(scan));
    box.replaceChildren(
      el("p", {}, "The server presents this key. Compare the fingerprint with the server's own (", el("code", {}, "ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub"), ") before pinning it:"),
      el("div", { class: "fingerprints" }, presented),
      el("div", { class: "form-actions" }, button),
    );
    return;
  }
  const old = el(
    "div",
    { class: "old" },
    el("strong", {}, "Pinned"),
    ...state.hostKeys.flatMap((k) => [el("br"), el("code", { class: "fingerprint" }, state.fingerprints[k] || k)]),
  );
  const replace = el("button", { type: "button", class: "btn btn-danger" }, "Replace the pinned key…");
  replace.addEventListener("click", async () => {
    const sure = await confirmAction(
      `The host key has changed. Replace the pinned key with ${scan.algorithm} ${scan.fingerprint}? Do this only if you know why the server's key changed (a rebuilt host, a new key); otherwise someone may be in the middle.`,
      "Replace the pinned key",
    );
    if (sure) pin(scan);
  });
  box.replaceChildren(
    el("p", { class: "alert alert-warn", role: "alert" }, "Warning: the server presents a different host key than the one pinned. Nothing was sent to it."),
    el("div", { class: "fingerprints" }, old, presented),
    el("div", { class: "form-actions" }, replace),
  );
}

function renderPluginFields(values) {
  const box = $("plugin-fields");
  $("plugin-fieldset").hidden = state.fields.length === 0;
  box.replaceChildren(
    ...state.fields.map((f) => {
      const id = `t-x-${f.name}`;
      const value = values && f.name in values ? values[f.name] : f.default;
      const hint = f.description ? el("span", { class: "hint" }, f.description) : null;
      const slot = el("p", { class: "field-error", "data-error-for": f.name });
      if (f.type === "boolean") {
        return el("div", { class: "field" }, el("label", { class: "check", for: id }, el("input", { type: "checkbox", id, name: f.name, checked: Boolean(value) }), ` ${f.title}`), hint, slot);
      }
      const type = f.type === "integer" || f.type === "number" ? "number" : "text";
      return el("div", { class: "field" }, el("label", { for: id }, f.title), el("input", { type, id, name: f.name, value: value ?? "" }), hint, slot);
    }),
  );
}

function openEditor(target) {
  state.editing = target || null;
  form.reset();
  clearErrors(form);
  $("test-result").textContent = "";
  $("scan-result").replaceChildren();
  $("form-heading").textContent = target ? `Edit ${target.name}` : "Add an SSH target";
  state.jump = target ? [...target.jump] : [];
  state.hostKeys = target ? [...target.host_keys] : [];
  state.fingerprints = {};
  if (target) target.host_keys.forEach((k, i) => (state.fingerprints[k] = target.host_key_fingerprints[i]));
  if (target) {
    for (const name of ["name", "host", "port", "username"]) form.elements[name].value = target[name];
    form.querySelector(`input[name="auth"][value="${target.auth}"]`).checked = true;
  }
  for (const key of SECRETS) {
    form.querySelector(`[data-set-hint="${key}"]`).hidden = !(target && target[`has_${key}`]);
  }
  showAuthFields();
  renderJumps();
  renderPinned();
  renderPluginFields(target);
  editor.hidden = false;
  form.elements.name.focus();
}

function closeEditor() {
  state.editing = null;
  editor.hidden = true;
  form.reset();
}

/** The JSON body for a save or a test: secrets only when typed (empty keeps a stored
 * one), only those of the chosen authentication. */
function body(values) {
  const out = { name: values.name, host: values.host, port: values.port, username: values.username, auth: values.auth };
  for (const key of SECRETS) if (values[key]) out[key] = values[key];
  // A new key without a passphrase has none: the old key's passphrase must not stay.
  if (out.private_key && !out.passphrase && state.editing && state.editing.has_passphrase) out.passphrase = null;
  out.jump = [...state.jump];
  out.host_keys = [...state.hostKeys];
  for (const f of state.fields) if (f.name in values) out[f.name] = values[f.name];
  return out;
}

async function save(values) {
  if (!state.hostKeys.length) {
    const slot = form.querySelector('[data-error-for="host_keys"]');
    slot.textContent = "No host key is pinned: press “Scan host key”, compare the fingerprint, and pin it before saving.";
    $("scan-key").focus();
    return;
  }
  const data = body(values);
  const saved = state.editing
    ? await send(`/api/ssh/targets/${state.editing.id}`, { method: "PATCH", body: data })
    : await send("/api/ssh/targets", { body: data });
  closeEditor();
  await load();
  setStatus($("targets-status"), `Saved ${saved.name}.`, "ok");
}

async function scan() {
  clearErrors(form);
  const values = formValues(form);
  const e = state.editing;
  const port = values.port || 22;
  const unchanged =
    e && e.host === values.host && e.port === port && e.jump.join() === state.jump.join() && e.host_keys.join() === state.hostKeys.join();
  const box = $("scan-result");
  box.replaceChildren(el("p", { role: "status" }, "Scanning…"));
  try {
    // A saved target as it is: its own scan (compared with what is pinned for it);
    // otherwise the host as the form has it, through the chosen jump hosts.
    const result = unchanged
      ? await send(`/api/ssh/targets/${e.id}/scan-host-key`)
      : await send("/api/ssh/targets/scan-host-key", {
          body: { host: values.host, port, jump: [...state.jump], host_keys: [...state.hostKeys] },
        });
    renderScan(result);
  } catch (err) {
    box.replaceChildren();
    showError(form, err.field ? err : Object.assign(err, { field: "host_keys" }));
  }
}

async function testDraft() {
  clearErrors(form);
  const out = $("test-result");
  setStatus(out, "Testing…");
  const data = body(formValues(form));
  if (!data.name) delete data.name;
  // An edit is tried on the saved target (its stored secrets fill in the empty fields).
  const url = state.editing ? `/api/ssh/targets/${state.editing.id}/test` : "/api/ssh/targets/test";
  try {
    setStatus(out, testOutcome(await send(url, { body: data })), "ok");
  } catch (err) {
    if (err.field) {
      // The words go beside the field at fault; here only that the test failed.
      setStatus(out, `The test failed (${err.code}): see the message above.`, "error");
      showError(form, err);
    } else {
      setStatus(out, describe(err), "error");
    }
  }
}

async function load() {
  try {
    state.targets = await request("/api/ssh/targets");
    renderTable();
  } catch (err) {
    setStatus($("targets-status"), `Could not load the targets: ${describe(err)}`, "error");
  }
}

async function start() {
  for (const radio of form.querySelectorAll('input[name="auth"]')) radio.addEventListener("change", showAuthFields);
  fileIntoTextarea($("t-private-key-file"), $("t-private-key"));
  fileIntoTextarea($("t-certificate-file"), $("t-certificate"));
  $("add-target").addEventListener("click", () => openEditor(null));
  $("cancel-edit").addEventListener("click", closeEditor);
  $("scan-key").addEventListener("click", scan);
  $("test-draft").addEventListener("click", testDraft);
  $("jump-add").addEventListener("click", () => {
    const id = Number($("t-jump-pick").value);
    if (id && !state.jump.includes(id)) state.jump.push(id);
    renderJumps();
  });
  bindForm(form, save);
  try {
    state.fields = await request("/api/ssh/target-fields");
  } catch (err) {
    setStatus($("targets-status"), `Could not load the plugins' target fields: ${describe(err)}`, "error");
  }
  await load();
}

start();
