/* Settings > Users: the accounts and every user's API tokens, all through the JSON API
 * (/api/users, /api/tokens?all=1). Errors of a row action (the "last admin" refusal,
 * for one) are announced above the table they belong to. */

import { RequestError, describe, enc, showStatus } from "./api.js";
import { bindForm, confirmAction, el, request, send, when } from "./forms.js";

const page = document.querySelector("#users-table");
const me = document.querySelector(".settings-content [data-me]")?.dataset.me || "";
const usersBody = document.querySelector("#users-table tbody");
const usersError = document.getElementById("users-error");
const usersStatus = document.getElementById("users-status");
const tokensBody = document.querySelector("#all-tokens-table tbody");
const tokensError = document.getElementById("tokens-error");

/** Signed out meanwhile (or disabled): back to the sign-in page, then here again. */
function signInAgain(err) {
  if (err instanceof RequestError && err.status === 401) {
    window.location.assign(`/login?next=${enc(window.location.pathname)}`);
    return true;
  }
  return false;
}

function fail(region, err) {
  if (signInAgain(err)) return;
  showStatus(region, describe(err), "error");
}

function done(text) {
  usersError.textContent = "";
  showStatus(usersStatus, text, "ok");
}

function emptyRow(columns, text) {
  return el("tr", {}, el("td", { colspan: columns, class: "muted" }, text));
}

async function patchUser(username, body) {
  return send(`/api/users/${enc(username)}`, { method: "PATCH", body });
}

function roleSelect(user) {
  const select = el(
    "select",
    { "aria-label": `Role of ${user.username}`, class: "role-select" },
    el("option", { value: "viewer", selected: user.role === "viewer" }, "viewer"),
    el("option", { value: "admin", selected: user.role === "admin" }, "admin"),
  );
  select.addEventListener("change", async () => {
    select.disabled = true;
    try {
      await patchUser(user.username, { role: select.value });
      done(`${user.username} is now ${select.value === "admin" ? "an admin" : "a viewer"}.`);
      await loadUsers();
    } catch (err) {
      select.value = user.role; // the change did not happen
      fail(usersError, err);
    } finally {
      select.disabled = false;
    }
  });
  return select;
}

function resetPassword(user) {
  const input = el("input", { id: "reset-password", name: "password", type: "password", autocomplete: "new-password", required: true, minlength: 8 });
  const cancel = el("button", { type: "button", class: "btn" }, "Cancel");
  const form = el(
    "form",
    { class: "form-grid", novalidate: true },
    el("div", { class: "field" }, el("label", { for: "reset-password" }, "New password"), input, el("p", { class: "field-error", "data-error-for": "password" })),
    el("p", { class: "form-error" }),
    el("div", { class: "form-actions" }, el("button", { type: "submit", class: "btn btn-primary" }, "Set password"), cancel),
  );
  const dialog = el(
    "dialog",
    { "aria-label": `Reset the password of ${user.username}` },
    el("h2", {}, `Reset password: ${user.username}`),
    el("p", { class: "muted" }, "Their web sessions end; they sign in again with the new password. Their API tokens keep working."),
    form,
  );
  document.body.append(dialog);
  dialog.addEventListener("close", () => dialog.remove());
  cancel.addEventListener("click", () => dialog.close());
  bindForm(form, async (values) => {
    await patchUser(user.username, { password: values.password });
    dialog.close();
    done(`The password of ${user.username} was changed.`);
  });
  dialog.showModal();
  input.focus();
}

async function toggleDisabled(user) {
  if (!user.disabled) {
    const ok = await confirmAction(
      `Disable ${user.username}? They are signed out at once and their API tokens are refused until you enable them again.`,
      "Disable",
    );
    if (!ok) return;
  }
  try {
    await patchUser(user.username, { disabled: !user.disabled });
    done(`${user.username} is ${user.disabled ? "enabled" : "disabled"}.`);
    await loadUsers();
    await loadTokens();
  } catch (err) {
    fail(usersError, err);
  }
}

async function deleteUser(user) {
  const ok = await confirmAction(`Delete the user ${user.username}? Their sessions and API tokens end at once. This cannot be undone.`);
  if (!ok) return;
  try {
    await send(`/api/users/${enc(user.username)}`, { method: "DELETE" });
    done(`${user.username} was deleted.`);
    await loadUsers();
    await loadTokens();
  } catch (err) {
    fail(usersError, err);
  }
}

function button(text, onClick, danger = false) {
  const b = el("button", { type: "button", class: danger ? "btn btn-small btn-danger" : "btn btn-small" }, text);
  b.addEventListener("click", onClick);
  return b;
}

function userRow(user) {
  const name = el("td", {}, el("strong", {}, user.username), user.username === me ? el("span", { class: "muted small" }, " (you)") : null);
  const status = el("span", { class: user.disabled ? "badge badge-error" : "badge badge-ok" }, user.disabled ? "disabled" : "active");
  const actions = el(
    "td",
    { class: "row-actions" },
    button(user.disabled ? "Enable" : "Disable", () => toggleDisabled(user)),
    button("Reset password", () => resetPassword(user)),
    button("Delete", () => deleteUser(user), true),
  );
  return el(
    "tr",
    { "data-username": user.username },
    name,
    el("td", {}, roleSelect(user)),
    el("td", {}, status),
    el("td", {}, when(user.created_at)),
    el("td", {}, when(user.last_login_at)),
    actions,
  );
}

async function loadUsers() {
  try {
    const users = await request("/api/users");
    usersBody.replaceChildren(...(users.length ? users.map(userRow) : [emptyRow(6, "No users.")]));
  } catch (err) {
    fail(usersError, err);
  }
}

function expiry(token) {
  if (!token.expires_at) return "never";
  const expired = new Date(token.expires_at).getTime() <= Date.now();
  return expired ? el("span", { class: "badge badge-error" }, `expired ${when(token.expires_at)}`) : when(token.expires_at);
}

async function revoke(token) {
  const ok = await confirmAction(`Revoke the API token "${token.name}" of ${token.username}? Anything using it gets 401 from then on.`, "Revoke");
  if (!ok) return;
  try {
    await send(`/api/tokens/${enc(token.id)}`, { method: "DELETE" });
    tokensError.textContent = "";
    await loadTokens();
  } catch (err) {
    fail(tokensError, err);
  }
}

function tokenRow(token) {
  return el(
    "tr",
    { "data-token-id": token.id },
    el("td", {}, token.username),
    el("td", {}, token.name),
    el("td", {}, when(token.created_at)),
    el("td", {}, when(token.last_used_at)),
    el("td", {}, expiry(token)),
    el("td", {}, button("Revoke", () => revoke(token), true)),
  );
}

async function loadTokens() {
  try {
    const tokens = await request("/api/tokens?all=1");
    tokensBody.replaceChildren(...(tokens.length ? tokens.map(tokenRow) : [emptyRow(6, "No API tokens.")]));
  } catch (err) {
    fail(tokensError, err);
  }
}

if (page) {
  bindForm(document.getElementById("add-user"), async (values, form) => {
    const created = await send("/api/users", { body: { username: values.username, role: values.role, password: values.password } });
    form.reset();
    done(`${created.username} was added as ${created.role === "admin" ? "an admin" : "a viewer"}.`);
    await loadUsers();
  });
  loadUsers();
  loadTokens();
}
