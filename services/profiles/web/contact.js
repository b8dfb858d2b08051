// One contact as the organizer sees it: the profile with where each value came from, the organizer's own tags,
// notes, email permission and preferences, insights and the interaction history with the organizer's events.
// Tags, notes and permission change through PATCH /v1/contacts/{id} with If-Match, so a change made meanwhile
// elsewhere is never overwritten unseen. Everything that comes from the API is written with textContent.

import { $, ApiError, element, getJson, api, sendJson, when } from "./api.js";

const PROFILE_FIELDS = [
  ["email", "Email"], ["first_name", "First name"], ["last_name", "Last name"], ["company", "Company"],
  ["title", "Job title"], ["phone", "Phone"], ["bio", "Bio"],
];
const SOURCE_KINDS = { import: "your import", interaction: "stated by the person at an event",
  attendee: "stated by the person" };
const KINDS = { registered: "Registered", waitlisted: "Joined the waitlist", ticketed: "Bought tickets",
  checked_in: "Checked in" };
const HISTORY_PAGE = 20;

const state = { contactId: null, version: null, historyCursor: null };

function fact(list, name, value, note) {
  const term = element("dt", name);
  const description = element("dd", value === null || value === undefined || value === "" ? "(none)" : value);
  description.dataset.field = name;
  if (note) description.append(" ", element("span", note));
  if (note) description.lastChild.className = "source";
  list.append(term, description);
}

function sourceNote(source) {
  if (!source) return "";
  const kind = source.yours ? "your import" : SOURCE_KINDS[source.kind] || source.kind;
  return `(${kind}${source.at ? `, ${when(source.at)}` : ""})`;
}

function showProfile(contact) {
  const facts = $("profile-facts");
  facts.replaceChildren();
  const sources = contact.field_sources || {};
  for (const [field, name] of PROFILE_FIELDS) fact(facts, name, contact[field], sourceNote(sources[field]));
  for (const [network, handle] of Object.entries(contact.social_links || {})) {
    fact(facts, `Link (${network})`, handle, sourceNote(sources[`social_links.${network}`]));
  }
  fact(facts, "Contact since", when(contact.created_at));
}

function showInsights(insights) {
  const facts = $("insights-facts");
  facts.replaceChildren();
  fact(facts, "Events attended", String(insights.events_attended));
  fact(facts, "Registrations", String(insights.registrations));
  fact(facts, "Tickets purchased", String(insights.tickets_purchased));
  fact(facts, "Orders", String(insights.orders));
  fact(facts, "First seen", when(insights.first_seen_at));
  fact(facts, "Last active", when(insights.last_active_at));
  const attended = insights.attended_events || insights.events || [];
  const list = $("insights-events");
  list.replaceChildren();
  for (const item of attended) {
    const name = typeof item === "string" ? item : item.event_id || item.kagibag_event_id || JSON.stringify(item);
    const at = typeof item === "object" && (item.checked_in_at || item.occurred_at || item.at);
    list.append(element("li", at ? `${name} (${when(at)})` : name));
  }
  if (!attended.length) list.append(element("li", "None yet."));
}

function showRelationship(contact) {
  const relationship = contact.relationship;
  state.version = relationship.version;
  const tags = $("tags-list");
  tags.replaceChildren();
  for (const tag of relationship.tags) {
    const item = element("li", tag);
    const remove = element("button", "×");
    remove.type = "button";
    remove.setAttribute("aria-label", `Remove tag ${tag}`);
    remove.addEventListener("click", () => change({ tags: { remove: [tag] } }, `Removed the tag "${tag}".`));
    item.append(remove);
    tags.append(item);
  }
  if (!relationship.tags.length) {
    const none = element("li", "No tags yet.");
    none.className = "empty";
    tags.append(none);
  }

  const permission = relationship.email_permission;
  const by = permission.source === "import" ? "an import" : permission.changed_by || "you";
  $("permission-facts").textContent = permission.source
    ? `${permission.status}, stated by ${by} on ${when(permission.changed_at)}`
    : `${permission.status} (nobody has said anything yet)`;
  $("permission-input").value = permission.status;
  $("notes-input").value = relationship.notes || "";

  const preferences = relationship.preferences || {};
  const facts = $("preferences-facts");
  facts.replaceChildren();
  const channels = Object.entries(preferences.channels || {})
    .map(([channel, wanted]) => `${channel}: ${wanted ? "yes" : "no"}`).join(", ");
  fact(facts, "Channels", channels);
  fact(facts, "Frequency", preferences.frequency);
  fact(facts, "Topics", (preferences.topics || []).join(", "));
  fact(facts, "Language", preferences.language);
}

