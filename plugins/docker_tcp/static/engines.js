/* Settings › Docker engines: list, add, edit, test and remove engines through the JSON
 * API (/api/docker/hosts). Stored certificates and keys never come back from the API,
 * only "set" flags: on edit the PEM boxes start empty, and empty means "keep". */

import { bindForm, clearErrors, confirmAction, el, fileIntoTextarea, formValues, request, send, showError } from "/static/core/forms.js";
import { RequestError, describe } from "/static/core/api.js";

const API = "/api/docker/hosts";
const PEMS = [
  ["ca", "CA"],
  ["cert", "certificate"],
  ["key", "key"],
];

const table = document.querySelector("#engine-table tbody");
const listError = document.getElementById("engines-error");
const status = document.getElementById("engines-status");
const form = document.getElementById("engine-form");
const heading = document.getElementById("engine-form-heading");
const verify = form.elements["tls.verify"];
const warning = document.getElementById("verify-warning");
const testResult = document.getElementById("engine-test-result");
const cancel = document.getElementById("engine-cancel");

let editing = null; // the engine being edited (its public view), or null when adding

/** "Docker Engine 27.3.1, API 1.47, linux/amd64, 3 containers (2 running)" */
function describeFacts(facts) {
  const parts = [`Docker Engine ${facts.engine_version || "?"}`, `API ${facts.api_version || "?"}`];
  if (facts.os || facts.arch) parts.push([facts.os, facts.arch].filter(Boolean).join("/"));
  if (typeof facts.containers === "number") {
    parts.push(`${facts.containers} containers (${facts.running ?? 0} running)`);
  }
  return parts.join(", ");
}

function showResult(node, facts, err) {
  node.classList.remove("muted", "ok-text", "error-text");
  node.classList.add(err ? "error-text" : "ok-text");
  node.replaceChildren(...(err ? [el("strong", {}, "Connection failed: "), describe(err)] : [el("strong", {}, "Connected: "), describeFacts(facts)]));
}

function tlsSummary(engine) {
  const tls = engine.tls;
  const set = PEMS.filter(([key]) => tls[`has_${key}`]).map(([, label]) => label);
  const unset = PEMS.filter(([key]) => !tls[`has_${key}`]).map(([, label]) => label);
  const usesTls = engine.url.startsWith("https://");
  const children = [];
  if (usesTls || set.length) {
    children.push(el("span", { class: tls.verify ? "badge badge-ok" : "badge badge-stale" }, tls.verify ? "verify on" : "verify off"), " ");
  }
  children.push(set.length ? `${set.join(", ")} set` : "no certificates");
  if (set.length && unset.length) children.push(el("span", { class: "muted" }, `; ${unset.join(", ")} not set`));
  return children;
}

function row(engine) {
  const result = el("span", { class: "engine-status muted", role: "status" }, "not tested");
  const testButton = el("button", { type: "button", class: "btn btn-small" }, "Test", el("span", { class: "visually-hidden" }, ` ${engine.name}`));
  const editButton = el("button", { type: "button", class: "btn btn-small" }, "Edit", el("span", { class: "visually-hidden" }, ` ${engine.name}`));
  const removeButton = el("button", { type: "button", class: "btn btn-small btn-danger" }, "Remove", el("span", { class: "visually-hidden" }, ` ${engine.name}`));
  testButton.addEventListener("click", async () => {
    testButton.disabled = true;
    result.classList.remove("ok-text", "error-text");
    result.classList.add("muted");
    result.textContent = "testing…";
    try {
      showResult(result, await send(`${API}/${engine.id}/test`, { body: {} }));
    } catch (err) {
      showResult(result, null, err);
    } finally {
      testButton.disabled = false;
    }
  });
  editButton.addEventListener("click", () => startEdit(engine));
  removeButton.addEventListener("click", () => remove(engine));
  return el(
    "tr",
    { "data-engine": engine.id, "data-name": engine.name },
    el("td", {}, engine.name),
    el("td", {}, el("code", {}, engine.url)),
    el("td", { class: "engine-tls" }, tlsSummary(engine)),
    el("td", {}, testButton, result),
    el("td", {}, el("div", { class: "toolbar" }, editButton, removeButton)),
  );
}

async function load() {
  listError.textContent = "";
  table.setAttribute("aria-busy", "true");
  try {
    const engines = await request(API);
    table.replaceChildren(...(engines.length ? engines.map(row) : [el("tr", {}, el("td", { colspan: 5, class: "muted" }, "No engines yet: add one below."))]));
  } catch (err) {
    table.replaceChildren();
    listError.textContent = describe(err);
    listError.setAttribute("role", "alert");
  } finally {
    table.setAttribute("aria-busy", "false");
  }
}

