"""The caller's contacts as a CSV file (a saved segment's, or those of the contacts list's filters) with its private
fields: relationship, permission, tags, notes, preferences and insights. Streamed a page at a time in contact id
order, each page read with its own connection, so memory stays flat and a slow download holds no connection.
PostgreSQL formats each line (``shared.csv_cells.cell_sql``: every cell neutralized for spreadsheets and quoted, as
``csv.writer`` would write ``neutralized`` cells), so a page costs Python one join; UTF-8 with a byte-order mark."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.profiles import queries
from services.profiles.queries import Filters, Position
from shared.csv_cells import cell_sql, neutralized

PAGE_ROWS = 2000
TEXT, TIME, NUMBER, LIST, OBJECT = "text", "time", "number", "list", "object"
COLUMNS: tuple[tuple[str, str], ...] = (
    ("contact_id", TEXT), ("email", TEXT), ("email_original", TEXT), ("display_name", TEXT), ("first_name", TEXT),
    ("last_name", TEXT), ("company", TEXT), ("title", TEXT), ("phone", TEXT), ("bio", TEXT),
    ("social_links", OBJECT), ("user_account_id", TEXT), ("email_permission", TEXT), ("permission_source", TEXT),
    ("permission_changed_at", TIME), ("permission_changed_by", TEXT), ("tags", LIST), ("notes", TEXT),
    ("preferences", OBJECT), ("events_attended", NUMBER), ("attended_events", LIST), ("registered_events", LIST),
    ("registrations", NUMBER), ("tickets_purchased", NUMBER), ("orders", NUMBER), ("first_seen_at", TIME),
    ("last_seen_at", TIME), ("last_active_at", TIME), ("import_ids", LIST), ("created_at", TIME),
    ("updated_at", TIME),
)
"""The columns of ``organizer_contacts`` exported, and how each becomes text: lists joined with "; ", objects as
JSON (empty: a blank cell), times in ISO 8601 (UTC)."""


def _as_text(name: str, kind: str) -> str:
    column = f"o.{name}"
    if kind == TIME:
        return f"(to_json({column}) #>> '{{}}')"
    if kind == LIST:
        return f"array_to_string({column}, '; ')"
    if kind == OBJECT:
        return f"CASE WHEN {column} = '{{}}'::jsonb THEN NULL ELSE CAST({column} AS text) END"
    return f"CAST({column} AS text)" if kind == NUMBER else column


LINE = " || ',' || ".join(cell_sql(_as_text(name, kind)) for name, kind in COLUMNS)
"""One contact's CSV line (without its line break)."""


def header() -> str:
    buffer = io.StringIO()
    csv.writer(buffer, quoting=csv.QUOTE_ALL, lineterminator="\r\n").writerow(
        [neutralized(name) for name, _ in COLUMNS])
    return buffer.getvalue()


async def contacts_csv(engine: AsyncEngine, *, organizer_id: str, filters: Filters) -> AsyncIterator[bytes]:
    """The organizer's contacts matching ``filters`` as CSV chunks: the header, then one chunk per page."""
    yield ("\ufeff" + header()).encode()
    after: Position | None = None
    while True:
        async with engine.connect() as conn:
            await conn.execute(text("SET LOCAL TimeZone = 'UTC'"))
            rows = await queries.find_contacts(conn, organizer_id=organizer_id, filters=filters, sort="id",
                                               after=after, limit=PAGE_ROWS, columns=f"o.contact_id, {LINE} AS line")
        if not rows:
            return
        yield ("\r\n".join(row.line for row in rows) + "\r\n").encode()
        if len(rows) < PAGE_ROWS:
            return
        after = Position(sort="id", contact_id=rows[-1].contact_id)
