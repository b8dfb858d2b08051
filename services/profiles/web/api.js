// The token and the profiles API. The token comes from the address's fragment once (#token=…, then removed from
// the address bar) or is pasted, and is kept in sessionStorage for this tab only. Never from the query string: a
// token there has already been sent to the server and written to logs and history; one that arrives there anyway
// is removed from the address bar unused.

import { $, ApiError, element, download as downloadWithToken, send as sendWithToken } from "./common/client.js";

export { $, ApiError, element };

const TOKEN_KEY = "kagibag-contacts-token";

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

async function send(path, options) {
  return sendWithToken(path, options, token());
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

/** Download a file of the API: fetched with the token (a link cannot carry it), saved from a blob. */
export async function download(path, fallbackName) {
  return downloadWithToken(path, fallbackName, token());
}
