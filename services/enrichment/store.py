"""enrichment's reads and writes: lock the contacts a batch touches, then upsert their new state in the
caller's transaction."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from services.enrichment import db
from services.enrichment.domain import ContactNames
from shared.db import stage

COLUMNS = [column.name for column in db.contacts.columns]


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
    await stage(conn, name="contacts_stage", like="contacts", columns=COLUMNS, rows=map(_row, states))
    updates = ", ".join(f"{column} = excluded.{column}" for column in COLUMNS[1:])
    await conn.execute(
        text(
            f"INSERT INTO contacts ({', '.join(COLUMNS)}) SELECT {', '.join(COLUMNS)} FROM contacts_stage "
            f"ON CONFLICT (contact_id) DO UPDATE SET {updates} "
            "WHERE contacts.version < excluded.version"
        )
    )
