/* What the Containers page shows: the chosen host, "show stopped", the open container
 * tabs and the active one. The URL carries it (shareable); localStorage is the fallback
 * when the URL names nothing. */

const STORE_KEY = "archnest.containers.v1";

/** The host id of the one table of every host (real host ids are "source:key"). */
export const ALL_HOSTS = "all";

/** The container list's filter, sort and page (list.js); always from the URL only, so
 * a link such as /containers?host=all&project=web shows exactly that. "" and 0: the
 * server's default. */
export const LIST_KEYS = ["q", "project", "state", "sort", "order", "page", "size"];

export const state = { host: "", all: false, tabs: [], active: null, list: {} };

export function keyOf(t) {
  return `${t.host}/${t.ref}`;
}

function parseKey(text) {
  if (typeof text !== "string") return null;
  const i = text.lastIndexOf("/");
  if (i < 1 || i === text.length - 1) return null;
  return { host: text.slice(0, i), ref: text.slice(i + 1) };
}

/** Fill state from the URL, else from what was saved; serverHost is the host the page
 * was asked for (?host=). */
export function readState(serverHost) {
  const q = new URLSearchParams(location.search);
  let saved = {};
  try {
    saved = JSON.parse(localStorage.getItem(STORE_KEY) || "{}") || {};
  } catch {
    saved = {};
  }
  const fromUrl = q.has("host") || q.has("open");
  state.host = q.get("host") || serverHost || (fromUrl ? "" : saved.host || "");
  state.all = fromUrl ? q.get("all") === "1" : Boolean(saved.all);
  const keys = fromUrl ? q.getAll("open") : saved.tabs || [];
  state.tabs = keys.map(parseKey).filter(Boolean);
  state.active = fromUrl ? q.get("tab") : saved.active || null;
  state.list = Object.fromEntries(LIST_KEYS.map((k) => [k, q.get(k) || ""]));
}

export function saveState() {
  const q = new URLSearchParams();
  if (state.host) q.set("host", state.host);
  if (state.all) q.set("all", "1");
  for (const t of state.tabs) q.append("open", keyOf(t));
  if (state.active) q.set("tab", state.active);
  for (const k of LIST_KEYS) if (state.list[k]) q.set(k, state.list[k]);
  const qs = q.toString();
  history.replaceState(null, "", location.pathname + (qs ? `?${qs}` : ""));
  try {
    localStorage.setItem(
      STORE_KEY,
      JSON.stringify({ host: state.host, all: state.all, tabs: state.tabs.map(keyOf), active: state.active }),
    );
  } catch {
    // private mode: the URL still carries the state
  }
}
