// The contacts list: search and filters, the segment picker (pick, count, create from a filter, delete) and the
// CSV export of what is listed. Everything that comes from the API is written with textContent.

import { $, api, download, element, getJson, sendJson, when } from "./api.js";

const PAGE_SIZE = 50;
const state = { segmentId: "", cursor: null, loading: false };

function day(value) {
  return value ? `${value}T00:00:00Z` : null;
}

function readFilters() {
  const tags = $("filter-tags").value.split(",").map((tag) => tag.trim()).filter(Boolean);
  const attended = $("filter-attended").value.trim();
  return {
    q: $("filter-q").value.trim() || null,
    tags,
    permission: $("filter-permission").value || null,
    company: $("filter-company").value.trim() || null,
    attended: attended === "" ? null : Number(attended),
    activeFrom: day($("filter-active-from").value),
    activeTo: day($("filter-active-to").value),
    sort: $("filter-sort").value,
  };
}

/** The query string of /v1/contacts (and of its CSV export) for these filters. */
function filterQuery(filters) {
  const query = new URLSearchParams();
  if (filters.q) query.set("q", filters.q);
  for (const tag of filters.tags) query.append("tag", tag);
  if (filters.permission) query.set("permission", filters.permission);
  if (filters.company) query.set("company", filters.company);
  if (filters.attended !== null) query.set("min_events_attended", String(filters.attended));
  if (filters.activeFrom) query.set("last_active_after", filters.activeFrom);
  if (filters.activeTo) query.set("last_active_before", filters.activeTo);
  return query;
}

/** The segment filter (COORDINATION's filter JSON) that keeps the same contacts as these filters, but the search. */
export function segmentFilter(filters) {
  const terms = filters.tags.map((tag) => ({ tag }));
  if (filters.permission) terms.push({ permission: filters.permission });
  if (filters.company) terms.push({ company: filters.company });
  if (filters.attended !== null) terms.push({ attended_at_least: filters.attended });
  if (filters.activeFrom || filters.activeTo) {
    const range = {};
    if (filters.activeFrom) range.from = filters.activeFrom;
    if (filters.activeTo) range.to = filters.activeTo;
    terms.push({ last_active: range });
  }
  return terms.length === 1 ? terms[0] : { and: terms };
}

function nameOf(contact) {
  const full = [contact.first_name, contact.last_name].filter(Boolean).join(" ");
  return contact.display_name || full || contact.email;
}

function contactRow(contact) {
  const row = element("tr");
  row.dataset.contactId = contact.contact_id;
  const name = element("td");
  const link = element("a", nameOf(contact));
  link.href = `#contact=${encodeURIComponent(contact.contact_id)}`;
  name.append(link);
  const relationship = contact.relationship || {};
  const insights = contact.insights || {};
  row.append(
    name,
    element("td", contact.email),
    element("td", contact.company || ""),
    element("td", (relationship.tags || []).join(", ")),
    element("td", contact.email_permission),
    element("td", String(insights.events_attended ?? "")),
    element("td", insights.last_active_at ? when(insights.last_active_at) : ""),
  );
  return row;
}

function listPath() {
  const filters = readFilters();
  const query = state.segmentId ? new URLSearchParams() : filterQuery(filters);
  query.set("sort", filters.sort);
  query.set("limit", String(PAGE_SIZE));
  if (state.cursor) query.set("cursor", state.cursor);
  const base = state.segmentId ? `/v1/segments/${encodeURIComponent(state.segmentId)}/contacts` : "/v1/contacts";
  return `${base}?${query}`;
}

export async function loadContacts({ more = false } = {}) {
  if (state.loading) return;
  state.loading = true;
  const body = $("contacts-table").tBodies[0];
  if (!more) {
    state.cursor = null;
    body.replaceChildren();
  }
  $("contacts-error").textContent = "";
  $("contacts-state").textContent = "Loading…";
  try {
    const page = await getJson(listPath());
    for (const contact of page.items) body.append(contactRow(contact));
    state.cursor = page.next_cursor;
    $("contacts-more").hidden = !page.next_cursor;
    const shown = body.rows.length;
    $("contacts-state").textContent = `${shown}${page.next_cursor ? "+" : ""} contact${shown === 1 ? "" : "s"} shown.`;
    $("contacts-caption").textContent = state.segmentId
      ? `Contacts in segment ${$("segment-picker").selectedOptions[0].textContent}`
      : "Contacts matching the filters";
  } catch (error) {
    $("contacts-state").textContent = "";
    $("contacts-error").textContent = error.message;
  } finally {
    state.loading = false;
  }
}

