"""identity's reads and writes: lock the contacts a batch touches, then write new state, the contact event
store and the outbox in the caller's transaction."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from services.identity.domain import Contact, FieldOrigin
from shared.db import copy_rows
from shared.events import CONTACT_FIELDS, ContactEvent

CONTACT_COLUMNS = [
    "contact_id", "email", "email_original", *CONTACT_FIELDS, "origins", "version", "created_at", "updated_at",
    "bio", "social_links", "user_account_id",
]


class ConcurrentCreation(Exception):
    """Another transaction created a contact for the same email first; the batch must be retried."""


def _origins_json(origins: dict[str, FieldOrigin]) -> str:
    return json.dumps(
        {
            name: {"kind": o.kind, "organizer_id": o.organizer_id, "reference": o.reference, "at": o.at.isoformat()}
            for name, o in origins.items()
        }
    )


def _contact_from_row(row: Any) -> Contact:
    return Contact(
        contact_id=str(row.contact_id),
        email=row.email,
        email_original=row.email_original,
        version=row.version,
        fields={name: getattr(row, name) for name in CONTACT_FIELDS if getattr(row, name) is not None},
        origins={
            name: FieldOrigin(
                kind=o["kind"], organizer_id=o["organizer_id"], reference=o["reference"],
                at=datetime.fromisoformat(o["at"]),
            )
            for name, o in (row.origins or {}).items()
        },
        created_at=row.created_at,
        updated_at=row.updated_at,
        bio=row.bio,
        social_links=dict(row.social_links or {}),
        user_account_id=row.user_account_id,
    )


def _contact_row(contact: Contact) -> tuple[Any, ...]:
    return (
        contact.contact_id, contact.email, contact.email_original,
        *(contact.fields.get(name) for name in CONTACT_FIELDS),
        _origins_json(contact.origins), contact.version, contact.created_at, contact.updated_at,
        contact.bio, json.dumps(contact.social_links), contact.user_account_id,
    )


async def lock_contacts(conn: AsyncConnection, emails: Sequence[str]) -> dict[str, Contact]:
    """The existing contacts for ``emails``, row-locked in email order (a stable order avoids deadlocks
    between instances)."""
    if not emails:
        return {}
    result = await conn.execute(
        text("SELECT * FROM contacts WHERE email = ANY(:emails) ORDER BY email FOR UPDATE"),
        {"emails": sorted(set(emails))},
    )
    return {row.email: _contact_from_row(row) for row in result}


async def _stage(conn: AsyncConnection, contacts: Iterable[Contact]) -> None:
    await conn.execute(
        text("CREATE TEMP TABLE IF NOT EXISTS contacts_stage (LIKE contacts) ON COMMIT DELETE ROWS")
    )
    await copy_rows(conn, table="contacts_stage", columns=CONTACT_COLUMNS, rows=map(_contact_row, contacts))


async def insert_contacts(conn: AsyncConnection, contacts: Sequence[Contact]) -> None:
    if not contacts:
        return
    await _stage(conn, contacts)
    result = await conn.execute(
        text(
            f"INSERT INTO contacts ({', '.join(CONTACT_COLUMNS)}) SELECT {', '.join(CONTACT_COLUMNS)} "
            "FROM contacts_stage ON CONFLICT (email) DO NOTHING"
        )
    )
    if result.rowcount != len(contacts):
        raise ConcurrentCreation(f"{len(contacts) - result.rowcount} contacts were created concurrently")
    await conn.execute(text("TRUNCATE contacts_stage"))


async def update_contacts(conn: AsyncConnection, contacts: Sequence[Contact]) -> None:
    if not contacts:
        return
    await _stage(conn, contacts)
    assignments = ", ".join(f"{c} = s.{c}" for c in CONTACT_COLUMNS if c not in ("contact_id", "email", "created_at"))
    await conn.execute(
        text(f"UPDATE contacts c SET {assignments} FROM contacts_stage s WHERE c.contact_id = s.contact_id")
    )
    await conn.execute(text("TRUNCATE contacts_stage"))


async def append_events(conn: AsyncConnection, events: Sequence[tuple[str, ContactEvent]]) -> None:
    """Append to the event store; the (contact_id, version) key rejects a second writer of the same version."""
    await copy_rows(
        conn,
        table="contact_events",
        columns=["contact_id", "version", "event_id", "type", "payload", "occurred_at"],
        rows=(
            (event.contact_id, event.version, event_id, event.TYPE, event.model_dump_json(), event.occurred_at)
            for event_id, event in events
        ),
    )
