"""identity's reads and writes, in the caller's transaction: lock the contacts a batch touches with the organizer
layers it needs, then write contacts, layers, the event store and the row answers with COPY and one statement
per table; rows are read as plain tuples."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from services.identity import db
from services.identity.db import ROWS_PER_BLOCK
from services.identity.domain import Contact, Layer
from shared.db import copy_rows, fetch_tuples, stage
from shared.events import CONTACT_FIELDS

CONTACT_COLUMNS = [c.name for c in db.contacts.columns]
VALUE_COLUMNS = ["email_original", *CONTACT_FIELDS]  # what a layer holds
LAYER_COLUMNS = [c.name for c in db.contact_layers.columns]
EVENT_COLUMNS = ["contact_id", "version", "type", "payload", "occurred_at", "correlation_id", "causation_id",
                 "traceparent"]
ANSWER_COLUMNS = ["import_id", "partition", "first_row", "last_row", "payload", "causation_id", "traceparent"]
STREAM_LOCK = "identity.relayed-streams"


class ConcurrentCreation(Exception):
    """Another transaction created a contact (or layer) for the same key first; the batch must be retried."""


def _layer(values: Sequence[Any]) -> Layer:
    email_original, *fields = values
    return Layer(email_original=email_original,
                 fields={name: value for name, value in zip(CONTACT_FIELDS, fields, strict=True) if value is not None})


async def lock_contacts(conn: AsyncConnection, keys: Iterable[tuple[str, str]]) -> dict[str, Contact]:
    """The contacts of the emails in ``keys`` ((email, organizer id) pairs), row-locked in email order (a stable
    order: no deadlock between instances), each with the layers of the organizers ``keys`` names for it."""
    organizers_of: dict[str, set[str]] = {}
    for email, organizer_id in keys:
        organizers_of.setdefault(email, set()).add(organizer_id)
    if not organizers_of:
        return {}
    rows = await fetch_tuples(
        conn,
        "SELECT contact_id::text, email, email_original, first_name, last_name, company, title, phone, version, "
        "created_at, updated_at, bio, social_links, user_account_id FROM contacts "
        "WHERE email = ANY(%s) ORDER BY email FOR UPDATE",
        (sorted(organizers_of),),
    )
    if not rows:
        return {}
    pairs = [(row[0], organizer_id) for row in rows for organizer_id in organizers_of[row[1]]]
    layer_rows = await fetch_tuples(
        conn,
        "SELECT l.contact_id::text, l.organizer_id, l.email_original, l.first_name, l.last_name, l.company, "
        "l.title, l.phone FROM contact_layers l JOIN unnest(%s::uuid[], %s::text[]) AS k(c, o) "
        "ON l.contact_id = k.c AND l.organizer_id = k.o",
        ([c for c, _ in pairs], [o for _, o in pairs]),
    )
    layers: dict[str, dict[str, Layer]] = {}
    for contact_id, organizer_id, *values in layer_rows:
        layers.setdefault(contact_id, {})[organizer_id] = _layer(values)
    contacts = {}
    for (contact_id, email, email_original, *fields, version, created_at, updated_at, bio, links, account) in rows:
        person = Layer(
            email_original=email_original,
            fields={name: value for name, value in zip(CONTACT_FIELDS, fields, strict=True) if value is not None},
            bio=bio, social_links=links or {}, user_account_id=account,
        )
        contacts[email] = Contact(contact_id=contact_id, email=email, version=version, created_at=created_at,
                                  updated_at=updated_at, person=person, organizers=layers.get(contact_id, {}))
    return contacts


def _contact_row(contact: Contact) -> tuple[Any, ...]:
    person = contact.person
    return (
        contact.contact_id, contact.email, person.email_original,
        *(person.fields.get(name) for name in CONTACT_FIELDS),
        contact.version, contact.created_at, contact.updated_at, person.bio,
        orjson.dumps(person.social_links).decode(), person.user_account_id,
    )


async def insert_contacts(conn: AsyncConnection, contacts: Iterable[Contact]) -> None:
    """New contacts, straight into the table: a concurrent creation of the same email fails the transaction
    (``ConcurrentCreation`` from the caller's retry)."""
    await copy_rows(conn, table="contacts", columns=CONTACT_COLUMNS, rows=map(_contact_row, contacts))


async def update_contacts(conn: AsyncConnection, contacts: Sequence[Contact]) -> None:
    if not contacts:
        return
    await stage(conn, name="contacts_stage", like="contacts", columns=CONTACT_COLUMNS,
                rows=map(_contact_row, contacts))
    keep = ("contact_id", "email", "created_at")
    assignments = ", ".join(f"{c} = s.{c}" for c in CONTACT_COLUMNS if c not in keep)
    await conn.execute(
        text(f"UPDATE contacts c SET {assignments} FROM contacts_stage s WHERE c.contact_id = s.contact_id")
    )


def _layer_rows(layers: Mapping[tuple[str, str], Layer]) -> Iterable[tuple[Any, ...]]:
    for (contact_id, organizer_id), layer in layers.items():
        yield (contact_id, organizer_id, layer.email_original, *(layer.fields.get(name) for name in CONTACT_FIELDS))


async def insert_layers(conn: AsyncConnection, layers: Mapping[tuple[str, str], Layer]) -> None:
    await copy_rows(conn, table="contact_layers", columns=LAYER_COLUMNS, rows=_layer_rows(layers))


async def update_layers(conn: AsyncConnection, layers: Mapping[tuple[str, str], Layer]) -> None:
    if not layers:
        return
    await stage(conn, name="layers_stage", like="contact_layers", columns=LAYER_COLUMNS, rows=_layer_rows(layers))
    assignments = ", ".join(f"{c} = s.{c}" for c in VALUE_COLUMNS)
    await conn.execute(
        text(
            f"UPDATE contact_layers l SET {assignments} FROM layers_stage s "
            "WHERE l.contact_id = s.contact_id AND l.organizer_id = s.organizer_id"
        )
    )


async def lock_streams(conn: AsyncConnection) -> None:
    """Taken before appending to the relayed stores (events, answers) and held until commit: positions then
    commit in the order they are taken, so the relay's cursor never passes a position that a slower transaction
    is still about to commit."""
    await conn.execute(text("SELECT pg_advisory_xact_lock(hashtext(:name))"), {"name": STREAM_LOCK})


async def append_events(conn: AsyncConnection, rows: Iterable[Sequence[Any]]) -> None:
    """Append to the event store (``EVENT_COLUMNS`` per row), after ``lock_streams``; the (contact id, version)
    key rejects a second writer of a version."""
    await copy_rows(conn, table="contact_events", columns=EVENT_COLUMNS, rows=rows)


def _block_bits(offsets: Iterable[int]) -> str:
    value = 0
    for offset in offsets:
        value |= 1 << (ROWS_PER_BLOCK - 1 - offset)
    return format(value, f"0{ROWS_PER_BLOCK}b")


async def claim_rows(conn: AsyncConnection, rows: Iterable[tuple[str, int]]) -> set[tuple[str, int]]:
    """Of ``rows`` ((import id, row number) pairs), those applied before; the blocks holding them are row-locked
    until the transaction ends, so two instances never apply one row twice. ``mark_rows`` records the rest."""
    rows = list(rows)
    blocks = sorted({(import_id, number // ROWS_PER_BLOCK) for import_id, number in rows})
    if not blocks:
        return set()
    imports, numbers = [i for i, _ in blocks], [b for _, b in blocks]
    await fetch_tuples(
        conn,
        "INSERT INTO applied_rows (import_id, block, bits) SELECT i, b, B'0'::bit(1024) "
        "FROM unnest(%s::text[], %s::int[]) AS u(i, b) ON CONFLICT DO NOTHING RETURNING 1",
        (imports, numbers),
    )
    stored = await fetch_tuples(
        conn,
        "SELECT a.import_id, a.block, CASE WHEN position('1' IN a.bits::text) > 0 THEN a.bits::text END "
        "FROM applied_rows a JOIN unnest(%s::text[], %s::int[]) AS u(i, b) ON a.import_id = u.i AND a.block = u.b "
        "ORDER BY a.import_id, a.block FOR UPDATE OF a",
        (imports, numbers),
    )
    bits = {(import_id, block): text_bits for import_id, block, text_bits in stored if text_bits}
    if not bits:
        return set()
    applied = set()
    for import_id, number in rows:
        block = bits.get((import_id, number // ROWS_PER_BLOCK))
        if block is not None and block[number % ROWS_PER_BLOCK] == "1":
            applied.add((import_id, number))
    return applied


async def mark_rows(conn: AsyncConnection, rows: Iterable[tuple[str, int]]) -> None:
    """Record ``rows`` as applied (their blocks were locked by ``claim_rows``)."""
    offsets: dict[tuple[str, int], list[int]] = {}
    for import_id, number in rows:
        offsets.setdefault((import_id, number // ROWS_PER_BLOCK), []).append(number % ROWS_PER_BLOCK)
    if not offsets:
        return
    await conn.execute(
        text(
            "UPDATE applied_rows a SET bits = a.bits | CAST(u.bits AS bit(1024)), updated_at = now() "
            "FROM unnest(CAST(:imports AS text[]), CAST(:blocks AS int[]), CAST(:bits AS text[])) AS u(i, b, bits) "
            "WHERE a.import_id = u.i AND a.block = u.b"
        ),
        {"imports": [i for i, _ in offsets], "blocks": [b for _, b in offsets],
         "bits": [_block_bits(o) for o in offsets.values()]},
    )


async def record_answers(conn: AsyncConnection, rows: Iterable[Sequence[Any]]) -> None:
    await copy_rows(conn, table="row_answers", columns=ANSWER_COLUMNS, rows=rows)


async def answers_covering(conn: AsyncConnection, import_id: str, numbers: Sequence[int]) -> list[bytes]:
    """The stored answers (as published) that hold any of ``import_id``'s rows ``numbers``."""
    rows = await fetch_tuples(
        conn,
        "SELECT payload::text FROM row_answers WHERE import_id = %s AND last_row >= %s AND first_row <= %s "
        "ORDER BY position",
        (import_id, min(numbers), max(numbers)),
    )
    wanted = set(numbers)
    return [payload.encode() for (payload,) in rows
            if any(row["row_number"] in wanted for row in orjson.loads(payload)["rows"])]


async def claim_interactions(conn: AsyncConnection, ids: Sequence[tuple[str, str]]) -> set[tuple[str, str]]:
    """Record (ce_source, ce_id) of interactions as applied; returns those not recorded before."""
    if not ids:
        return set()
    rows = await fetch_tuples(
        conn,
        "INSERT INTO applied_interactions (source, id) SELECT * FROM unnest(%s::text[], %s::text[]) "
        "ON CONFLICT DO NOTHING RETURNING source, id",
        ([s for s, _ in ids], [i for _, i in ids]),
    )
    return {(source, id_) for source, id_ in rows}


def event_row(*, contact_id: str, version: int, type: str, payload: bytes, occurred_at: datetime,
              correlation_id: str | None, causation_id: str | None, traceparent: str | None) -> tuple[Any, ...]:
    return (contact_id, version, type, payload.decode(), occurred_at, correlation_id, causation_id, traceparent)