// --- segments

export async function loadSegments() {
  const picker = $("segment-picker");
  const keep = state.segmentId;
  try {
    const segments = [];
    let cursor = null;
    do {
      const query = new URLSearchParams({ limit: "200" });
      if (cursor) query.set("cursor", cursor);
      const page = await getJson(`/v1/segments?${query}`);
      segments.push(...page.items);
      cursor = page.next_cursor;
    } while (cursor && segments.length < 1000);
    picker.replaceChildren(picker.options[0]);
    for (const segment of segments) picker.append(new Option(segment.name, segment.id));
    picker.value = segments.some((segment) => segment.id === keep) ? keep : "";
  } catch (error) {
    $("segment-error").textContent = `Segments cannot be listed: ${error.message}`;
  }
}

async function showCount() {
  $("segment-count").textContent = "";
  if (!state.segmentId) return;
  try {
    const { count } = await getJson(`/v1/segments/${encodeURIComponent(state.segmentId)}/count`);
    $("segment-count").textContent = `${count} contact${count === 1 ? "" : "s"} in this segment.`;
  } catch (error) {
    $("segment-error").textContent = error.message;
  }
}

export async function pickSegment(segmentId) {
  state.segmentId = segmentId;
  $("segment-picker").value = segmentId;
  $("segment-error").textContent = "";
  $("segment-delete").hidden = !segmentId;
  $("filters-form").classList.toggle("unused", Boolean(segmentId));
  await Promise.all([showCount(), loadContacts()]);
}

function fillFilterFromFilters() {
  const filters = readFilters();
  $("segment-filter").value = JSON.stringify(segmentFilter(filters), null, 2);
  $("segment-note").textContent = filters.q ? "The search text is not part of a segment: only the filters are." : "";
}

async function createSegment(event) {
  event.preventDefault();
  $("segment-error").textContent = "";
  if (!$("segment-filter").value.trim()) fillFilterFromFilters();
  let filter;
  try {
    filter = JSON.parse($("segment-filter").value);
  } catch (error) {
    $("segment-error").textContent = `The filter is not JSON: ${error.message}`;
    return;
  }
  try {
    const { body } = await sendJson("/v1/segments", "POST", { name: $("segment-name").value.trim(), filter });
    $("segment-name").value = "";
    $("segment-filter").value = "";
    $("segment-create").open = false;
    await loadSegments();
    await pickSegment(body.id);
  } catch (error) {
    $("segment-error").textContent = error.message;
  }
}

async function deleteSegment() {
  if (!state.segmentId) return;
  const name = $("segment-picker").selectedOptions[0].textContent;
  if (!window.confirm(`Delete the segment "${name}"? Its contacts stay.`)) return;
  try {
    await api(`/v1/segments/${encodeURIComponent(state.segmentId)}`, { method: "DELETE" });
    await loadSegments();
    await pickSegment("");
  } catch (error) {
    $("segment-error").textContent = error.message;
  }
}

// --- export

async function exportCsv() {
  const button = $("export-button");
  button.disabled = true;
  $("export-state").textContent = "Preparing the file…";
  $("contacts-error").textContent = "";
  try {
    const path = state.segmentId
      ? `/v1/segments/${encodeURIComponent(state.segmentId)}/export.csv`
      : `/v1/contacts/export.csv?${filterQuery(readFilters())}`;
    const saved = await download(path, "contacts.csv");
    $("export-state").textContent = `Downloaded ${saved.name}.`;
  } catch (error) {
    $("export-state").textContent = "";
    $("contacts-error").textContent = error.message;
  } finally {
    button.disabled = false;
  }
}

export function wireContacts() {
  $("filters-form").addEventListener("submit", (event) => {
    event.preventDefault();
    if (state.segmentId) pickSegment("");
    else loadContacts();
  });
  $("filters-clear").addEventListener("click", () => {
    $("filters-form").reset();
    loadContacts();
  });
  $("filter-sort").addEventListener("change", () => loadContacts()); // also orders a segment's contacts
  $("contacts-more").addEventListener("click", () => loadContacts({ more: true }));
  $("segment-picker").addEventListener("change", (event) => pickSegment(event.target.value));
  $("segment-from-filters").addEventListener("click", fillFilterFromFilters);
  $("segment-form").addEventListener("submit", createSegment);
  $("segment-delete").addEventListener("click", deleteSegment);
  $("export-button").addEventListener("click", exportCsv);
}
