/* One way to talk to the server and one way to show the outcome.
 * The API answers errors as {"error": {"code", "message"}}; whatever else goes wrong (a
 * proxy's HTML page, a lost connection) is turned into the same shape, so every caller
 * shows an error the same way: showStatus for a status line, showFailure for a region. */

export const enc = encodeURIComponent;

/** The JSON API of one container. */
export function apiUrl(host, ref) {
  return `/api/hosts/${enc(host)}/containers/${enc(ref)}`;
}

/** The HTML partials of the Containers page (core/ui.py). */
export function listUrl(host) {
  return host === "all" ? "/ui/containers" : `/ui/hosts/${enc(host)}/containers`;
}

export function detailUrl(host, ref) {
  return `/ui/hosts/${enc(host)}/containers/${enc(ref)}`;
}

export class RequestError extends Error {
  constructor(status, code, message, field = null) {
    super(message);
    this.status = status;
    this.code = code;
    this.field = field; // the body field at fault, when the server names one
  }
}

/** The error a response body carries, or one made from its status. */
export function errorFrom(status, text) {
  let body = null;
  try {
    body = JSON.parse(text);
  } catch {
    // not JSON: described by its status below
  }
  const e = body && body.error;
  if (e && typeof e.message === "string") {
    return new RequestError(status, e.code || "error", e.message, typeof e.field === "string" ? e.field : null);
  }
  return new RequestError(status, `http_${status}`, `HTTP ${status}`);
}

/** fetch with the session cookie; resolves to the parsed JSON (or the text when
 * accept is not JSON), rejects with a RequestError. */
export async function request(url, { method = "GET", accept = "application/json" } = {}) {
  let response;
  try {
    response = await fetch(url, { method, credentials: "same-origin", headers: { Accept: accept } });
  } catch {
    throw new RequestError(0, "unreachable", "the server could not be reached");
  }
  const text = await response.text();
  if (!response.ok) throw errorFrom(response.status, text);
  if (accept !== "application/json") return text;
  return text ? JSON.parse(text) : null;
}

/** A JSON request that changes something (POST, PATCH, DELETE) with the session
 * cookie; resolves to the parsed answer (null for 204), rejects with a RequestError. */
export async function send(url, { method = "POST", body = undefined } = {}) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(url, {
      method,
      credentials: "same-origin",
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch {
    throw new RequestError(0, "unreachable", "the server could not be reached");
  }
  const text = await response.text();
  if (!response.ok) throw errorFrom(response.status, text);
  return text ? JSON.parse(text) : null;
}

/** The words to show for an error: the server's message and its code. */
export function describe(err) {
  if (err instanceof RequestError && !err.code.startsWith("http_")) return `${err.message} (${err.code})`;
  return err && err.message ? err.message : String(err);
}

/** A status line (an action's result, the logs' or the terminal's state): errors are
 * announced at once (role=alert), the rest politely. kind: "error", "ok" or "info". */
export function showStatus(el, text, kind = "info") {
  if (!el) return;
  el.textContent = text;
  el.classList.toggle("error-text", kind === "error");
  el.classList.toggle("ok-text", kind === "ok");
  el.setAttribute("role", kind === "error" ? "alert" : "status");
}

/** A region that could not be loaded: the same alert the server renders for a host
 * failure (core/_error.html), built as text. */
export function showFailure(el, what, err) {
  const box = document.createElement("div");
  box.className = "alert alert-error host-failure";
  box.setAttribute("role", "alert");
  const head = document.createElement("strong");
  head.textContent = `Could not load ${what}.`;
  const message = document.createElement("span");
  message.className = "error-message";
  message.textContent = describe(err);
  box.append(head, " ", message);
  el.replaceChildren(box);
}
