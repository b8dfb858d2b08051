"""Rebuild profiles' read models from the logs: replay the contact log from the beginning into a fresh schema
with the projection the service runs (publishing nothing), then re-apply the organizers' API changes from the
live schema's change log. Optionally swap the rebuilt schema in.

The replay reads until every partition has reached the end offset captured at the start and no record has
arrived for ``quiet_seconds``: Tansu reports a partition's end as its newest batch's base offset + 1, which
can be short of the real end.

A replay of a log that lost events builds a partial read model without any error, so the rebuild refuses (and
says to republish identity's event store) when the log cannot hold every event: a partition that no longer
starts at offset 0 (retention, deleted records), no topic at all, or a replay that leaves a contact behind the
version the live read model had applied when the rebuild started (the broker restarted empty, the topic was
recreated). The last is decided on content, not offsets: after a republish the log holds every event again,
possibly at other offsets than the ones profiles stored, and Tansu's end offsets are low."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition
from sqlalchemy import make_url, text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.profiles import relationships
from services.profiles.config import ProfilesSettings
from services.profiles.log_completeness import (
    REPUBLISH,
    IncompleteLog,
    RebuildError,
    check_against_live,
    expect_live,
    headless,
)
from services.profiles.service import ProfilesTopics, project
from shared.consumer import Delivery
from shared.db import checked_schema, create_engine
from shared.lifecycle import relay_channel
from shared.migrations import upgrade

log = structlog.get_logger(__name__)

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
"""profiles' own migrations, applied to the schema a rebuild fills."""


@dataclass(frozen=True)
class RebuildSummary:
    target_schema: str
    messages: int
    applied: int
    profiles: int
    organizer_contacts: int
    interactions: int
    changes: relationships.Replayed
    swapped_out: str | None = None

    def lines(self) -> list[str]:
        lines = [
            f"rebuilt profiles into schema {self.target_schema!r}",
            f"  messages replayed: {self.messages} ({self.applied} applied)",
            f"  profiles: {self.profiles}",
            f"  organizer contacts: {self.organizer_contacts}",
            f"  interactions: {self.interactions}",
            f"  API changes re-applied: {self.changes.applied} (without relationship: "
            f"{self.changes.without_relationship}, invalid: {self.changes.invalid})",
        ]
        if self.swapped_out is not None:
            lines.append(f"  swapped in; the previous schema is kept as {self.swapped_out!r}")
        return lines


def default_target(schema: str) -> str:
    return f"{schema}_rebuild"


def _without_password(database_url: str) -> str:
    return make_url(database_url).render_as_string(hide_password=True)


async def _schema_exists(engine: AsyncEngine, schema: str) -> bool:
    async with engine.connect() as conn:
        found = await conn.execute(text("SELECT 1 FROM pg_namespace WHERE nspname = :schema"), {"schema": schema})
        return found.first() is not None


async def _prepare_target(engine: AsyncEngine, *, settings: ProfilesSettings, target: str, replace: bool) -> None:
    if await _schema_exists(engine, target):
        if not replace:
            raise RebuildError(f"schema {target!r} already exists: drop it, or pass --replace")
        async with engine.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA "{target}" CASCADE'))
    upgrade(migrations_dir=MIGRATIONS_DIR, database_url=settings.platform.database_url, schema=target)


@dataclass
class LogReplay:
    read: int = 0
    applied: int = 0
    ends: dict[int, int] = field(default_factory=dict)
    """Partition of the contact log -> one past the last offset read."""


async def replay_topics(
    engine: AsyncEngine, *, settings: ProfilesSettings, quiet_seconds: float, batch_size: int
) -> LogReplay:
    """Project the contact log from the beginning into ``engine``'s schema (refused, before anything is read,
    when the topic is absent or no longer starts at offset 0). Positions are stored under the live consumer
    group's name, so a swapped-in schema lets the service resume where the rebuild stopped without applying
    anything twice."""
    topics = ProfilesTopics.qualified(settings.platform.topic_prefix)
    delivery = Delivery(service="profiles", group=settings.consumer_group,
                        bootstrap_servers=settings.platform.kafka_bootstrap_servers,
                        channel=relay_channel(settings.db_schema))
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.platform.kafka_bootstrap_servers,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        await consumer.topics()  # metadata for every topic
        partitions = [
            TopicPartition(topic, partition)
            for topic in (topics.contact_events,)
            for partition in sorted(consumer.partitions_for_topic(topic) or ())
        ]
        if not partitions:
            raise IncompleteLog(f"the contact log {topics.contact_events} does not exist on "
                                f"{settings.platform.kafka_bootstrap_servers}: run `contacts topics` and "
                                f"`{REPUBLISH}`, then rebuild")
        consumer.assign(partitions)
        starts = await consumer.beginning_offsets(partitions)
        if refusal := headless(topics.contact_events, {tp.partition: start for tp, start in starts.items()}):
            raise refusal
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        replayed = LogReplay(ends={tp.partition: 0 for tp in partitions})
        last_record = time.monotonic()
        while True:
            batches = await consumer.getmany(timeout_ms=500, max_records=batch_size)
            records = [record for part in batches.values() for record in part]
            if records:
                replayed.read += len(records)
                replayed.applied += await project(engine, records, topics=topics, delivery=delivery, publish=False)
                for record in records:
                    replayed.ends[record.partition] = max(replayed.ends[record.partition], record.offset + 1)
                last_record = time.monotonic()
                continue
            positions = {partition: await consumer.position(partition) for partition in partitions}
            caught_up = all(positions[partition] >= ends[partition] for partition in partitions)
            if caught_up and time.monotonic() - last_record >= quiet_seconds:
                return replayed
    finally:
        await consumer.stop()


