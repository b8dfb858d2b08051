"""An organizer's saved segments (``segments``): a name and a filter in its normalized JSON. Every statement is
scoped to the organizer, so another organizer's segment is "not found" like one that does not exist."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Row, text
from sqlalchemy.ext.asyncio import AsyncConnection

_COLUMNS = "segment_id, name, filter, created_at, updated_at"


async def create(conn: AsyncConnection, *, organizer_id: str, name: str, filter: dict[str, Any]) -> Row[Any]:
    now = datetime.now(UTC)
    result = await conn.execute(
        text(f"INSERT INTO segments (organizer_id, segment_id, name, filter, created_at, updated_at) "
             f"VALUES (:organizer_id, :segment_id, :name, CAST(:filter AS jsonb), :now, :now) RETURNING {_COLUMNS}"),
        {"organizer_id": organizer_id, "segment_id": str(uuid.uuid4()), "name": name, "filter": json.dumps(filter),
         "now": now},
    )
    return result.one()


async def get(conn: AsyncConnection, *, organizer_id: str, segment_id: str) -> Row[Any] | None:
    result = await conn.execute(
        text(f"SELECT {_COLUMNS} FROM segments WHERE organizer_id = :organizer_id AND segment_id = :segment_id"),
        {"organizer_id": organizer_id, "segment_id": segment_id},
    )
    return result.first()


async def find(
    conn: AsyncConnection, *, organizer_id: str, after: tuple[datetime, str] | None, limit: int
) -> Sequence[Row[Any]]:
    """The organizer's segments, oldest first, after the keyset ``after`` (created_at, id)."""
    sql = f"SELECT {_COLUMNS} FROM segments WHERE organizer_id = :organizer_id"
    params: dict[str, Any] = {"organizer_id": organizer_id, "limit": limit}
    if after is not None:
        sql += " AND (created_at, segment_id) > (:after_at, :after_id)"
        params.update(after_at=after[0], after_id=after[1])
    return (await conn.execute(text(sql + " ORDER BY created_at, segment_id LIMIT :limit"), params)).all()


async def update(
    conn: AsyncConnection, *, organizer_id: str, segment_id: str, name: str | None, filter: dict[str, Any] | None
) -> Row[Any] | None:
    """Change the name, the filter or both; None when the organizer has no such segment."""
    result = await conn.execute(
        text(f"UPDATE segments SET name = coalesce(:name, name), "
             f"filter = coalesce(CAST(:filter AS jsonb), filter), updated_at = :now "
             f"WHERE organizer_id = :organizer_id AND segment_id = :segment_id RETURNING {_COLUMNS}"),
        {"organizer_id": organizer_id, "segment_id": segment_id, "name": name,
         "filter": json.dumps(filter) if filter is not None else None, "now": datetime.now(UTC)},
    )
    return result.first()


async def delete(conn: AsyncConnection, *, organizer_id: str, segment_id: str) -> bool:
    result = await conn.execute(
        text("DELETE FROM segments WHERE organizer_id = :organizer_id AND segment_id = :segment_id "
             "RETURNING segment_id"),
        {"organizer_id": organizer_id, "segment_id": segment_id},
    )
    return result.first() is not None
