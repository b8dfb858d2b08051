"""enrichment's reads and writes, each in the caller's transaction: the people the contact log states (written
set-wise: COPY into a stage, one upsert), which of them are due for the providers, and their suggestions."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from operator import attrgetter
from typing import Any

import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from services.enrichment import db
from services.enrichment.domain import Person, Status, Suggestion
from shared.db import copy_rows, fetch_tuples, stage
from shared.events import CONTACT_FIELDS

PERSON_COLUMNS = ["contact_id", "email", "version", *CONTACT_FIELDS, "bio", "social_links", "sources", "organizers",
                  "updated_at"]
STAGED_COLUMNS = [*PERSON_COLUMNS, "due_at", "due_traceparent"]
SUGGESTION_COLUMNS = [column.name for column in db.suggestions.columns]
_JSON_COLUMNS = ("social_links", "sources")
# JSON read as text and decoded with orjson, only when not empty (psycopg's default loader is the stdlib's)
_PERSON_SELECT = ", ".join(f"{name}::text" if name in _JSON_COLUMNS else name for name in PERSON_COLUMNS)


def _person(row: Sequence[Any]) -> Person:
    contact_id, email, version, first, last, company, title, phone, bio, links, sources, organizers, updated = row
    fields: dict[str, str] = {}
    for name, value in (("first_name", first), ("last_name", last), ("company", company), ("title", title),
                        ("phone", phone)):
        if value is not None:
            fields[name] = value
    stated = orjson.loads(sources) if sources != "{}" else None
    return Person(
        contact_id=contact_id, version=version, email=email, fields=fields, bio=bio,
        social_links=orjson.loads(links) if links != "{}" else {},
        sources={name: (source["kind"], datetime.fromisoformat(source["at"])) for name, source in stated.items()}
        if stated else {},
        organizers=frozenset(organizers), updated_at=updated,
    )


def _array(values: Iterable[str | None]) -> str:
    """A PostgreSQL array literal of text (NULL for None), cast in SQL to the array type it holds: a parameter of
    one string instead of psycopg's element-by-element list dumping."""
    return "{" + ",".join(
        "NULL" if value is None else '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
        for value in values
    ) + "}"


def _json(value: object) -> str:
    return orjson.dumps(value).decode() if value else "{}"


@lru_cache(maxsize=4096)
def _text_array(values: frozenset[str]) -> str:
    """The organizers as an array literal (COPY reads it into ``text[]``); a batch has few distinct sets."""
    return _array(sorted(values))


def _row(person: Person, due_at: datetime | None, traceparent: str | None) -> tuple[Any, ...]:
    """The staged row of ``person`` (the columns of ``STAGED_COLUMNS``, in order)."""
    fields, sources = person.fields, person.sources
    stated = _json({name: {"kind": kind, "at": at.isoformat()} for name, (kind, at) in sources.items()}) \
        if sources else "{}"
    return (person.contact_id, person.email, person.version, fields.get("first_name"), fields.get("last_name"),
            fields.get("company"), fields.get("title"), fields.get("phone"), person.bio,
            _json(person.social_links), stated, _text_array(person.organizers), person.updated_at, due_at,
            traceparent if due_at is not None else None)


# --- the consumer ------------------------------------------------------------------------------------------------


async def known_organizers(conn: AsyncConnection, contact_ids: Iterable[str]) -> dict[str, list[str]]:
    """The organizers of those of ``contact_ids`` enrichment knows: enough to tell which events change nothing
    (``domain.inert``) without reading whole rows. The consumer's batches of a contact never run concurrently (its
    partition's position row is locked by the batch), so no row lock is taken here or in ``load_people``."""
    ids = sorted(set(contact_ids))
    if not ids:
        return {}
    rows = await fetch_tuples(conn, "SELECT contact_id, organizers FROM contacts WHERE contact_id = ANY(%s::text[])",
                              (_array(ids),))
    return dict(rows)


async def load_people(conn: AsyncConnection, contact_ids: Iterable[str]) -> dict[str, Person]:
    """The kept state of ``contact_ids`` (those enrichment knows)."""
    ids = sorted(set(contact_ids))
    if not ids:
        return {}
    rows = await fetch_tuples(conn, f"SELECT {_PERSON_SELECT} FROM contacts WHERE contact_id = ANY(%s::text[])",
                              (_array(ids),))
    return {row[0]: _person(row) for row in rows}