function say(text) {
  status.textContent = text;
  status.hidden = !text;
}

async function remove(engine) {
  const question = `Remove the engine “${engine.name}” (${engine.url})? Its containers keep running; ArchNest stops showing and managing them.`;
  if (!(await confirmAction(question, "Remove"))) return;
  try {
    await send(`${API}/${engine.id}`, { method: "DELETE" });
    if (editing && editing.id === engine.id) resetForm();
    say(`Removed the engine “${engine.name}”.`);
  } catch (err) {
    listError.textContent = describe(err);
    listError.setAttribute("role", "alert");
  }
  await load();
}

function pemParts(key) {
  const field = form.querySelector(`.pem-field[data-pem="${key}"]`);
  return {
    textarea: form.elements[`tls.${key}`],
    clear: form.elements[`clear.${key}`],
    clearBox: field.querySelector("[data-clear-for]"),
    hint: field.querySelector("[data-hint-for]"),
  };
}

function showVerifyWarning() {
  warning.hidden = verify.checked;
}

function resetForm() {
  editing = null;
  form.reset();
  clearErrors(form);
  testResult.textContent = "";
  heading.textContent = "Add an engine";
  cancel.hidden = true;
  for (const [key] of PEMS) {
    const { clearBox, hint, textarea } = pemParts(key);
    clearBox.hidden = true;
    textarea.disabled = false;
    hint.textContent = "Paste the PEM text, or choose the file.";
  }
  showVerifyWarning();
}

function startEdit(engine) {
  resetForm();
  editing = engine;
  heading.textContent = `Edit engine “${engine.name}”`;
  cancel.hidden = false;
  form.elements.name.value = engine.name;
  form.elements.url.value = engine.url;
  verify.checked = engine.tls.verify;
  for (const [key, label] of PEMS) {
    const { clearBox, hint } = pemParts(key);
    const isSet = engine.tls[`has_${key}`];
    clearBox.hidden = !isSet;
    hint.textContent = isSet ? `Set — leave empty to keep the stored ${label}, or paste or choose a new one to replace it.` : "Not set. Paste the PEM text, or choose the file.";
  }
  showVerifyWarning();
  form.scrollIntoView({ block: "start" });
  form.elements.name.focus();
}

/** The request body from the form: for a new engine the fields given; for an edit the
 * fields as PATCH reads them (an empty PEM box is left out, so the stored one stays;
 * "Remove the stored ..." sends null). */
function bodyFrom(values) {
  const tls = { verify: values["tls.verify"] };
  let material = false;
  for (const [key] of PEMS) {
    const text = values[`tls.${key}`] || "";
    if (editing && values[`clear.${key}`]) {
      tls[key] = null;
    } else if (text.trim()) {
      tls[key] = text;
      material = true;
    }
  }
  const body = { name: values.name, url: values.url };
  if (editing || material || !tls.verify) body.tls = tls;
  return body;
}

async function testForm() {
  clearErrors(form);
  testResult.classList.remove("ok-text", "error-text");
  testResult.classList.add("muted");
  testResult.textContent = "Testing the connection…";
  const body = bodyFrom(formValues(form));
  if (!body.name) delete body.name; // a name is not needed to test
  try {
    const facts = editing ? await send(`${API}/${editing.id}/test`, { body }) : await send(`${API}/test`, { body });
    showResult(testResult, facts);
  } catch (err) {
    if (err instanceof RequestError && err.status === 400) {
      testResult.textContent = "";
      showError(form, err);
    } else {
      showResult(testResult, null, err);
    }
  }
}

bindForm(form, async (values) => {
  testResult.textContent = "";
  const body = bodyFrom(values);
  const saved = editing ? await send(`${API}/${editing.id}`, { method: "PATCH", body }) : await send(API, { body });
  say(editing ? `Saved the engine “${saved.name}”.` : `Added the engine “${saved.name}”.`);
  resetForm();
  await load();
});

for (const [key] of PEMS) {
  const { textarea, clear } = pemParts(key);
  fileIntoTextarea(form.querySelector(`[data-file-for="${key}"]`), textarea);
  // Removing the stored PEM and pasting a new one at once would be ambiguous.
  clear.addEventListener("change", () => {
    textarea.disabled = clear.checked;
    if (clear.checked) textarea.value = "";
  });
}
verify.addEventListener("change", showVerifyWarning);
document.getElementById("engine-test").addEventListener("click", async (event) => {
  const button = event.currentTarget;
  button.disabled = true;
  try {
    await testForm();
  } finally {
    button.disabled = false;
  }
});
cancel.addEventListener("click", resetForm);

resetForm();
load();
