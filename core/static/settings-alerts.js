/* Settings > Alerts: notification channels, alert rules and the alert history, all
 * through the JSON API (/api/alerts/channels, /api/alerts/rules, /api/alerts). A
 * channel's secret and an Apprise URL are sent, never read back: the API says only
 * whether a secret is set and shows an Apprise URL redacted. */

import { RequestError, describe, enc, showStatus } from "./api.js";
import { bindForm, confirmAction, el, request, send, when } from "./forms.js";

const page = document.getElementById("channels-table");
const channelsBody = document.querySelector("#channels-table tbody");
const channelsError = document.getElementById("channels-error");
const channelsStatus = document.getElementById("channels-status");
const channelForm = document.getElementById("channel-form");
const rulesBody = document.querySelector("#rules-table tbody");
const rulesError = document.getElementById("rules-error");
const rulesStatus = document.getElementById("rules-status");
const ruleForm = document.getElementById("rule-form");
const ruleChannels = document.getElementById("rule-channels");
const historyBody = document.querySelector("#history-table tbody");
const historyError = document.getElementById("history-error");
const historyState = document.getElementById("history-state");

let channels = [];
let rules = [];
let editingChannel = null;
let editingRule = null;

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

function done(region, errorRegion, text) {
  errorRegion.textContent = "";
  showStatus(region, text, "ok");
}

function emptyRow(columns, text) {
  return el("tr", {}, el("td", { colspan: columns, class: "muted" }, text));
}

function button(text, onClick, danger = false) {
  const b = el("button", { type: "button", class: danger ? "btn btn-small btn-danger" : "btn btn-small" }, text);
  b.addEventListener("click", onClick);
  return b;
}

// ---- channels -------------------------------------------------------------------

async function testChannel(channel, b) {
  b.disabled = true;
  showStatus(channelsStatus, `Sending a test notice to ${channel.name}…`, "info");
  try {
    const result = await send(`/api/alerts/channels/${enc(channel.id)}/test`, {});
    if (result.ok) done(channelsStatus, channelsError, `Test notice to ${channel.name}: delivered.`);
    else showStatus(channelsStatus, `Test notice to ${channel.name} failed: ${result.error}`, "error");
  } catch (err) {
    fail(channelsError, err);
  } finally {
    b.disabled = false;
  }
}

async function deleteChannel(channel) {
  const ok = await confirmAction(`Remove the channel ${channel.name}? Rules stop sending to it.`, "Remove");
  if (!ok) return;
  try {
    await send(`/api/alerts/channels/${enc(channel.id)}`, { method: "DELETE" });
    done(channelsStatus, channelsError, `${channel.name} was removed.`);
    if (editingChannel && editingChannel.id === channel.id) resetChannelForm();
    await loadChannels();
    await loadRules();
  } catch (err) {
    fail(channelsError, err);
  }
}

function setChannelMode(channel) {
  editingChannel = channel;
  const heading = document.getElementById("channel-form-heading");
  heading.textContent = channel ? `Edit channel: ${channel.name}` : "Add channel";
  document.getElementById("channel-submit").textContent = channel ? "Save channel" : "Add channel";
  document.getElementById("channel-cancel").hidden = !channel;
  document.getElementById("channel-clear-secret-row").hidden = !(channel && channel.secret_set);
  document.getElementById("channel-url").placeholder = channel && channel.kind === "apprise" ? "unchanged unless you type a new one" : "https://example.net/hook";
  document.getElementById("channel-secret").placeholder = channel && channel.secret_set ? "unchanged unless you type a new one" : "";
}

function resetChannelForm() {
  channelForm.reset();
  setChannelMode(null);
}

function editChannel(channel) {
  channelForm.reset();
  setChannelMode(channel);
  channelForm.elements.name.value = channel.name;
  channelForm.elements.kind.value = channel.kind;
  channelForm.elements.url.value = channel.kind === "webhook" ? channel.url : "";
  channelForm.elements.name.focus();
}

function channelRow(channel) {
  const test = button("Send test", () => testChannel(channel, test));
  return el(
    "tr",
    { "data-channel-id": channel.id },
    el("td", {}, el("strong", {}, channel.name)),
    el("td", {}, channel.kind),
    el("td", {}, el("code", {}, channel.url)),
    el("td", {}, channel.secret_set ? "set" : "none"),
    el("td", { class: "row-actions" }, test, button("Edit", () => editChannel(channel)), button("Remove", () => deleteChannel(channel), true)),
  );
}

function renderRuleChannelChoices() {
  const chosen = new Set(editingRule ? editingRule.channels : [...ruleChannels.querySelectorAll("input:checked")].map((c) => Number(c.value)));
  for (const old of ruleChannels.querySelectorAll("label.check")) old.remove();
  document.getElementById("rule-channels-empty").hidden = channels.length > 0;
  const errorSlot = ruleChannels.querySelector("[data-error-for]");
  for (const channel of channels) {
    const box = el("input", { type: "checkbox", value: channel.id, "data-skip": true, checked: chosen.has(channel.id) });
    ruleChannels.insertBefore(el("label", { class: "check" }, box, ` ${channel.name} (${channel.kind})`), errorSlot);
  }
}