async def save_people(conn: AsyncConnection, people: Sequence[Person], *, due: set[str], now: datetime,
                      traceparents: Mapping[str, str] | None = None) -> None:
    """COPY the changed people into a stage, then one upsert; a row never moves back to an older version. Those in
    ``due`` are due for all providers now, under the trace of their event in ``traceparents`` (contact id ->
    traceparent); the others keep whatever was due."""
    if not people:
        return
    traces = traceparents or {}
    await stage(conn, name="contacts_stage", like="contacts", columns=STAGED_COLUMNS,
                rows=(_row(person, now if person.contact_id in due else None, traces.get(person.contact_id))
                      for person in people))
    updates = ", ".join(f"{column} = excluded.{column}" for column in PERSON_COLUMNS[1:])
    await conn.execute(text(
        f"INSERT INTO contacts ({', '.join(STAGED_COLUMNS)}) SELECT {', '.join(STAGED_COLUMNS)} FROM contacts_stage "
        'ORDER BY contact_id COLLATE "C" '  # rows locked in finish_runs' order: no deadlock between the two
        f"ON CONFLICT (contact_id) DO UPDATE SET {updates}, "
        "due_at = coalesce(excluded.due_at, contacts.due_at), "
        "due_sources = CASE WHEN excluded.due_at IS NULL THEN contacts.due_sources END, "
        "due_traceparent = CASE WHEN excluded.due_at IS NULL THEN contacts.due_traceparent "
        "ELSE excluded.due_traceparent END "
        "WHERE contacts.version < excluded.version"
    ))


# --- the worker ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Due:
    person: Person
    due_at: datetime
    sources: frozenset[str] | None
    """The providers to run; None: all."""
    traceparent: str | None = None
    """Of the contact event that made it due."""


async def due_people(conn: AsyncConnection, *, limit: int) -> list[Due]:
    """Up to ``limit`` contacts whose providers should run by now, the longest waiting first."""
    rows = await fetch_tuples(
        conn,
        f"SELECT {_PERSON_SELECT}, due_at, due_sources, due_traceparent FROM contacts WHERE due_at <= now() "
        "ORDER BY due_at LIMIT %s",
        (limit,),
    )
    return [Due(_person(row[:-3]), row[-3], frozenset(row[-2]) if row[-2] is not None else None, row[-1])
            for row in rows]


async def finish_runs(
    conn: AsyncConnection, runs: Sequence[tuple[str, datetime, datetime | None, list[str] | None]]
) -> set[str]:
    """Record provider runs: ``(contact id, the due_at the run started from, the next due_at or None, the
    providers to run then)``. Returns the contacts recorded: a contact that became due again meanwhile (the person
    changed something) keeps its new due_at, and that run's results are not used."""
    if not runs:
        return set()
    await fetch_tuples(  # the rows locked in save_people's order: no deadlock with the consumer
        conn, 'SELECT 1 FROM contacts WHERE contact_id = ANY(%s::text[]) ORDER BY contact_id COLLATE "C" FOR UPDATE',
        (_array(r[0] for r in runs),),
    )
    rows = await fetch_tuples(
        conn,
        "UPDATE contacts c SET due_at = u.next_due, due_sources = string_to_array(u.next_sources, ',') "
        "FROM unnest(%s::text[], %s::timestamptz[], %s::timestamptz[], %s::text[]) AS u(id, was, next_due, "
        "next_sources) WHERE c.contact_id = u.id AND c.due_at = u.was RETURNING c.contact_id",
        (_array(r[0] for r in runs), _array(r[1].isoformat() for r in runs),
         _array(r[2].isoformat() if r[2] else None for r in runs), _array(",".join(r[3]) if r[3] else None
                                                                          for r in runs)),
    )
    return {row[0] for row in rows}


def _suggestion(row: Sequence[Any]) -> Suggestion:
    return Suggestion(*row)


