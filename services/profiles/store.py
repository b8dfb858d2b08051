"""profiles' reads and writes. Writes: lock the profiles a batch touches (creating blank rows for new
contacts, so the two subscribers serialize on the same rows), then upsert profiles and sightings in the
caller's transaction. The reads are in ``queries.py``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from services.profiles.domain import Profile, Sighting
from shared.db import copy_rows
from shared.events import CONTACT_FIELDS

PROFILE_COLUMNS = [
    "contact_id", "email", "email_original", *CONTACT_FIELDS, "display_name", "display_name_version",
    "contact_version", "profile_version", "created_at", "updated_at",
]
SIGHTING_COLUMNS = ["organizer_id", "contact_id", "email_permission", "first_seen_at", "last_seen_at"]


def _profile_from_row(row: Any) -> Profile:
    return Profile(
        contact_id=row.contact_id,
        contact_version=row.contact_version,
        profile_version=row.profile_version,
        email=row.email,
        email_original=row.email_original,
        fields={name: getattr(row, name) for name in CONTACT_FIELDS if getattr(row, name) is not None},
        display_name=row.display_name,
        display_name_version=row.display_name_version,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _profile_row(profile: Profile) -> tuple[Any, ...]:
    return (
        profile.contact_id, profile.email, profile.email_original,
        *(profile.fields.get(name) for name in CONTACT_FIELDS),
        profile.display_name, profile.display_name_version, profile.contact_version, profile.profile_version,
        profile.created_at, profile.updated_at,
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


async def save_profiles(conn: AsyncConnection, profiles: Sequence[Profile]) -> None:
    if not profiles:
        return
    await conn.execute(
        text("CREATE TEMP TABLE IF NOT EXISTS profiles_stage (LIKE contact_profiles) ON COMMIT DELETE ROWS")
    )
    await copy_rows(conn, table="profiles_stage", columns=PROFILE_COLUMNS, rows=map(_profile_row, profiles))
    columns = ", ".join(PROFILE_COLUMNS)
    updates = ", ".join(f"{column} = excluded.{column}" for column in PROFILE_COLUMNS[1:])
    await conn.execute(
        text(
            f"INSERT INTO contact_profiles ({columns}) SELECT {columns} FROM profiles_stage "
            f"ON CONFLICT (contact_id) DO UPDATE SET {updates}"
        )
    )


async def record_sightings(conn: AsyncConnection, sightings: Sequence[Sighting]) -> None:
    """Create or widen each organizer's relationship; an email permission replaces the stored one only when
    an event stated one."""
    if not sightings:
        return
    await conn.execute(
        text(
            "CREATE TEMP TABLE IF NOT EXISTS sightings_stage (organizer_id text, contact_id text, "
            "email_permission text, first_seen_at timestamptz, last_seen_at timestamptz) "
            "ON COMMIT DELETE ROWS"
        )
    )
    await copy_rows(
        conn,
        table="sightings_stage",
        columns=SIGHTING_COLUMNS,
        rows=((s.organizer_id, s.contact_id, s.email_permission, s.first_seen_at, s.last_seen_at)
              for s in sightings),
    )
    await conn.execute(
        text(
            f"INSERT INTO organizer_contacts ({', '.join(SIGHTING_COLUMNS)}) "
            "SELECT organizer_id, contact_id, coalesce(email_permission, 'unknown'), "
            "first_seen_at, last_seen_at "
            "FROM sightings_stage ORDER BY organizer_id, contact_id "
            "ON CONFLICT (organizer_id, contact_id) DO UPDATE SET "
            "first_seen_at = least(organizer_contacts.first_seen_at, excluded.first_seen_at), "
            "last_seen_at = greatest(organizer_contacts.last_seen_at, excluded.last_seen_at)"
        )
    )
    await conn.execute(
        text(
            "UPDATE organizer_contacts o SET email_permission = s.email_permission FROM sightings_stage s "
            "WHERE o.organizer_id = s.organizer_id AND o.contact_id = s.contact_id "
            "AND s.email_permission IS NOT NULL AND o.email_permission <> s.email_permission"
        )
    )
