"""profiles' reads for the contacts API: only the contacts an organizer has a relationship with."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Row, text
from sqlalchemy.ext.asyncio import AsyncConnection

_VIEW = (
    "SELECT p.contact_id, p.email, p.email_original, p.first_name, p.last_name, p.company, p.title, p.phone, "
    "p.display_name, p.profile_version, p.created_at, p.updated_at, o.email_permission "
    "FROM organizer_contacts o JOIN contact_profiles p ON p.contact_id = o.contact_id "
    "WHERE o.organizer_id = :organizer_id AND p.created_at IS NOT NULL"
)


def _like_prefix(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"{escaped}%"


async def find_contacts(
    conn: AsyncConnection,
    *,
    organizer_id: str,
    email: str | None = None,
    prefix: str | None = None,
    after: str | None = None,
    limit: int,
) -> Sequence[Row[Any]]:
    """The organizer's contacts in contact id order, after ``after``: all of them, those with a normalized
    ``email``, or those whose email, display name, first or last name starts with ``prefix``
    (case-insensitive)."""
    sql = _VIEW
    params: dict[str, Any] = {"organizer_id": organizer_id, "limit": limit}
    if email is not None:
        sql += " AND p.email = :email"
        params["email"] = email
    if prefix is not None:
        sql += (
            " AND (p.email LIKE :prefix OR lower(p.display_name) LIKE :prefix"
            " OR lower(p.first_name) LIKE :prefix OR lower(p.last_name) LIKE :prefix)"
        )
        params["prefix"] = _like_prefix(prefix.lower())
    if after is not None:
        sql += " AND o.contact_id > :after"
        params["after"] = after
    sql += " ORDER BY o.contact_id LIMIT :limit"
    return (await conn.execute(text(sql), params)).all()


async def get_contact(conn: AsyncConnection, *, organizer_id: str, contact_id: str) -> Row[Any] | None:
    result = await conn.execute(
        text(_VIEW + " AND o.contact_id = :contact_id"),
        {"organizer_id": organizer_id, "contact_id": contact_id},
    )
    return result.first()