async def _count(engine: AsyncEngine, table: str, where: str = "") -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(text(f"SELECT count(*) FROM {table} {where}"))).scalar_one())


async def _swap(engine: AsyncEngine, *, live: str, target: str) -> str:
    """Rename the live schema away and the rebuilt one into its place, in one transaction. Refused while the
    live outbox still holds messages: they would be lost (stopping the service flushes it)."""
    retired = f"{live}_replaced_{datetime.now(UTC):%Y%m%d%H%M%S}"
    checked_schema(retired)
    async with engine.begin() as conn:
        pending = (await conn.execute(text(f'SELECT count(*) FROM "{live}".outbox_batches'))).scalar_one()
        if pending:
            raise RebuildError(
                f"{pending} unsent batches in {live}.outbox_batches: stop the service cleanly, then swap"
            )
        await conn.execute(text(f'ALTER SCHEMA "{live}" RENAME TO "{retired}"'))
        await conn.execute(text(f'ALTER SCHEMA "{target}" RENAME TO "{live}"'))
    return retired


async def rebuild(
    settings: ProfilesSettings,
    *,
    target_schema: str | None = None,
    replace: bool = False,
    swap: bool = False,
    quiet_seconds: float = 2.0,
) -> RebuildSummary:
    """Rebuild into ``target_schema`` (default ``<schema>_rebuild``); with ``swap``, make it the live schema
    (the service must be stopped: API changes and messages it applies meanwhile would be lost)."""
    live = checked_schema(settings.db_schema)
    target = checked_schema(target_schema or default_target(live))
    if target == live:
        raise RebuildError("the target schema must not be the live schema")
    database_url = settings.platform.database_url
    live_engine = create_engine(database_url, schema=live)
    target_engine = create_engine(database_url, schema=target)
    try:
        if not await _schema_exists(live_engine, live):
            raise RebuildError(
                f"the live schema {live!r} is not in the database {_without_password(database_url)}: set "
                "CONTACTS_DATABASE_URL (and CONTACTS_PROFILES_DB_SCHEMA) to the profiles service's own "
                "(`make run` prints them)"
            )
        await _prepare_target(live_engine, settings=settings, target=target, replace=replace)
        started = time.monotonic()
        topic = ProfilesTopics.qualified(settings.platform.topic_prefix).contact_events
        try:
            expected, stored = await expect_live(live_engine, settings=settings, live=live, target=target,
                                                  topic=topic)
            log_replay = await replay_topics(
                target_engine, settings=settings, quiet_seconds=quiet_seconds, batch_size=settings.batch_size
            )
            await check_against_live(live_engine, target=target, topic=topic, expected=expected, stored=stored,
                                      ends=log_replay.ends)
        except IncompleteLog:
            await target_engine.dispose()
            async with live_engine.begin() as conn:
                await conn.execute(text(f'DROP SCHEMA "{target}" CASCADE'))
            raise
        read, applied = log_replay.read, log_replay.applied
        async with live_engine.connect() as source, target_engine.begin() as conn:
            changes = await relationships.load_changes(source)
            await relationships.copy_change_log(source, conn)
            replayed = await relationships.replay_changes(conn, changes)
        log.info("rebuild.replayed", target=target, records=read, applied=applied,
                 seconds=round(time.monotonic() - started, 2))
        summary = RebuildSummary(
            target_schema=target,
            messages=read,
            applied=applied,
            profiles=await _count(target_engine, "contact_profiles", "WHERE created_at IS NOT NULL"),
            organizer_contacts=await _count(target_engine, "organizer_contacts"),
            interactions=await _count(target_engine, "organizer_interactions"),
            changes=replayed,
        )
        await target_engine.dispose()
        if swap:
            retired = await _swap(live_engine, live=live, target=target)
            summary = dataclasses.replace(summary, target_schema=live, swapped_out=retired)
        return summary
    finally:
        await target_engine.dispose()
        await live_engine.dispose()
