"""profiles' reads for the contacts API. Every query reads the caller's own ``organizer_contacts`` rows and
nothing else (they hold its materialized view of each contact), so a contact without a relationship, another
organizer's values and private columns, and anything of the canonical profile the person did not state can
never be in a result."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import Row, text
from sqlalchemy.ext.asyncio import AsyncConnection

from services.profiles.segment_filter import Condition
from shared.events import EmailPermission

Sort = Literal["id", "engagement"]

_COLUMNS = (
    "o.contact_id, o.email, o.email_original, o.first_name, o.last_name, o.company, o.title, o.phone, "
    "o.display_name, o.bio, o.social_links, o.user_account_id, o.view_version, o.created_at, o.updated_at, "
    "o.email_permission, o.permission_source, o.permission_changed_at, o.permission_changed_by, "
    "o.tags, o.preferences, o.notes, o.first_seen_at, o.last_seen_at, o.relationship_version, "
    "o.events_attended, o.registrations, o.tickets_purchased, o.orders, o.last_active_at, o.attended_events, "
    "o.registered_events, o.import_ids"
)
_FROM = " FROM organizer_contacts o WHERE o.organizer_id = :organizer_id AND o.email IS NOT NULL"
_NO_ACTIVITY = "'-infinity'::timestamptz"
_ENGAGEMENT = (
    "o.events_attended", "o.tickets_purchased", f"coalesce(o.last_active_at, {_NO_ACTIVITY})", "o.contact_id"
)


@dataclass(frozen=True)
class Filters:
    """What ``find_contacts`` narrows to; every filter is over the caller's own data only."""

    email: str | None = None
    prefix: str | None = None
    tags: Sequence[str] = ()
    permission: EmailPermission | None = None
    company: str | None = None
    last_active_after: datetime | None = None
    last_active_before: datetime | None = None
    min_events_attended: int | None = None
    active_only: bool = False
    segment: Condition | None = None
    """A segment's compiled filter (``segment_filter.compile_filter``)."""


@dataclass(frozen=True)
class Position:
    """Where a page ends, as a keyset: ``contact_id`` for ``id`` order; for ``engagement`` also events
    attended, tickets purchased and last active (None: never active)."""

    sort: Sort
    contact_id: str
    events_attended: int = 0
    tickets_purchased: int = 0
    last_active_at: datetime | None = None


def position_of(row: Any, sort: Sort) -> Position:
    return Position(
        sort=sort,
        contact_id=row.contact_id,
        events_attended=row.events_attended,
        tickets_purchased=row.tickets_purchased,
        last_active_at=row.last_active_at,
    )


def _like_prefix(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"{escaped}%"


def _where(filters: Filters, params: dict[str, Any]) -> str:
    sql = ""
    if filters.email is not None:
        sql += " AND o.email = :email"
        params["email"] = filters.email
    if filters.prefix is not None:
        sql += (
            " AND (o.email LIKE :prefix OR lower(o.display_name) LIKE :prefix"
            " OR lower(o.first_name) LIKE :prefix OR lower(o.last_name) LIKE :prefix)"
        )
        params["prefix"] = _like_prefix(filters.prefix.lower())
    if filters.tags:
        sql += " AND o.tags @> CAST(:tags AS text[])"
        params["tags"] = list(filters.tags)
    if filters.permission is not None:
        sql += " AND o.email_permission = :permission"
        params["permission"] = filters.permission
    if filters.company is not None:
        sql += " AND lower(o.company) = lower(:company)"
        params["company"] = filters.company
    if filters.last_active_after is not None:
        sql += " AND o.last_active_at >= :last_active_after"
        params["last_active_after"] = filters.last_active_after
    if filters.last_active_before is not None:
        sql += " AND o.last_active_at < :last_active_before"
        params["last_active_before"] = filters.last_active_before
    if filters.min_events_attended is not None:
        sql += " AND o.events_attended >= :min_events_attended"
        params["min_events_attended"] = filters.min_events_attended
    if filters.active_only:
        sql += " AND o.last_active_at IS NOT NULL"
    if filters.segment is not None:
        sql += f" AND {filters.segment.sql}"
        params.update(filters.segment.params)
    return sql


async def find_contacts(
    conn: AsyncConnection,
    *,
    organizer_id: str,
    filters: Filters = Filters(),
    sort: Sort = "id",
    after: Position | None = None,
    limit: int,
    columns: str = _COLUMNS,
) -> Sequence[Row[Any]]:
    """The organizer's contacts matching ``filters``, after ``after`` (``columns`` of ``organizer_contacts o``,
    the API's by default). ``id`` order: contact id ascending.
    ``engagement`` order: events attended, then tickets purchased, then last active, then contact id, all
    descending (one row comparison, so every page boundary is exact and the engagement index applies)."""
    params: dict[str, Any] = {"organizer_id": organizer_id, "limit": limit}
    sql = f"SELECT {columns}{_FROM}{_where(filters, params)}"
    if sort == "id":
        if after is not None:
            sql += " AND o.contact_id > :after_id"
            params["after_id"] = after.contact_id
        sql += " ORDER BY o.contact_id"
    else:
        keys = ", ".join(_ENGAGEMENT)
        if after is not None:
            bound = f"coalesce(CAST(:after_active AS timestamptz), {_NO_ACTIVITY})"
            sql += f" AND ({keys}) < (:after_events, :after_tickets, {bound}, :after_id)"
            params.update(
                after_events=after.events_attended,
                after_tickets=after.tickets_purchased,
                after_active=after.last_active_at,
                after_id=after.contact_id,
            )
        sql += " ORDER BY " + ", ".join(f"{key} DESC" for key in _ENGAGEMENT)
    sql += " LIMIT :limit"
    return (await conn.execute(text(sql), params)).all()


async def count_contacts(conn: AsyncConnection, *, organizer_id: str, filters: Filters) -> int:
    """How many of the organizer's contacts match ``filters``."""
    params: dict[str, Any] = {"organizer_id": organizer_id}
    sql = f"SELECT count(*){_FROM}{_where(filters, params)}"
    return int((await conn.execute(text(sql), params)).scalar_one())


async def get_contact(conn: AsyncConnection, *, organizer_id: str, contact_id: str) -> Row[Any] | None:
    """One contact as the organizer sees it, with the sources of the values shown; None without a
    relationship (whether or not the contact exists)."""
    result = await conn.execute(
        text(f"SELECT {_COLUMNS}, o.field_sources{_FROM} AND o.contact_id = :contact_id"),
        {"organizer_id": organizer_id, "contact_id": contact_id},
    )
    return result.first()


async def find_changes(
    conn: AsyncConnection, *, organizer_id: str, contact_id: str, before: int | None, limit: int
) -> Sequence[Row[Any]]:
    """The organizer's own changes to its relationship with the contact, newest first, before the change log
    position ``before``."""
    sql = (
        "SELECT sequence, change_id, changed_by, changed_at, changes FROM organizer_contact_changes "
        "WHERE organizer_id = :organizer_id AND contact_id = :contact_id"
    )
    params: dict[str, Any] = {"organizer_id": organizer_id, "contact_id": contact_id, "limit": limit}
    if before is not None:
        sql += " AND sequence < :before"
        params["before"] = before
    return (await conn.execute(text(sql + " ORDER BY sequence DESC LIMIT :limit"), params)).all()
