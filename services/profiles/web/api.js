// The token and the profiles API. The token comes from the address's fragment once (#token=…, then removed from
// the address bar) or is pasted, and is kept in sessionStorage for this tab only. Never from the query string: a
// token there has already been sent to the server and written to logs and history; one that arrives there anyway
// is removed from the address bar unused.

const TOKEN_KEY = "kagibag-contacts-token";

export function $(id) {
  return document.getElementById(id);
}

export function element(tag, text) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = text;
  return node;
}

export function when(iso) {
  if (!iso) return "never";
  const at = new Date(iso);
  return Number.isNaN(at.getTime()) ? iso : at.toLocaleString();
}

/** The fragment's parameters other than the token, after taking the token from it. */
export function takeTokenFromAddress() {
  const url = new URL(window.location.href);
  const fragment = new URLSearchParams(url.hash.slice(1));
  const fromFragment = fragment.get("token");
  const leaked = url.searchParams.has("token");
  if (fromFragment) sessionStorage.setItem(TOKEN_KEY, fromFragment);
  if (fromFragment || leaked) {
    fragment.delete("token");
    url.searchParams.delete("token");
    const rest = fragment.toString();
    window.history.replaceState(null, "", url.pathname + url.search + (rest ? `#${rest}` : ""));
  }
}

export function token() {
  return sessionStorage.getItem(TOKEN_KEY) || "";
}

export function saveToken(value) {
  if (value) sessionStorage.setItem(TOKEN_KEY, value);
  else sessionStorage.removeItem(TOKEN_KEY);
}

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

function describe(detail) {
  if (typeof detail === "string") return detail;
  if (Array.isArray(detail)) {
    return detail.map((item) => [(item.loc || []).join("."), item.msg].filter(Boolean).join(": ")).join("\n");
  }
  return JSON.stringify(detail);
}

async function send(path, options) {
  const headers = { ...(options.headers || {}), Authorization: `Bearer ${token()}` };
  let response;
  try {
    response = await fetch(path, { ...options, headers });
  } catch (error) {
    throw new ApiError(0, `The service cannot be reached (${error.message}).`);
  }
  if (!response.ok) {
    let body = null;
    try {
      body = await response.json();
    } catch {
      body = null;
    }
    let message = body && body.detail !== undefined ? describe(body.detail) : `HTTP ${response.status}`;
    if (response.status === 401) message = `The token was refused (${message}): paste a valid one above.`;
    throw new ApiError(response.status, message);
  }
  return response;
}

/** The JSON answer of the API (null for an empty one), or an ApiError whose message explains the refusal. */
export async function api(path, options = {}) {
  const response = await send(path, options);
  const text = await response.text();
  return { body: text ? JSON.parse(text) : null, etag: response.headers.get("ETag") };
}

export async function getJson(path) {
  return (await api(path)).body;
}

export async function sendJson(path, method, body, headers = {}) {
  return api(path, {
    method,
    headers: { ...headers, "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
}

function filenameOf(response, fallback) {
  const disposition = response.headers.get("Content-Disposition") || "";
  const match = /filename="?([^";]+)"?/.exec(disposition);
  return match ? match[1] : fallback;
}

/** Download a file of the API: fetched with the token (a link cannot carry it), saved from a blob. */
export async function download(path, fallbackName) {
  const response = await send(path, {});
  const blob = await response.blob();
  const url = URL.createObjectURL(blob);
  const link = element("a");
  link.href = url;
  link.download = filenameOf(response, fallbackName);
  document.body.append(link);
  link.click();
  link.remove();
  window.setTimeout(() => URL.revokeObjectURL(url), 10_000);
  return { name: link.download, bytes: blob.size };
}
