// The attendee's review screen: the suggestions enrichment made (accept, edit then accept, reject) and the
// attendee's own profile (read, complete). Talks only to this enrichment service's /v1/me API with the attendee's
// token. Everything that comes from the API is written with textContent, never parsed as HTML.
"use strict";

const TOKEN_KEY = "kagibag-contacts-attendee-token";
const POLL_MILLISECONDS = 1000;
const POLL_TIMES = 20;

const FIELD_LABELS = {
  first_name: "First name",
  last_name: "Last name",
  company: "Company",
  title: "Job title",
  phone: "Phone",
  bio: "Bio",
};
const SOURCE_LABELS = {
  email_domain: "your email's domain",
  email_name: "your email address",
  phone_format: "your phone number, in international format",
  external_api: "an external enrichment service",
};
const KIND_LABELS = { attendee: "stated by you here", interaction: "stated by you at an event" };

const state = { profile: null, polling: null };

function $(id) {
  return document.getElementById(id);
}

function element(tag, text) {
  const node = document.createElement(tag);
  if (text !== undefined) node.textContent = text;
  return node;
}

function label(field) {
  if (field.startsWith("social_links.")) return `Link (${field.slice("social_links.".length)})`;
  return FIELD_LABELS[field] || field;
}

// --- the token: from #token=… once (then removed from the address bar), else sessionStorage; never from the query

function takeTokenFromAddress() {
  const url = new URL(window.location.href);
  const token = new URLSearchParams(url.hash.slice(1)).get("token");
  if (!token) return;
  sessionStorage.setItem(TOKEN_KEY, token);
  window.history.replaceState(null, "", url.pathname + url.search);
}

function token() {
  return sessionStorage.getItem(TOKEN_KEY) || "";
}

function showTokenState() {
  const saved = token();
  $("token").value = saved;
  $("token-state").textContent = saved ? "Signed in." : "Not signed in.";
}

// --- the API

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

function describe(detail) {
  if (typeof detail === "string") return detail;
  if (Array.isArray(detail)) {
    return detail.map((item) => [(item.loc || []).slice(1).join("."), item.msg].filter(Boolean).join(": ")).join("\n");
  }
  return JSON.stringify(detail);
}

async function api(path, options = {}) {
  const headers = { ...(options.headers || {}), Authorization: `Bearer ${token()}` };
  let response;
  try {
    response = await fetch(path, { ...options, headers });
  } catch (error) {
    throw new ApiError(0, `The service cannot be reached (${error.message}).`);
  }
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  if (!response.ok) {
    let message = body && body.detail !== undefined ? describe(body.detail) : `HTTP ${response.status}`;
    if (response.status === 401) message = `The token was refused (${message}): paste a valid one above.`;
    if (response.status === 403) message = `This page is for attendees (${message}).`;
    throw new ApiError(response.status, message);
  }
  return body;
}

function postJson(path, body) {
  const options = { method: "POST" };
  if (body !== undefined) {
    options.headers = { "Content-Type": "application/json" };
    options.body = JSON.stringify(body);
  }
  return api(path, options);
}

// --- suggestions

