"""The caller's contacts as a CSV file (a saved segment's, or those of the contacts list's filters) with its private
fields: relationship, permission, tags, notes, preferences and insights. Streamed a page at a time in contact id
order, each page read with its own connection, so memory stays flat and a slow download holds no connection; every
cell neutralized for spreadsheets (``shared.csv_cells``), quoted, UTF-8 with a byte-order mark."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from services.profiles import queries
from services.profiles.queries import Filters, Position
from shared.csv_cells import neutralized

PAGE_ROWS = 1000


def _text(value: Any) -> str:
    if type(value) is str:
        return value
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, list):
        return "; ".join(map(str, value))
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True, ensure_ascii=False) if value else ""
    return str(value)


COLUMNS = (
    "contact_id", "email", "email_original", "display_name", "first_name", "last_name", "company", "title",
    "phone", "bio", "social_links", "user_account_id", "email_permission", "permission_source",
    "permission_changed_at", "permission_changed_by", "tags", "notes", "preferences", "events_attended",
    "attended_events", "registered_events", "registrations", "tickets_purchased", "orders", "first_seen_at",
    "last_seen_at", "last_active_at", "import_ids", "created_at", "updated_at",
)
"""The header: columns of ``queries.find_contacts``'s rows (lists joined with "; ", objects as JSON, times in ISO
8601)."""


async def contacts_csv(engine: AsyncEngine, *, organizer_id: str, filters: Filters) -> AsyncIterator[bytes]:
    """The organizer's contacts matching ``filters`` as CSV chunks, one per page."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, quoting=csv.QUOTE_ALL, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    yield ("\ufeff" + buffer.getvalue()).encode()
    after: Position | None = None
    while True:
        async with engine.connect() as conn:
            rows = await queries.find_contacts(conn, organizer_id=organizer_id, filters=filters, sort="id",
                                               after=after, limit=PAGE_ROWS)
        if not rows:
            return
        buffer.seek(0)
        buffer.truncate()
        positions = [rows[0]._fields.index(name) for name in COLUMNS]
        for row in rows:
            writer.writerow([neutralized(_text(row[i])) for i in positions])
        yield buffer.getvalue().encode()
        if len(rows) < PAGE_ROWS:
            return
        after = Position(sort="id", contact_id=rows[-1].contact_id)
