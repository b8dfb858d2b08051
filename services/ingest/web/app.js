// The column-mapping screen: upload a CSV, confirm its mapping, follow the import, then its result (results.js).
// Talks only to this ingest service's /v1/imports API. Everything that comes from a file (headers, cells,
// messages) is written with textContent, never parsed as HTML.
import { $, api, element, saveToken, showTokenState, takeTokenFromAddress } from "./api.js";
import { listImports, showResult, wireResults } from "./results.js";

const POLL_MILLISECONDS = 1000;
const FINISHED = new Set(["processed", "error"]);

const FIELD_LABELS = {
  email: "Email",
  first_name: "First name",
  last_name: "Last name",
  company: "Company",
  title: "Job title",
  phone: "Phone",
  external_id: "External id (e.g. HubSpot Record ID)",
  marketing_contact_status: "Marketing contact status",
  unsubscribed_from_all_email: "Unsubscribed from all email",
};
const REASONS = {
  exact_name: "exact name",
  known_alias: "known alias",
  hubspot_profile: "HubSpot column",
  fuzzy_match: "similar name (please check)",
};
const DELIMITERS = { ",": "comma (,)", ";": "semicolon (;)", "\t": "tab", "|": "pipe (|)" };

const state = { importId: null, columns: [], polling: null };

// --- step 2: upload

async function upload(event) {
  event.preventDefault();
  const file = $("file").files[0];
  $("upload-error").textContent = "";
  if (!file) {
    $("upload-error").textContent = "Choose a CSV file first.";
    return;
  }
  stopPolling();
  $("mapping-section").hidden = true;
  $("summary-section").hidden = true;
  $("errors-section").hidden = true;
  $("rows-section").hidden = true;
  $("download-errors").hidden = true;
  const form = new FormData();
  form.append("file", file, file.name);
  $("upload-button").disabled = true;
  try {
    const accepted = await api("/v1/imports", { method: "POST", body: form });
    state.importId = accepted.import_id;
    if (accepted.status === "error") {
      // refused as a whole: the reason is on the import
      await follow();
      return;
    }
    showMapping(await api(`/v1/imports/${accepted.import_id}/mapping`), file.name);
  } catch (error) {
    $("upload-error").textContent = error.message;
  } finally {
    $("upload-button").disabled = false;
  }
}

// --- step 3: the mapping screen

function fieldSelect(column, fields) {
  const select = element("select");
  select.id = `field-${column.index}`;
  select.dataset.index = String(column.index);
  select.append(new Option("Skip this column", ""));
  for (const field of fields) select.append(new Option(FIELD_LABELS[field] || field, field));
  select.value = column.field || "";
  return select;
}

function showMapping(view, filename) {
  $("fact-file").textContent = filename;
  $("fact-encoding").textContent = view.encoding;
  $("fact-delimiter").textContent = DELIMITERS[view.delimiter] || view.delimiter;
  $("fact-hubspot").textContent = view.hubspot ? "yes: HubSpot's columns are mapped for you" : "no";
  const body = $("mapping-table").tBodies[0];
  body.replaceChildren();
  state.columns = view.columns;
  for (const column of view.columns) {
    const row = element("tr");
    const header = element("th", column.header || `(column ${column.index + 1} has no header)`);
    header.scope = "row";
    header.id = `header-${column.index}`;
    const samples = element("td");
    if (column.samples.length) {
      const list = element("ul");
      for (const sample of column.samples) list.append(element("li", sample));
      samples.append(list);
    } else {
      samples.textContent = "(no values)";
    }
    const choice = element("td");
    const select = fieldSelect(column, view.fields);
    const label = element("label", `Field for column ${column.header || column.index + 1}`);
    label.htmlFor = select.id;
    label.className = "visually-hidden";
    choice.append(label, select);
    const reason = element("td");
    reason.id = `reason-${column.index}`;
    if (column.field && column.reason) {
      const confidence = Math.round(column.confidence * 100);
      reason.textContent = `${REASONS[column.reason] || column.reason}, ${confidence}% sure`;
      if (column.reason === "fuzzy_match") reason.className = "guess";
    } else {
      reason.textContent = "not recognized: skipped unless you choose a field";
    }
    row.append(header, samples, choice, reason);
    body.append(row);
  }
  $("mapping-error").textContent = "";
  $("import-button").disabled = false;
  $("mapping-section").hidden = false;
}

function chosenColumns() {
  const selects = $("mapping-table").querySelectorAll("select[data-index]");
  return Array.from(selects, (select) => ({ index: Number(select.dataset.index), field: select.value || null }));
}

async function startImport() {
  $("mapping-error").textContent = "";
  $("import-button").disabled = true;
  try {
    await api(`/v1/imports/${state.importId}/mapping`, {
      method: "PUT",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ columns: chosenColumns() }),
    });
    await api(`/v1/imports/${state.importId}/start`, { method: "POST" });
  } catch (error) {
    $("mapping-error").textContent = error.message;
    $("import-button").disabled = false;
    return;
  }
  for (const select of $("mapping-table").querySelectorAll("select")) select.disabled = true;
  await follow();
}

// --- step 4: the live summary and the refused rows

function stopPolling() {
  if (state.polling !== null) window.clearTimeout(state.polling);
  state.polling = null;
}

function showSummary(summary) {
  $("summary-status").textContent = summary.status;
  $("summary-total").textContent = summary.total_rows === null ? "counting…" : String(summary.total_rows);
  $("summary-processed").textContent = String(summary.processed_rows);
  $("summary-created").textContent = String(summary.created);
  $("summary-matched").textContent = String(summary.matched);
  $("summary-errors").textContent = String(summary.errors);
  $("summary-error").textContent = summary.error || "";
  $("summary-section").hidden = false;
}

async function follow() {
  stopPolling();
  const importId = state.importId;
  let summary;
  try {
    summary = await api(`/v1/imports/${importId}`);
  } catch (error) {
    $("summary-error").textContent = error.message;
    $("summary-section").hidden = false;
    return;
  }
  if (importId !== state.importId) return; // another file was uploaded meanwhile
  showSummary(summary);
  if (!FINISHED.has(summary.status)) {
    state.polling = window.setTimeout(follow, POLL_MILLISECONDS);
    return;
  }
  await showResult(importId, summary);
  listImports();
}

/** Open an import named in the address (#import=ID): its mapping if it was uploaded but not started, else its
 * summary, then its rows once it is finished. */
async function openNamedImport() {
  const importId = new URLSearchParams(window.location.hash.slice(1)).get("import");
  if (!importId || importId === state.importId) return;
  stopPolling();
  state.importId = importId;
  $("mapping-section").hidden = true;
  $("rows-section").hidden = true;
  $("errors-section").hidden = true;
  $("download-errors").hidden = true;
  $("summary-section").hidden = true;
  try {
    const summary = await api(`/v1/imports/${importId}`);
    if (summary.status === "uploaded") {
      showMapping(await api(`/v1/imports/${importId}/mapping`), summary.filename || "");
      return;
    }
  } catch (error) {
    $("summary-error").textContent = error.message;
    $("summary-section").hidden = false;
    return;
  }
  await follow();
}

// --- wiring

function useToken(event) {
  event.preventDefault();
  saveToken($("token").value.trim());
  showTokenState();
  listImports();
}

takeTokenFromAddress();
showTokenState();
$("token-form").addEventListener("submit", useToken);
$("upload-form").addEventListener("submit", upload);
$("import-button").addEventListener("click", startImport);
wireResults();
window.addEventListener("hashchange", openNamedImport);
openNamedImport();
listImports();
