"""profiles' writes, in the caller's transaction: lock the profiles a batch touches (creating blank rows for
new contacts, so concurrent batches serialize on the same rows), then upsert profiles, organizer contacts
(sightings, import permission, insights) and interactions, each with one COPY into a staging table and one
statement. The reads are in ``queries.py``."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from services.profiles.domain import FieldSource, PermissionChange, Profile, Sighting, StoredPermission
from services.profiles.insights import Insights, RecordedInteraction
from services.profiles.permission import Statement
from shared.db import copy_rows
from shared.events import CONTACT_FIELDS

PROFILE_COLUMNS = [
    "contact_id", "email", "email_original", *CONTACT_FIELDS, "display_name", "display_name_version",
    "contact_version", "profile_version", "created_at", "updated_at", "bio", "social_links", "user_account_id",
    "field_sources",
]
SIGHTING_COLUMNS = ["organizer_id", "contact_id", "first_seen_at", "last_seen_at"]
PERMISSION_COLUMNS = [
    "organizer_id", "contact_id", "import_permission", "import_permission_at", "import_permission_by",
    "email_permission", "permission_source", "permission_changed_at", "permission_changed_by",
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
    """How a field source is stored: complete, with the organizer and the import or interaction id."""
    reference = "import_id" if source.kind == "import" else "interaction_id"
    stored = {"kind": source.kind, "organizer_id": source.organizer_id, "at": source.at.isoformat()}
    return stored | ({reference: source.reference} if source.reference is not None else {})


def _source_from_json(stored: dict[str, Any]) -> FieldSource:
    return FieldSource(
        kind=stored["kind"],
        organizer_id=stored["organizer_id"],
        reference=stored.get("import_id") or stored.get("interaction_id"),
        at=datetime.fromisoformat(stored["at"]),
    )


def _profile_from_row(row: Any) -> Profile:
    return Profile(
        contact_id=row.contact_id,
        contact_version=row.contact_version,
        email=row.email,
        email_original=row.email_original,
        fields={name: getattr(row, name) for name in CONTACT_FIELDS if getattr(row, name) is not None},
        display_name=row.display_name,
        display_name_version=row.display_name_version,
        created_at=row.created_at,
        updated_at=row.updated_at,
        bio=row.bio,
        social_links=dict(row.social_links),
        user_account_id=row.user_account_id,
        sources={name: _source_from_json(stored) for name, stored in row.field_sources.items()},
    )


def _profile_row(profile: Profile) -> tuple[Any, ...]:
    return (
        profile.contact_id, profile.email, profile.email_original,
        *(profile.fields.get(name) for name in CONTACT_FIELDS),
        profile.display_name, profile.display_name_version, profile.contact_version, profile.profile_version,
        profile.created_at, profile.updated_at, profile.bio, json.dumps(profile.social_links), profile.user_account_id,
        json.dumps({name: source_json(source) for name, source in profile.sources.items()}),
    )


async def lock_profiles(conn: AsyncConnection, contact_ids: Sequence[str]) -> dict[str, Profile]:
    """The profiles of ``contact_ids``, row-locked; unknown contacts get a blank row first, so a concurrent
    batch about the same new contact waits for this transaction instead of racing it. Ids are sorted the
    same way in both statements (byte order, ``COLLATE "C"``) so two batches cannot deadlock."""
    if not contact_ids:
        return {}
    ids = sorted(set(contact_ids))
    await conn.execute(
        text(
            "INSERT INTO contact_profiles (contact_id) "
            "SELECT unnest(CAST(:ids AS text[])) ON CONFLICT DO NOTHING"
        ),
        {"ids": ids},
    )
    result = await conn.execute(
        text(
            "SELECT * FROM contact_profiles WHERE contact_id = ANY(:ids) "
            'ORDER BY contact_id COLLATE "C" FOR UPDATE'
        ),
        {"ids": ids},
    )
    return {row.contact_id: _profile_from_row(row) for row in result}


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


async def save_profiles(conn: AsyncConnection, profiles: Sequence[Profile]) -> None:
    if not profiles:
        return
    await _stage(conn, name="profiles_stage", like="contact_profiles", columns=PROFILE_COLUMNS,
                 rows=map(_profile_row, profiles))
    columns = ", ".join(PROFILE_COLUMNS)
    updates = ", ".join(f"{column} = excluded.{column}" for column in PROFILE_COLUMNS[1:])
    await conn.execute(
        text(
            f"INSERT INTO contact_profiles ({columns}) SELECT {columns} FROM profiles_stage "
            f"ON CONFLICT (contact_id) DO UPDATE SET {updates}"
        )
    )


async def record_sightings(conn: AsyncConnection, sightings: Sequence[Sighting]) -> dict[Pair, StoredPermission]:
    """Create or widen each organizer's relationship (rows locked in key order, so batches cannot deadlock),
    and return the stored permission statements of those whose sighting states an import permission."""
    if not sightings:
        return {}
    await _stage(
        conn, name="sightings_stage", like="organizer_contacts", columns=SIGHTING_COLUMNS,
        rows=((s.organizer_id, s.contact_id, s.first_seen_at, s.last_seen_at) for s in sightings),
    )
    columns = ", ".join(SIGHTING_COLUMNS)
    await conn.execute(
        text(
            f"INSERT INTO organizer_contacts ({columns}) SELECT {columns} "
            'FROM sightings_stage ORDER BY organizer_id COLLATE "C", contact_id COLLATE "C" '
            "ON CONFLICT (organizer_id, contact_id) DO UPDATE SET "
            "first_seen_at = least(organizer_contacts.first_seen_at, excluded.first_seen_at), "
            "last_seen_at = greatest(organizer_contacts.last_seen_at, excluded.last_seen_at)"
        )
    )
    stating = [s for s in sightings if s.import_permission is not None]
    if not stating:
        return {}
    result = await conn.execute(
        text(
            "SELECT o.organizer_id, o.contact_id, import_permission, import_permission_at, import_permission_by, "
            "explicit_permission, explicit_permission_at, explicit_permission_by "
            "FROM organizer_contacts o JOIN unnest(CAST(:organizers AS text[]), CAST(:contacts AS text[])) "
            "AS p(organizer_id, contact_id) USING (organizer_id, contact_id)"
        ),
        {"organizers": [s.organizer_id for s in stating], "contacts": [s.contact_id for s in stating]},
    )
    return {
        (row.organizer_id, row.contact_id): StoredPermission(
            imported=_statement(row.import_permission, row.import_permission_at, row.import_permission_by),
            explicit=_statement(row.explicit_permission, row.explicit_permission_at, row.explicit_permission_by),
        )
        for row in result
    }


def _statement(status: Any, at: datetime | None, by: str | None) -> Statement | None:
    return None if status is None or at is None else Statement(status=status, at=at, by=by or "")


async def save_permissions(conn: AsyncConnection, changes: Sequence[PermissionChange]) -> None:
    if not changes:
        return
    await _stage(
        conn, name="permissions_stage", like="organizer_contacts", columns=PERMISSION_COLUMNS,
        rows=(
            (c.organizer_id, c.contact_id, c.imported.status, c.imported.at, c.imported.by, c.permission.status,
             c.permission.source, c.permission.changed_at, c.permission.changed_by)
            for c in changes
        ),
    )
    updates = ", ".join(f"{column} = s.{column}" for column in PERMISSION_COLUMNS[2:])
    await conn.execute(
        text(
            f"UPDATE organizer_contacts o SET {updates} FROM permissions_stage s "
            "WHERE o.organizer_id = s.organizer_id AND o.contact_id = s.contact_id"
        )
    )


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