function suggestionRow(suggestion) {
  const row = element("tr");
  row.dataset.field = suggestion.field;
  const name = element("th", label(suggestion.field));
  name.scope = "row";
  const current = element("td", suggestion.current === null ? "(none)" : suggestion.current);
  const suggested = element("td", suggestion.suggested);
  const source = element("td", SOURCE_LABELS[suggestion.source] || suggestion.source);
  const sure = element("span", ` · ${Math.round(suggestion.confidence * 100)}% sure`);
  sure.className = "source";
  source.append(sure);
  const actions = element("td");
  actions.className = "actions";
  const what = label(suggestion.field).toLowerCase();
  const accept = element("button", "Accept");
  accept.type = "button";
  accept.setAttribute("aria-label", `Accept ${what} ${suggestion.suggested}`);
  accept.addEventListener("click", () => decide(suggestion, "accept"));
  const edit = element("button", "Edit");
  edit.type = "button";
  edit.setAttribute("aria-label", `Edit ${what} before accepting`);
  const reject = element("button", "Reject");
  reject.type = "button";
  reject.setAttribute("aria-label", `Reject ${what} ${suggestion.suggested}`);
  reject.addEventListener("click", () => decide(suggestion, "reject"));
  actions.append(accept, edit, reject);

  const editor = element("form");
  editor.className = "edit-row";
  editor.hidden = true;
  const input = element("input");
  input.type = "text";
  input.id = `edit-${suggestion.id}`;
  input.value = suggestion.suggested;
  input.maxLength = 255;
  const inputLabel = element("label", `Your ${what}`);
  inputLabel.htmlFor = input.id;
  inputLabel.className = "visually-hidden";
  const save = element("button", "Accept my version");
  save.type = "submit";
  const cancel = element("button", "Cancel");
  cancel.type = "button";
  editor.append(inputLabel, input, save, cancel);
  actions.append(editor);
  edit.addEventListener("click", () => {
    editor.hidden = false;
    input.focus();
    input.select();
  });
  cancel.addEventListener("click", () => {
    editor.hidden = true;
  });
  editor.addEventListener("submit", (event) => {
    event.preventDefault();
    decide(suggestion, "accept", input.value);
  });
  row.append(name, current, suggested, source, actions);
  return row;
}

async function loadSuggestions() {
  $("suggestions-error").textContent = "";
  let page;
  try {
    page = await api("/v1/me/suggestions");
  } catch (error) {
    $("suggestions-error").textContent = error.message;
    return;
  }
  const body = $("suggestions-table").tBodies[0];
  body.replaceChildren(...page.items.map(suggestionRow));
  $("suggestions-table").hidden = page.items.length === 0;
  $("suggestions-empty").hidden = page.items.length !== 0;
}

async function decide(suggestion, decision, customValue) {
  $("suggestions-error").textContent = "";
  $("suggestions-notice").textContent = "";
  const what = label(suggestion.field);
  let decided;
  try {
    if (decision === "reject") {
      decided = await postJson(`/v1/me/suggestions/${encodeURIComponent(suggestion.id)}/reject`);
    } else if (customValue !== undefined) {
      const fields = { [suggestion.field]: customValue };
      decided = await postJson(`/v1/me/suggestions/${encodeURIComponent(suggestion.id)}/accept`, { fields });
    } else {
      decided = await postJson(`/v1/me/suggestions/${encodeURIComponent(suggestion.id)}/accept`);
    }
  } catch (error) {
    $("suggestions-error").textContent = error.message;
    await loadSuggestions();
    return;
  }
  const result = decided.suggestion;
  if (result.status === "rejected") {
    $("suggestions-notice").textContent = `Rejected: ${what} "${result.suggested}" will not be suggested again.`;
  } else {
    $("suggestions-notice").textContent = `Saved: your ${what.toLowerCase()} is now "${result.value}".`;
    followProfile(suggestion.field, result.value);
  }
  await loadSuggestions();
}

// --- the profile

function sourceText(source) {
  if (!source) return "";
  return ` (${KIND_LABELS[source.kind] || source.kind}, ${new Date(source.at).toLocaleString()})`;
}

function showProfile(profile) {
  const facts = $("profile-facts");
  facts.replaceChildren();
  if (profile === null) {
    facts.append(element("dt", "Nothing yet"), element("dd", "No profile is known for your email address yet."));
    return;
  }
  const rows = [["Email", profile.email, null]];
  for (const field of ["first_name", "last_name", "company", "title", "phone", "bio"]) {
    rows.push([label(field), profile[field], profile.field_sources[field]]);
  }
  for (const [network, link] of Object.entries(profile.social_links)) {
    rows.push([label(`social_links.${network}`), link, profile.field_sources[`social_links.${network}`]]);
  }
  for (const [name, value, source] of rows) {
    const dd = element("dd", value === null || value === undefined ? "(not stated)" : value);
    dd.dataset.field = name;
    if (source) {
      const from = element("span", sourceText(source));
      from.className = "source";
      dd.append(from);
    }
    facts.append(element("dt", name), dd);
  }
}

