/* Account: the signed-in user's own password and API tokens (/api/auth/password,
 * /api/tokens). Any signed-in user, viewers too. A new token is shown once. */

import { RequestError, describe, enc, showStatus } from "./api.js";
import { bindForm, confirmAction, el, request, send, showOnce, when } from "./forms.js";

const tokensBody = document.querySelector("#tokens-table tbody");
const tokensError = document.getElementById("tokens-error");
const passwordOk = document.getElementById("password-ok");

function signInAgain(err) {
  if (err instanceof RequestError && err.status === 401) {
    window.location.assign(`/login?next=${enc(window.location.pathname)}`);
    return true;
  }
  return false;
}

function fail(err) {
  if (signInAgain(err)) return;
  showStatus(tokensError, describe(err), "error");
}

function expiry(token) {
  if (!token.expires_at) return "never";
  const expired = new Date(token.expires_at).getTime() <= Date.now();
  return expired ? el("span", { class: "badge badge-error" }, `expired ${when(token.expires_at)}`) : when(token.expires_at);
}

async function revoke(token) {
  const ok = await confirmAction(`Revoke the API token "${token.name}"? Anything using it gets 401 from then on.`, "Revoke");
  if (!ok) return;
  try {
    await send(`/api/tokens/${enc(token.id)}`, { method: "DELETE" });
    tokensError.textContent = "";
    await loadTokens();
  } catch (err) {
    fail(err);
  }
}

function tokenRow(token) {
  const button = el("button", { type: "button", class: "btn btn-small btn-danger" }, "Revoke");
  button.addEventListener("click", () => revoke(token));
  return el(
    "tr",
    { "data-token-id": token.id },
    el("td", {}, token.name),
    el("td", {}, when(token.created_at)),
    el("td", {}, when(token.last_used_at)),
    el("td", {}, expiry(token)),
    el("td", {}, button),
  );
}

async function loadTokens() {
  try {
    const tokens = await request("/api/tokens");
    const rows = tokens.length ? tokens.map(tokenRow) : [el("tr", {}, el("td", { colspan: 5, class: "muted" }, "No API tokens yet."))];
    tokensBody.replaceChildren(...rows);
  } catch (err) {
    fail(err);
  }
}

// Absent for users of single sign-on: they have no password here.
const passwordForm = document.getElementById("change-password");
if (passwordForm) bindForm(passwordForm, async (values, form) => {
  passwordOk.textContent = "";
  const confirm = form.querySelector('[name="confirm"]').value;
  if (values.new !== confirm) {
    // Caught here, beside the field: nothing is sent.
    throw new RequestError(400, "mismatch", "The two new passwords differ.", "confirm");
  }
  try {
    await send("/api/auth/password", { body: { current: values.current, new: values.new } });
  } catch (err) {
    if (!signInAgain(err)) throw err;
    return;
  }
  form.reset();
  showStatus(passwordOk, "Password changed. Your other sessions were signed out.", "ok");
});

const tokenForm = document.getElementById("create-token");
bindForm(tokenForm, async (values, form) => {
  const created = await send("/api/tokens", { body: { name: values.name, expires_in_days: values.expires_in_days } });
  form.reset();
  await loadTokens();
  const until = created.expires_at ? `It expires ${when(created.expires_at)}.` : "It never expires.";
  await showOnce(`API token "${created.name}"`, [{ label: "Token", value: created.token }], `Shown once: copy it now, it cannot be shown again. ${until}`);
});

loadTokens();