async def suggestions_of(conn: AsyncConnection, contact_ids: Iterable[str], *,
                         lock: bool = False) -> dict[str, list[Suggestion]]:
    """Every suggestion of ``contact_ids`` (pending and decided), oldest first; ``lock`` row-locks them so a
    decision and a provider run on the same contact happen one after the other."""
    ids = sorted(set(contact_ids))
    found: dict[str, list[Suggestion]] = {contact_id: [] for contact_id in ids}
    if not ids:
        return found
    rows = await fetch_tuples(
        conn,
        f"SELECT {', '.join(SUGGESTION_COLUMNS)} FROM suggestions WHERE contact_id = ANY(%s::text[]) "
        "ORDER BY contact_id, created_at, id" + (" FOR UPDATE" if lock else ""),
        (_array(ids),),
    )
    for row in rows:
        found[row[1]].append(_suggestion(row))
    return found


_suggestion_row = attrgetter(*SUGGESTION_COLUMNS)


async def insert_suggestions(conn: AsyncConnection, suggestions: Sequence[Suggestion]) -> None:
    if suggestions:
        await copy_rows(conn, table="suggestions", columns=SUGGESTION_COLUMNS, rows=map(_suggestion_row, suggestions))


async def withdraw(conn: AsyncConnection, ids: Sequence[str], *, at: datetime) -> None:
    if ids:
        await conn.execute(
            text("UPDATE suggestions SET status = 'withdrawn', decided_at = :at WHERE id = ANY(CAST(:ids AS text[])) "
                 "AND status = 'pending'"),
            {"ids": _array(ids), "at": at},
        )


# --- the attendee and organizers ---------------------------------------------------------------------------------


async def person_by_email(conn: AsyncConnection, email: str) -> Person | None:
    rows = await fetch_tuples(
        conn, f"SELECT {_PERSON_SELECT} FROM contacts WHERE email = %s ORDER BY version DESC LIMIT 1", (email,)
    )
    return _person(rows[0]) if rows else None


async def suggestions_with_status(conn: AsyncConnection, contact_id: str,
                                  statuses: Sequence[Status]) -> list[Suggestion]:
    rows = await fetch_tuples(
        conn,
        f"SELECT {', '.join(SUGGESTION_COLUMNS)} FROM suggestions WHERE contact_id = %s AND status = ANY(%s) "
        "ORDER BY created_at, array_position(%s::text[], field), id",
        (contact_id, list(statuses), list(CONTACT_FIELDS)),
    )
    return [_suggestion(row) for row in rows]


async def suggestion_for_update(conn: AsyncConnection, *, contact_id: str, suggestion_id: str) -> Suggestion | None:
    """One suggestion of the contact's, row-locked; ``None`` when it is no suggestion of theirs."""
    rows = await fetch_tuples(
        conn,
        f"SELECT {', '.join(SUGGESTION_COLUMNS)} FROM suggestions WHERE id = %s AND contact_id = %s FOR UPDATE",
        (suggestion_id, contact_id),
    )
    return _suggestion(rows[0]) if rows else None


async def record_decision(conn: AsyncConnection, *, suggestion_id: str, status: Status, value: str | None,
                          at: datetime) -> None:
    await conn.execute(
        text("UPDATE suggestions SET status = :status, value = :value, decided_at = :at WHERE id = :id"),
        {"status": status, "value": value, "at": at, "id": suggestion_id},
    )


async def review_counts(conn: AsyncConnection, *, contact_id: str, organizer_id: str) -> tuple[int, int] | None:
    """(pending, reviewed) suggestions of a contact ``organizer_id`` has a relationship with; ``None`` when it has
    none (or the contact is unknown: the caller cannot tell the two apart)."""
    rows = await fetch_tuples(
        conn,
        "SELECT count(s.id) FILTER (WHERE s.status = 'pending'), "
        "count(s.id) FILTER (WHERE s.status IN ('accepted', 'customized', 'rejected')) "
        "FROM contacts c LEFT JOIN suggestions s ON s.contact_id = c.contact_id "
        "WHERE c.contact_id = %s AND %s = ANY(c.organizers) GROUP BY c.contact_id",
        (contact_id, organizer_id),
    )
    return (int(rows[0][0]), int(rows[0][1])) if rows else None