function linkRow(network = "", link = "") {
  const row = element("div");
  row.className = "link-row";
  const index = $("links").children.length;
  const name = element("input");
  name.type = "text";
  name.id = `link-network-${index}`;
  name.placeholder = "network, e.g. github";
  name.value = network;
  name.setAttribute("aria-label", `Network of link ${index + 1}`);
  const value = element("input");
  value.type = "text";
  value.id = `link-value-${index}`;
  value.placeholder = "URL or handle";
  value.value = link;
  value.setAttribute("aria-label", `URL or handle of link ${index + 1}`);
  row.append(name, value);
  return row;
}

function fillForm(profile) {
  $("profile-company").value = (profile && profile.company) || "";
  $("profile-title").value = (profile && profile.title) || "";
  $("profile-bio").value = (profile && profile.bio) || "";
  $("links").replaceChildren();
  for (const [network, link] of Object.entries((profile && profile.social_links) || {})) {
    $("links").append(linkRow(network, link));
  }
  $("links").append(linkRow());
}

async function loadProfile({ fill = true } = {}) {
  $("profile-error").textContent = "";
  try {
    state.profile = await api("/v1/me/profile");
  } catch (error) {
    if (error.status !== 404) {
      $("profile-error").textContent = error.message;
      return null;
    }
    state.profile = null;
  }
  showProfile(state.profile);
  if (fill) fillForm(state.profile);
  return state.profile;
}

function stopPolling() {
  if (state.polling !== null) window.clearTimeout(state.polling);
  state.polling = null;
}

// after a statement: read the profile again until it shows what was stated (identity applies it in a moment)
function followProfile(field, expected, times = POLL_TIMES) {
  stopPolling();
  const check = async () => {
    const profile = await loadProfile({ fill: false });
    const shown = field.startsWith("social_links.")
      ? profile && profile.social_links[field.slice("social_links.".length)]
      : profile && profile[field];
    if (shown === expected) {
      fillForm(profile);
      return;
    }
    times -= 1;
    if (times > 0) state.polling = window.setTimeout(check, POLL_MILLISECONDS);
  };
  state.polling = window.setTimeout(check, POLL_MILLISECONDS / 2);
}

function changedValues() {
  const before = state.profile || {};
  const values = {};
  for (const field of ["company", "title", "bio"]) {
    const value = $(`profile-${field}`).value.trim();
    if (value && value !== (before[field] || "")) values[field] = value;
  }
  const links = {};
  for (const row of $("links").children) {
    const [network, link] = row.querySelectorAll("input");
    const name = network.value.trim().toLowerCase();
    const value = link.value.trim();
    if (name && value && value !== ((before.social_links || {})[name] || "")) links[name] = value;
  }
  if (Object.keys(links).length) values.social_links = links;
  return values;
}

async function saveProfile(event) {
  event.preventDefault();
  $("profile-error").textContent = "";
  $("profile-notice").textContent = "";
  const values = changedValues();
  if (Object.keys(values).length === 0) {
    $("profile-notice").textContent = "Nothing changed.";
    return;
  }
  $("profile-save").disabled = true;
  try {
    await api("/v1/me/profile", {
      method: "PATCH",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(values),
    });
  } catch (error) {
    $("profile-error").textContent = error.message;
    return;
  } finally {
    $("profile-save").disabled = false;
  }
  $("profile-notice").textContent = "Saved: your profile shows it in a moment.";
  const [field, value] = Object.entries(values)[0];
  if (field === "social_links") {
    const [network, link] = Object.entries(value)[0];
    followProfile(`social_links.${network}`, link);
  } else {
    followProfile(field, value);
  }
}

// --- wiring

async function loadAll() {
  if (!token()) {
    $("signin-error").textContent = "Paste your attendee token above to see your suggestions.";
    return;
  }
  $("signin-error").textContent = "";
  await Promise.all([loadSuggestions(), loadProfile()]);
}

function saveToken(event) {
  event.preventDefault();
  const value = $("token").value.trim();
  if (value) sessionStorage.setItem(TOKEN_KEY, value);
  else sessionStorage.removeItem(TOKEN_KEY);
  showTokenState();
  loadAll();
}

takeTokenFromAddress();
showTokenState();
$("token-form").addEventListener("submit", saveToken);
$("profile-form").addEventListener("submit", saveProfile);
$("add-link").addEventListener("click", () => $("links").append(linkRow()));
loadAll();