async function loadChannels() {
  try {
    channels = await request("/api/alerts/channels");
    channelsBody.replaceChildren(...(channels.length ? channels.map(channelRow) : [emptyRow(5, "No channels.")]));
    renderRuleChannelChoices();
  } catch (err) {
    fail(channelsError, err);
  }
}

// ---- rules ----------------------------------------------------------------------

function channelNames(ids) {
  const names = ids.map((id) => channels.find((c) => c.id === id)?.name || `#${id}`);
  return names.length ? names.join(", ") : "none";
}

function scopeText(scope) {
  const parts = [];
  if (scope.hosts.length) parts.push(`hosts ${scope.hosts.join(", ")}`);
  const labels = Object.entries(scope.labels).map(([k, v]) => `${k}=${v}`);
  if (labels.length) parts.push(`labels ${labels.join(", ")}`);
  if (scope.project) parts.push(`project ${scope.project}`);
  return parts.length ? parts.join("; ") : "everything";
}

function conditionText(rule) {
  const bits = [];
  if (rule.threshold !== null) bits.push(`threshold ${rule.threshold}`);
  if (rule.for_seconds) bits.push(`${rule.for_seconds} s`);
  return bits.length ? bits.join(", ") : "—";
}

function snoozeRule(rule) {
  const input = el("input", { id: "snooze-minutes", name: "minutes", type: "number", min: 1, max: 43200, value: 60, required: true });
  const cancel = el("button", { type: "button", class: "btn" }, "Cancel");
  const form = el(
    "form",
    { class: "form-grid", novalidate: true },
    el("div", { class: "field" }, el("label", { for: "snooze-minutes" }, "Minutes"), input, el("p", { class: "field-error", "data-error-for": "minutes" })),
    el("p", { class: "form-error" }),
    el("div", { class: "form-actions" }, el("button", { type: "submit", class: "btn btn-primary" }, "Snooze"), cancel),
  );
  const dialog = el(
    "dialog",
    { "aria-label": `Snooze the rule ${rule.name}` },
    el("h2", {}, `Snooze: ${rule.name}`),
    el("p", { class: "muted" }, "The rule still records alerts but sends no notice until the snooze ends."),
    form,
  );
  document.body.append(dialog);
  dialog.addEventListener("close", () => dialog.remove());
  cancel.addEventListener("click", () => dialog.close());
  bindForm(form, async (values) => {
    await send(`/api/alerts/rules/${enc(rule.id)}/snooze`, { body: { minutes: values.minutes ?? 0 } });
    dialog.close();
    done(rulesStatus, rulesError, `${rule.name} is snoozed for ${values.minutes} minutes.`);
    await loadRules();
  });
  dialog.showModal();
  input.focus();
}

async function unsnooze(rule) {
  try {
    await send(`/api/alerts/rules/${enc(rule.id)}/snooze`, { body: { minutes: 0 } });
    done(rulesStatus, rulesError, `${rule.name} sends notices again.`);
    await loadRules();
  } catch (err) {
    fail(rulesError, err);
  }
}

async function deleteRule(rule) {
  const ok = await confirmAction(`Delete the rule ${rule.name} and its alert history? This cannot be undone.`);
  if (!ok) return;
  try {
    await send(`/api/alerts/rules/${enc(rule.id)}`, { method: "DELETE" });
    done(rulesStatus, rulesError, `${rule.name} was deleted.`);
    if (editingRule && editingRule.id === rule.id) resetRuleForm();
    await loadRules();
    await loadHistory();
  } catch (err) {
    fail(rulesError, err);
  }
}

function setRuleMode(rule) {
  editingRule = rule;
  document.getElementById("rule-form-heading").textContent = rule ? `Edit rule: ${rule.name}` : "Add rule";
  document.getElementById("rule-submit").textContent = rule ? "Save rule" : "Add rule";
  document.getElementById("rule-cancel").hidden = !rule;
}

function resetRuleForm() {
  ruleForm.reset();
  setRuleMode(null);
  renderRuleChannelChoices();
}

function editRule(rule) {
  ruleForm.reset();
  setRuleMode(rule);
  const f = ruleForm.elements;
  f.name.value = rule.name;
  f.kind.value = rule.kind;
  f.threshold.value = rule.threshold === null ? "" : rule.threshold;
  f.for_seconds.value = rule.for_seconds;
  f.hosts.value = rule.scope.hosts.join(", ");
  f.labels.value = Object.entries(rule.scope.labels).map(([k, v]) => `${k}=${v}`).join(", ");
  f.project.value = rule.scope.project || "";
  renderRuleChannelChoices();
  f.name.focus();
}

