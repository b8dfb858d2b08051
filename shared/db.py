"""Database plumbing: engines bound to a service's own schema, and COPY for bulk writes."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import create_engine as create_sync_engine
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def checked_schema(schema: str) -> str:
    """Schema names go into SQL text (search_path, COPY), so only plain identifiers are allowed."""
    if not _SCHEMA_NAME.match(schema):
        raise ValueError(f"invalid schema name {schema!r}: use lowercase letters, digits and underscores")
    return schema


def _connect_args(schema: str) -> dict[str, Any]:
    return {"options": f"-csearch_path={checked_schema(schema)}"}


def create_engine(database_url: str, *, schema: str, pool_size: int = 5) -> AsyncEngine:
    """An async engine whose connections see only ``schema`` (the service's own tables) by default."""
    return create_async_engine(
        database_url, connect_args=_connect_args(schema), pool_size=pool_size, pool_pre_ping=True
    )


def create_migration_engine(database_url: str, *, schema: str) -> Engine:
    return create_sync_engine(database_url, connect_args=_connect_args(schema))


async def copy_rows(
    conn: AsyncConnection, *, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]
) -> None:
    """COPY rows into ``table`` inside the connection's current transaction (70-90k rows/s vs ~20k for
    row inserts)."""
    raw = await conn.get_raw_connection()
    driver_connection: Any = raw.driver_connection
    column_list = ", ".join(columns)
    async with driver_connection.cursor() as cursor, cursor.copy(
        f"COPY {table} ({column_list}) FROM STDIN"
    ) as copy:
        for row in rows:
            await copy.write_row(row)
