// The organizer's contacts screens: the list (#) and a contact's page (#contact=ID). Talks only to this profiles
// service's API with the organizer's token.

import { $, saveToken, takeTokenFromAddress, token } from "./api.js";
import { openContact, wireContact } from "./contact.js";
import { loadContacts, loadSegments, wireContacts } from "./contacts.js";

let listLoaded = false;

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
  } else if (!listLoaded) {
    listLoaded = true;
    await Promise.all([loadSegments(), loadContacts()]);
  }
}

function useToken(event) {
  event.preventDefault();
  saveToken($("token").value.trim());
  showTokenState();
  listLoaded = false;
  route();
}

takeTokenFromAddress();
showTokenState();
wireContacts();
wireContact();
$("token-form").addEventListener("submit", useToken);
window.addEventListener("hashchange", route);
route();
