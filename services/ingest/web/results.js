// An import's result: the rows of the file by outcome, each linking to the contact it resolved to (on the profiles
// screen) or to why it was refused (the error rows below, with their cells as read), the error rows as a CSV file,
// and the organizer's recent imports (#import=ID opens one). Everything that comes from a file is written with
// textContent, never parsed as HTML.

import { $, api, contactPage, download, element } from "./api.js";

const MAX_ERROR_ROWS = 1000;
const ROWS_PAGE = 100;
const OUTCOMES = { created: "created a new contact", matched: "matched an existing contact", error: "refused" };

const rows = { importId: null, after: 0 };

export async function showResult(importId, summary) {
  rows.importId = importId;
  $("download-errors").hidden = !(summary.errors > 0);
  $("download-state").textContent = "";
  if (summary.errors > 0) await showErrorRows(importId);
  if (summary.processed_rows > 0) await showRows({ reset: true });
}

// --- the rows by outcome

function resolution(item) {
  const cell = element("td");
  const link = element("a");
  if (item.contact_id) {
    link.textContent = "Open the contact";
    link.href = contactPage(item.contact_id);
  } else {
    link.textContent = [item.error_code, item.error_message].filter(Boolean).join(": ") || "See the error";
    link.href = `#error-row-${item.row_number}`;
  }
  cell.append(link);
  return cell;
}

async function showRows({ reset }) {
  const importId = rows.importId;
  const body = $("rows-table").tBodies[0];
  if (reset) {
    body.replaceChildren();
    rows.after = 0;
  }
  const outcome = $("rows-outcome").value;
  const query = new URLSearchParams({ limit: String(ROWS_PAGE), after: String(rows.after) });
  if (outcome) query.set("outcome", outcome);
  try {
    const page = await api(`/v1/imports/${importId}/rows?${query}`);
    if (importId !== rows.importId) return;
    for (const item of page.items) {
      const row = element("tr");
      row.dataset.outcome = item.outcome;
      row.append(element("td", String(item.row_number)), element("td", OUTCOMES[item.outcome] || item.outcome),
        resolution(item));
      body.append(row);
    }
    rows.after = page.next_after;
    $("rows-more").hidden = page.next_after === null;
  } catch (error) {
    $("summary-error").textContent = error.message;
  }
  $("rows-empty").hidden = body.rows.length > 0;
  $("rows-table").hidden = body.rows.length === 0;
  $("rows-section").hidden = false;
}

// --- the refused rows with their cells

async function showErrorRows(importId) {
  const body = $("errors-table").tBodies[0];
  body.replaceChildren();
  let after = 0;
  let shown = 0;
  try {
    while (after !== null && shown < MAX_ERROR_ROWS) {
      const page = await api(`/v1/imports/${importId}/rows?outcome=error&limit=200&after=${after}`);
      for (const item of page.items) {
        const row = element("tr");
        row.id = `error-row-${item.row_number}`;
        row.append(
          element("td", String(item.row_number)),
          element("td", item.error_code || ""),
          element("td", item.error_message || ""),
          cellsOf(item.cells),
        );
        body.append(row);
        shown += 1;
      }
      after = page.next_after;
    }
  } catch (error) {
    $("summary-error").textContent = error.message;
  }
  if (after !== null) $("errors-caption").textContent += ` (the first ${shown} shown)`;
  $("errors-section").hidden = false;
}

function cellsOf(cells) {
  const cell = element("td");
  if (!cells) return cell;
  const list = element("ol");
  for (const value of cells) list.append(element("li", value));
  cell.append(list);
  return cell;
}

async function downloadErrors() {
  $("download-errors").disabled = true;
  $("download-state").textContent = "Preparing the file…";
  try {
    const name = await download(`/v1/imports/${rows.importId}/rows.csv?outcome=error`, "errors.csv");
    $("download-state").textContent = `Downloaded ${name}.`;
  } catch (error) {
    $("download-state").textContent = error.message;
  } finally {
    $("download-errors").disabled = false;
  }
}

// --- recent imports

export async function listImports() {
  const list = $("imports-list");
  let page;
  try {
    page = await api("/v1/imports?limit=10");
  } catch {
    $("imports-section").hidden = true; // no token yet, or a refused one: the token form says so
    return;
  }
  list.replaceChildren();
  for (const item of page.items) {
    const entry = element("li");
    const link = element("a", item.filename || `${item.source} import`);
    link.href = `#import=${encodeURIComponent(item.import_id)}`;
    const counts = `${item.created} created, ${item.matched} matched, ${item.errors} errors`;
    entry.append(link, ` · ${item.status} · ${new Date(item.created_at).toLocaleString()} · ${counts}`);
    list.append(entry);
  }
  $("imports-section").hidden = page.items.length === 0;
}

export function wireResults() {
  $("rows-outcome").addEventListener("change", () => showRows({ reset: true }));
  $("rows-more").addEventListener("click", () => showRows({ reset: false }));
  $("download-errors").addEventListener("click", downloadErrors);
}