function show(contact) {
  const name = [contact.first_name, contact.last_name].filter(Boolean).join(" ");
  $("contact-heading").textContent = contact.display_name || name || contact.email;
  showProfile(contact);
  showRelationship(contact);
  showInsights(contact.insights);
}

function historyRow(item) {
  const row = element("tr");
  row.append(
    element("td", when(item.occurred_at)),
    element("td", KINDS[item.kind] || item.kind),
    element("td", item.event_id || ""),
    element("td", item.order_id || ""),
    element("td", item.tickets === null || item.tickets === undefined ? "" : String(item.tickets)),
  );
  return row;
}

async function loadHistory({ more = false } = {}) {
  const contactId = state.contactId;
  const body = $("history-table").tBodies[0];
  if (!more) {
    body.replaceChildren();
    state.historyCursor = null;
  }
  $("history-error").textContent = "";
  const query = new URLSearchParams({ limit: String(HISTORY_PAGE) });
  if (state.historyCursor) query.set("cursor", state.historyCursor);
  try {
    const page = await getJson(`/v1/contacts/${encodeURIComponent(contactId)}/interactions?${query}`);
    if (contactId !== state.contactId) return;
    for (const item of page.items) body.append(historyRow(item));
    state.historyCursor = page.next_cursor;
    $("history-more").hidden = !page.next_cursor;
    $("history-empty").hidden = body.rows.length > 0;
    $("history-table").hidden = body.rows.length === 0;
  } catch (error) {
    $("history-error").textContent = `The history cannot be read: ${error.message}`;
    $("history-table").hidden = body.rows.length === 0;
  }
}

/** Apply a PATCH to the contact shown, sent with If-Match: a 412 reloads the contact and says so. */
async function change(patch, done) {
  $("contact-error").textContent = "";
  $("contact-notice").textContent = "";
  try {
    const { body } = await sendJson(`/v1/contacts/${encodeURIComponent(state.contactId)}`, "PATCH", patch,
      { "If-Match": `"${state.version}"` });
    show(body);
    $("contact-notice").textContent = done;
    return true;
  } catch (error) {
    if (error instanceof ApiError && error.status === 412) {
      await openContact(state.contactId);
      $("contact-error").textContent = "This contact was changed meanwhile: here it is now. Make your change again.";
    } else {
      $("contact-error").textContent = error.message;
    }
    return false;
  }
}

export async function openContact(contactId) {
  state.contactId = contactId;
  $("contact-error").textContent = "";
  $("contact-notice").textContent = "";
  try {
    const { body } = await api(`/v1/contacts/${encodeURIComponent(contactId)}`);
    if (contactId !== state.contactId) return;
    show(body);
  } catch (error) {
    $("contact-heading").textContent = "Contact";
    $("contact-error").textContent = error.status === 404 ? "No such contact among yours." : error.message;
    return;
  }
  await loadHistory();
}

export function wireContact() {
  $("tag-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const tag = $("tag-input").value.trim();
    if (!tag) return;
    if (await change({ tags: { add: [tag] } }, `Added the tag "${tag}".`)) $("tag-input").value = "";
  });
  $("notes-form").addEventListener("submit", (event) => {
    event.preventDefault();
    change({ notes: $("notes-input").value }, "Notes saved.");
  });
  $("permission-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const status = $("permission-input").value;
    change({ email_permission: status }, `Email permission is now ${status}.`);
  });
  $("history-more").addEventListener("click", () => loadHistory({ more: true }));
}
