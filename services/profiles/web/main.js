// The organizer's contacts screens: the list (#) and a contact's page (#contact=ID). Talks only to this profiles
// service's API with the organizer's token.

import { $, saveToken, takeTokenFromAddress, token } from "./api.js";
import { openContact, wireContact } from "./contact.js";
import { loadContacts, loadSegments, wireContacts } from "./contacts.js";

let segmentsLoaded = false;

function showTokenState() {
  const saved = token();
  $("token").value = saved;
  $("token-state").textContent = saved ? "Token set." : "No token yet.";
}

async function route() {
  const contactId = new URLSearchParams(window.location.hash.slice(1)).get("contact");
  $("contact-view").hidden = !contactId;
  $("list-view").hidden = Boolean(contactId);
  if (!token()) return;
  if (contactId) {
    await openContact(contactId);
  } else {
    // back from a contact's page: list again, since its tags, permission or notes may have changed there
    const segments = segmentsLoaded ? Promise.resolve() : loadSegments();
    segmentsLoaded = true;
    await Promise.all([segments, loadContacts()]);
  }
}

function useToken(event) {
  event.preventDefault();
  saveToken($("token").value.trim());
  showTokenState();
  segmentsLoaded = false;
  route();
}

takeTokenFromAddress();
showTokenState();
wireContacts();
wireContact();
$("token-form").addEventListener("submit", useToken);
window.addEventListener("hashchange", route);
route();
