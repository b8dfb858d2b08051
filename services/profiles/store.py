"""profiles' writes, in the caller's transaction: lock the contacts a batch touches with every organizer's row
of them (creating blank canonical rows for new contacts, so concurrent batches serialize on the same rows),
then upsert canonical profiles, organizers' views and relationships, and interactions, each with one COPY into a
staging table and one statement. The reads are in ``queries.py``."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from services.profiles.domain import SOCIAL, Canonical, ContactState, FieldSource, Layer, Shown, View
from services.profiles.insights import Insights, RecordedInteraction
from services.profiles.permission import Statement, effective
from shared.db import copy_rows
from shared.events import CONTACT_FIELDS

VALUE_COLUMNS = [*CONTACT_FIELDS, "display_name", "bio", "social_links", "user_account_id", "field_sources"]
"""What a canonical profile and a view both show, beside the email."""
CANONICAL_COLUMNS = [
    "contact_id", "email", "email_original", *VALUE_COLUMNS, "contact_version", "profile_version", "created_at",
    "updated_at",
]
VIEW_COLUMNS = [
    "organizer_id", "contact_id", "email", "email_original", *VALUE_COLUMNS, "view_version", "created_at",
    "updated_at", "imported", "first_seen_at", "last_seen_at", "import_permission", "import_permission_at",
    "import_permission_by", "email_permission", "permission_source", "permission_changed_at",
    "permission_changed_by",
]
INTERACTION_COLUMNS = [
    "organizer_id", "contact_id", "interaction_id", "kind", "kagibag_event_id", "order_id", "ticket_count",
    "occurred_at",
]
INSIGHT_COLUMNS = [
    "organizer_id", "contact_id", "events_attended", "registrations", "tickets_purchased", "orders",
    "last_active_at",
]
Pair = tuple[str, str]


def source_json(source: FieldSource) -> dict[str, str]:
    """How a field source is stored: kind and time, and the organizer and import or interaction id when known
    (an organizer's own import; the person's statements in the canonical profile)."""
    stored = {"kind": source.kind, "at": source.at.isoformat()}
    if source.organizer_id is not None:
        stored["organizer_id"] = source.organizer_id
    if source.reference is not None:
        stored["import_id" if source.kind == "import" else "interaction_id"] = source.reference
    return stored


def _source(stored: Mapping[str, Any]) -> FieldSource:
    return FieldSource(
        kind=stored["kind"],
        at=datetime.fromisoformat(stored["at"]),
        organizer_id=stored.get("organizer_id"),
        reference=stored.get("import_id") or stored.get("interaction_id"),
    )


def _sources_json(sources: Mapping[str, FieldSource]) -> str:
    return json.dumps({name: source_json(source) for name, source in sources.items()})


def layer_json(layer: Layer) -> str:
    stored: dict[str, Any] = {"values": dict(layer.values), "sources": {
        name: source_json(source) for name, source in layer.sources.items()}}
    if layer.email_original is not None:
        stored["email_original"] = layer.email_original
    return json.dumps(stored)


def _layer(stored: Mapping[str, Any]) -> Layer:
    return Layer(
        values=dict(stored.get("values") or {}),
        sources={name: _source(source) for name, source in (stored.get("sources") or {}).items()},
        email_original=stored.get("email_original"),
    )


def _canonical(row: Any) -> Canonical:
    values = {name: getattr(row, name) for name in (*CONTACT_FIELDS, "bio", "user_account_id")}
    values.update({SOCIAL + network: value for network, value in row.social_links.items()})
    return Canonical(
        contact_id=row.contact_id,
        version=row.contact_version,
        email=row.email,
        created_at=row.created_at,
        updated_at=row.updated_at,
        stated=Layer(
            values={name: value for name, value in values.items() if value is not None},
            sources={name: _source(source) for name, source in row.field_sources.items()},
            email_original=row.email_original,
        ),
        profile_version=row.profile_version,
    )


def _statement(status: Any, at: datetime | None, by: str | None) -> Statement | None:
    return None if status is None or at is None else Statement(status=status, at=at, by=by or "")


def _view(row: Any) -> View:
    return View(
        organizer_id=row.organizer_id,
        contact_id=row.contact_id,
        imported=_layer(row.imported),
        version=row.view_version,
        created_at=row.created_at or row.first_seen_at,
        updated_at=row.updated_at or row.first_seen_at,
        first_seen_at=row.first_seen_at,
        last_seen_at=row.last_seen_at,
        import_permission=_statement(row.import_permission, row.import_permission_at, row.import_permission_by),
    )


@dataclass(frozen=True)
class Locked:
    """The contacts of a batch, row-locked: each one's state, and the explicit permission statements of
    their organizers (set through the API; what applies is recomputed from it and the imports')."""

    states: dict[str, ContactState]
    explicit: dict[Pair, Statement | None]


async def lock_contacts(conn: AsyncConnection, contact_ids: Sequence[str]) -> Locked:
    """The canonical profiles of ``contact_ids`` and every organizer's row of them, row-locked; unknown
    contacts get a blank canonical row first, so a concurrent batch about the same new contact waits for this
    transaction instead of racing it. Ids are sorted the same way in every statement (byte order,
    ``COLLATE "C"``) so two batches cannot deadlock; an API change locks one organizer row only."""
    if not contact_ids:
        return Locked({}, {})
    ids = sorted(set(contact_ids))
    await conn.execute(
        text("INSERT INTO contact_profiles (contact_id) SELECT unnest(CAST(:ids AS text[])) ON CONFLICT DO NOTHING"),
        {"ids": ids},
    )
    canonical = await conn.execute(
        text('SELECT * FROM contact_profiles WHERE contact_id = ANY(:ids) ORDER BY contact_id COLLATE "C" FOR UPDATE'),
        {"ids": ids},
    )
    states = {row.contact_id: ContactState(_canonical(row)) for row in canonical}
    organizers = await conn.execute(
        text(
            "SELECT organizer_id, contact_id, imported, view_version, created_at, updated_at, first_seen_at, "
            "last_seen_at, import_permission, import_permission_at, import_permission_by, explicit_permission, "
            "explicit_permission_at, explicit_permission_by FROM organizer_contacts WHERE contact_id = ANY(:ids) "
            'ORDER BY contact_id COLLATE "C", organizer_id COLLATE "C" FOR UPDATE'
        ),
        {"ids": ids},
    )
    views: dict[str, dict[str, View]] = {}
    explicit: dict[Pair, Statement | None] = {}
    for row in organizers:
        views.setdefault(row.contact_id, {})[row.organizer_id] = _view(row)
        explicit[(row.organizer_id, row.contact_id)] = _statement(
            row.explicit_permission, row.explicit_permission_at, row.explicit_permission_by
        )
    return Locked(
        {contact_id: ContactState(state.canonical, views.get(contact_id, {})) for contact_id, state in states.items()},
        explicit,
    )


async def _stage(conn: AsyncConnection, *, name: str, like: str, columns: Sequence[str],
                 rows: Iterable[Sequence[Any]]) -> None:
    """COPY ``rows`` into a transaction-scoped staging table with ``columns`` typed as in the table ``like``
    (without its constraints: a stage holds only some of the columns)."""
    await conn.execute(
        text(
            f"CREATE TEMP TABLE IF NOT EXISTS {name} ON COMMIT DELETE ROWS AS "
            f"SELECT {', '.join(columns)} FROM {like} WITH NO DATA"
        )
    )
    await copy_rows(conn, table=name, columns=columns, rows=rows)


async def _upsert(conn: AsyncConnection, *, table: str, stage: str, columns: Sequence[str], keys: int,
                  rows: Iterable[Sequence[Any]]) -> None:
    """Insert or update ``rows`` of ``table`` (its first ``keys`` columns are the key), in key order."""
    await _stage(conn, name=stage, like=table, columns=columns, rows=rows)
    key = ", ".join(f'{column} COLLATE "C"' for column in columns[:keys])
    updates = ", ".join(f"{column} = excluded.{column}" for column in columns[keys:])
    await conn.execute(
        text(
            f"INSERT INTO {table} ({', '.join(columns)}) SELECT {', '.join(columns)} FROM {stage} ORDER BY {key} "
            f"ON CONFLICT ({', '.join(columns[:keys])}) DO UPDATE SET {updates}"
        )
    )


def _shown_values(shown: Shown) -> tuple[Any, ...]:
    return (
        *(shown.value(name) for name in CONTACT_FIELDS), shown.display_name, shown.value("bio"),
        json.dumps(shown.social_links), shown.value("user_account_id"), _sources_json(shown.sources),
    )


def _canonical_row(canonical: Canonical) -> tuple[Any, ...]:
    stated = canonical.stated
    shown = canonical.shown()
    return (
        canonical.contact_id, canonical.email, stated.email_original, *_shown_values(shown)[:-1],
        _sources_json(stated.sources), canonical.version, canonical.profile_version, canonical.created_at,
        canonical.updated_at,
    )


async def save_canonicals(conn: AsyncConnection, canonicals: Sequence[Canonical]) -> None:
    if canonicals:
        await _upsert(conn, table="contact_profiles", stage="canonical_stage", columns=CANONICAL_COLUMNS, keys=1,
                      rows=map(_canonical_row, canonicals))


def _view_row(view: View, shown: Shown, explicit: Statement | None) -> tuple[Any, ...]:
    imported, permission = view.import_permission, effective(view.import_permission, explicit)
    return (
        view.organizer_id, view.contact_id, shown.email, shown.email_original, *_shown_values(shown),
        view.version, view.created_at, view.updated_at, layer_json(view.imported), view.first_seen_at,
        view.last_seen_at, imported.status if imported else None, imported.at if imported else None,
        imported.by if imported else None, permission.status, permission.source, permission.changed_at,
        permission.changed_by,
    )


async def save_views(
    conn: AsyncConnection, views: Sequence[tuple[View, Shown]], explicit: Mapping[Pair, Statement | None]
) -> None:
    """Write each organizer's view, layer, sightings and the email permission that now applies (from its
    imports' statement and its explicit one, which only the API changes)."""
    if views:
        rows = (_view_row(view, shown, explicit.get((view.organizer_id, view.contact_id))) for view, shown in views)
        await _upsert(conn, table="organizer_contacts", stage="views_stage", columns=VIEW_COLUMNS, keys=2, rows=rows)


async def record_interactions(
    conn: AsyncConnection, interactions: Sequence[RecordedInteraction]
) -> dict[Pair, list[RecordedInteraction]]:
    """Store each interaction once (by its id), and return every interaction stored for the (organizer,
    contact) pairs ``interactions`` concern: what their insights are computed from."""
    if not interactions:
        return {}
    await _stage(
        conn, name="interactions_stage", like="organizer_interactions", columns=INTERACTION_COLUMNS,
        rows=(
            (i.organizer_id, i.contact_id, i.interaction_id, i.kind, i.kagibag_event_id, i.order_id,
             i.ticket_count, i.occurred_at)
            for i in interactions
        ),
    )
    columns = ", ".join(INTERACTION_COLUMNS)
    await conn.execute(
        text(f"INSERT INTO organizer_interactions ({columns}) SELECT {columns} FROM interactions_stage "
             "ON CONFLICT DO NOTHING")
    )
    pairs = sorted({(i.organizer_id, i.contact_id) for i in interactions})
    result = await conn.execute(
        text(
            f"SELECT {', '.join(f'i.{column}' for column in INTERACTION_COLUMNS)} FROM organizer_interactions i "
            "JOIN unnest(CAST(:organizers AS text[]), CAST(:contacts AS text[])) AS p(organizer_id, contact_id) "
            "USING (organizer_id, contact_id)"
        ),
        {"organizers": [o for o, _ in pairs], "contacts": [c for _, c in pairs]},
    )
    stored: dict[Pair, list[RecordedInteraction]] = {pair: [] for pair in pairs}
    for row in result:
        stored[(row.organizer_id, row.contact_id)].append(RecordedInteraction(*row))
    return stored


async def save_insights(conn: AsyncConnection, insights: dict[Pair, Insights]) -> None:
    if not insights:
        return
    await _stage(
        conn, name="insights_stage", like="organizer_contacts", columns=INSIGHT_COLUMNS,
        rows=(
            (organizer, contact, i.events_attended, i.registrations, i.tickets_purchased, i.orders,
             i.last_active_at)
            for (organizer, contact), i in insights.items()
        ),
    )
    updates = ", ".join(f"{column} = s.{column}" for column in INSIGHT_COLUMNS[2:])
    await conn.execute(
        text(
            f"UPDATE organizer_contacts o SET {updates} FROM insights_stage s "
            "WHERE o.organizer_id = s.organizer_id AND o.contact_id = s.contact_id"
        )
    )
