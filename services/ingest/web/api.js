// What every part of the import screen shares: the token, the profiles screen's address and this ingest service's
// /v1/imports API. The token comes from #token=… once (then removed from the address bar), else sessionStorage.
// Never from the query string: a token there has already been sent to the server and written to logs and
// history. One that arrives there anyway is removed from the address bar unused.

import { $, ApiError, element, download as downloadWithToken, send as sendWithToken } from "./common/client.js";

export { $, ApiError, element };

const TOKEN_KEY = "kagibag-contacts-token";
const PROFILES_KEY = "kagibag-contacts-profiles-screen";
const PROFILES_PORT = 8002;

function webAddress(value) {
  try {
    const url = new URL(value);
    return url.protocol === "http:" || url.protocol === "https:" ? url.href : null;
  } catch {
    return null;
  }
}

/** Take the token (and the profiles screen's address, ``profiles=``) from the fragment; the rest of the fragment
 * (``import=ID``) stays. */
export function takeTokenFromAddress() {
  const url = new URL(window.location.href);
  const fragment = new URLSearchParams(url.hash.slice(1));
  const token = fragment.get("token");
  const profiles = fragment.has("profiles") ? webAddress(fragment.get("profiles")) : null;
  const leaked = url.searchParams.has("token");
  if (!token && !leaked && !fragment.has("profiles")) return;
  if (token) sessionStorage.setItem(TOKEN_KEY, token);
  if (profiles) sessionStorage.setItem(PROFILES_KEY, profiles);
  fragment.delete("token");
  fragment.delete("profiles");
  url.searchParams.delete("token");
  const rest = fragment.toString();
  window.history.replaceState(null, "", url.pathname + url.search + (rest ? `#${rest}` : ""));
}

export function token() {
  const typed = $("token").value.trim(); // pasted but not yet saved with the button: use and keep it
  if (typed) sessionStorage.setItem(TOKEN_KEY, typed);
  return typed || sessionStorage.getItem(TOKEN_KEY) || "";
}

export function saveToken(value) {
  if (value) sessionStorage.setItem(TOKEN_KEY, value);
  else sessionStorage.removeItem(TOKEN_KEY);
}

export function showTokenState() {
  const saved = sessionStorage.getItem(TOKEN_KEY) || "";
  $("token").value = saved;
  $("token-state").textContent = saved ? "Token set." : "No token yet.";
}

/** A contact's page on the profiles screen (another origin: profiles on port 8002 of this host, unless the
 * address came with ``#profiles=…``), carrying the token in the fragment, which no server ever receives. */
export function contactPage(contactId) {
  const fallback = `${window.location.protocol}//${window.location.hostname}:${PROFILES_PORT}/app/`;
  const base = new URL(sessionStorage.getItem(PROFILES_KEY) || fallback);
  base.hash = new URLSearchParams({ token: token(), contact: contactId }).toString();
  return base.href;
}

// --- the API

async function send(path, options) {
  return sendWithToken(path, options, token());
}

export async function api(path, options = {}) {
  const response = await send(path, options);
  try {
    return await response.json();
  } catch {
    return null;
  }
}

/** Download a file of the API (fetched with the token, saved from a blob); its file name. */
export async function download(path, fallbackName) {
  return (await downloadWithToken(path, fallbackName, token())).name;
}