function ruleRow(rule) {
  const notices = rule.snoozed_until ? el("span", { class: "badge badge-stale" }, `snoozed until ${when(rule.snoozed_until)}`) : el("span", { class: "badge badge-ok" }, "on");
  const actions = [button("Edit", () => editRule(rule))];
  actions.push(rule.snoozed_until ? button("Unsnooze", () => unsnooze(rule)) : button("Snooze", () => snoozeRule(rule)));
  actions.push(button("Delete", () => deleteRule(rule), true));
  return el(
    "tr",
    { "data-rule-id": rule.id },
    el("td", {}, el("strong", {}, rule.name)),
    el("td", {}, rule.kind),
    el("td", {}, conditionText(rule)),
    el("td", {}, scopeText(rule.scope)),
    el("td", {}, channelNames(rule.channels)),
    el("td", {}, notices),
    el("td", { class: "row-actions" }, ...actions),
  );
}

async function loadRules() {
  try {
    rules = await request("/api/alerts/rules");
    rulesBody.replaceChildren(...(rules.length ? rules.map(ruleRow) : [emptyRow(7, "No rules.")]));
  } catch (err) {
    fail(rulesError, err);
  }
}

/** "team=web, tier=db" -> {team: "web", tier: "db"}; a pair without "=" is a 400 of
 * its own, shown next to the field. */
function parseLabels(text) {
  const labels = {};
  for (const part of text.split(",").map((p) => p.trim()).filter(Boolean)) {
    const at = part.indexOf("=");
    if (at <= 0) throw new RequestError(400, "invalid_body", `"${part}" is not name=value`, "scope.labels");
    labels[part.slice(0, at).trim()] = part.slice(at + 1).trim();
  }
  return labels;
}

// ---- history --------------------------------------------------------------------

function historyRow(alert) {
  const rule = rules.find((r) => r.id === alert.rule_id);
  const state = el("span", { class: alert.state === "firing" ? "badge badge-error" : "badge badge-ok" }, alert.state);
  return el(
    "tr",
    { "data-alert-id": alert.id, "data-state": alert.state },
    el("td", {}, when(alert.started_at)),
    el("td", {}, state),
    el("td", {}, rule ? rule.name : `#${alert.rule_id}`),
    el("td", {}, alert.host_id),
    el("td", {}, alert.container || "—"),
    el("td", {}, alert.message),
    el("td", {}, alert.resolved_at ? when(alert.resolved_at) : "—"),
    el("td", {}, alert.notice_error ? el("span", { class: "error-text" }, alert.notice_error) : "—"),
  );
}

async function loadHistory() {
  try {
    const state = historyState.value;
    const alerts = await request(`/api/alerts?limit=200${state ? `&state=${enc(state)}` : ""}`);
    historyBody.replaceChildren(...(alerts.length ? alerts.map(historyRow) : [emptyRow(8, "No alerts.")]));
    historyError.textContent = "";
  } catch (err) {
    fail(historyError, err);
  }
}

if (page) {
  bindForm(channelForm, async (values) => {
    const body = { name: values.name, kind: values.kind };
    if (values.url || !editingChannel) body.url = values.url;
    if (values.secret) body.secret = values.secret;
    else if (editingChannel && values.clear_secret) body.secret = null;
    if (editingChannel) {
      const saved = await send(`/api/alerts/channels/${enc(editingChannel.id)}`, { method: "PATCH", body });
      done(channelsStatus, channelsError, `${saved.name} was saved.`);
    } else {
      const created = await send("/api/alerts/channels", { body });
      done(channelsStatus, channelsError, `${created.name} was added.`);
    }
    resetChannelForm();
    await loadChannels();
    await loadRules();
  });
  document.getElementById("channel-cancel").addEventListener("click", resetChannelForm);

  bindForm(ruleForm, async (values) => {
    const body = {
      name: values.name,
      kind: values.kind,
      threshold: values.threshold,
      for_seconds: values.for_seconds ?? 0,
      scope: {
        hosts: values.hosts.split(",").map((h) => h.trim()).filter(Boolean),
        labels: parseLabels(values.labels),
        project: values.project || null,
      },
      channels: [...ruleChannels.querySelectorAll("input:checked")].map((c) => Number(c.value)),
    };
    if (editingRule) {
      const saved = await send(`/api/alerts/rules/${enc(editingRule.id)}`, { method: "PATCH", body });
      done(rulesStatus, rulesError, `${saved.name} was saved.`);
    } else {
      const created = await send("/api/alerts/rules", { body });
      done(rulesStatus, rulesError, `${created.name} was added.`);
    }
    resetRuleForm();
    await loadRules();
  });
  document.getElementById("rule-cancel").addEventListener("click", resetRuleForm);

  historyState.addEventListener("change", loadHistory);
  document.getElementById("history-refresh").addEventListener("click", loadHistory);

  (async () => {
    await loadChannels();
    await loadRules();
    await loadHistory();
  })();
  // The history follows the evaluator (every ARCHNEST_ALERTS_INTERVAL seconds).
  window.setInterval(() => {
    if (!document.hidden) loadHistory();
  }, 5000);
}
