"""Tracking records: which messages a consumer has already applied, written in the same transaction as the
effect, so that at-least-once delivery has an exactly-once effect."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from sqlalchemy import Column, DateTime, MetaData, PrimaryKeyConstraint, Table, Text, func, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from shared.db import copy_rows
from shared.retention import Pruner, Retained


def processed_messages_table(metadata: MetaData) -> Table:
    return Table(
        "processed_messages",
        metadata,
        Column("consumer", Text, nullable=False),
        Column("message_id", Text, nullable=False),
        Column("processed_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        PrimaryKeyConstraint("consumer", "message_id"),
    )


async def claim_new_messages(conn: AsyncConnection, *, consumer: str, message_ids: Sequence[str]) -> set[str]:
    """Record ``message_ids`` as processed by ``consumer`` and return those not recorded before.

    Concurrent claimers of the same id block on the unique index until the first commits, so exactly one
    of them gets it."""
    if not message_ids:
        return set()
    await conn.execute(
        text("CREATE TEMP TABLE IF NOT EXISTS claim_stage (message_id text) ON COMMIT DELETE ROWS")
    )
    await copy_rows(conn, table="claim_stage", columns=["message_id"], rows=((m,) for m in message_ids))
    result = await conn.execute(
        text(
            "INSERT INTO processed_messages (consumer, message_id) "
            "SELECT DISTINCT :consumer, message_id FROM claim_stage "
            "ON CONFLICT DO NOTHING RETURNING message_id"
        ),
        {"consumer": consumer},
    )
    return {row[0] for row in result}


TRACKING_RECORDS = Retained("processed_messages", "processed_at")


def TrackingPruner(engine: AsyncEngine, *, retention: timedelta, interval: float) -> Pruner:  # noqa: N802
    """The pruner of the legacy tracking records (services not yet on positional tracking)."""
    return Pruner(engine, targets=[TRACKING_RECORDS], retention=retention, interval=interval)
