"""enrichment's reads and writes: lock the contacts a batch touches, then upsert their new state in the
caller's transaction."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from services.enrichment.domain import ContactNames
from shared.db import copy_rows

COLUMNS = ["contact_id", "email", "first_name", "last_name", "display_name", "version", "updated_at"]


def _row(state: ContactNames) -> tuple[Any, ...]:
    return tuple(getattr(state, column) for column in COLUMNS)


async def lock_contacts(conn: AsyncConnection, contact_ids: Sequence[str]) -> dict[str, ContactNames]:
    """The known state of ``contact_ids``, row-locked in a stable order."""
    if not contact_ids:
        return {}
    result = await conn.execute(
        text(
            f"SELECT {', '.join(COLUMNS)} FROM contacts WHERE contact_id = ANY(:ids) "
            'ORDER BY contact_id COLLATE "C" FOR UPDATE'
        ),
        {"ids": sorted(set(contact_ids))},
    )
    return {row.contact_id: ContactNames(**row._mapping) for row in result}


async def save_contacts(conn: AsyncConnection, states: Sequence[ContactNames]) -> None:
    """COPY into a staging table, then one upsert; a row never moves back to an older version."""
    if not states:
        return
    await conn.execute(
        text(
            "CREATE TEMP TABLE IF NOT EXISTS contacts_stage (LIKE contacts INCLUDING DEFAULTS) "
            "ON COMMIT DELETE ROWS"
        )
    )
    await copy_rows(conn, table="contacts_stage", columns=COLUMNS, rows=map(_row, states))
    updates = ", ".join(f"{column} = excluded.{column}" for column in COLUMNS[1:])
    await conn.execute(
        text(
            f"INSERT INTO contacts ({', '.join(COLUMNS)}) SELECT {', '.join(COLUMNS)} FROM contacts_stage "
            f"ON CONFLICT (contact_id) DO UPDATE SET {updates} "
            "WHERE contacts.version < excluded.version"
        )
    )
