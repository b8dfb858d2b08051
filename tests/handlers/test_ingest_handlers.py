"""ingest's subscriber through FastStream's in-memory test broker and the real PostgreSQL: identity's answers are
counted into their import and pacing is told (``on_counted``); a deadlock that psycopg raises unwrapped (COPY runs
on the driver's connection) is retried at once, as one wrapped by SQLAlchemy is, and any other error is raised."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import psycopg
import pytest
from faststream.kafka import KafkaBroker
from psycopg import errors as pg_errors

from ops.local_postgres import libpq_url
from services.ingest import outcomes, service, store
from services.ingest.handlers import register
from services.ingest.service import IngestTopics
from shared import topics
from shared.codec import encode
from shared.consumer import Delivery
from shared.db import create_engine
from shared.envelope import Envelope
from shared.events import ImportRowsProcessedV1, ProcessedRow
from shared.lifecycle import relay_channel
from tests.support.isolation import Isolation
from tests.support.memory_broker import MemoryLog, deliver, in_memory

pytestmark = pytest.mark.integration


class Ingest:
    def __init__(self, isolation: Isolation) -> None:
        schema, prefix = isolation.schema("ingest"), isolation.topic_prefix
        self.isolation = isolation
        self.engine = create_engine(isolation.database_url, schema=schema)
        self.topics = IngestTopics(
            import_rows=topics.IMPORT_ROWS.qualified(prefix),
            bulk_import_rows=topics.BULK_IMPORT_ROWS.qualified(prefix),
            row_outcomes=topics.IMPORT_ROW_OUTCOMES.qualified(prefix),
            dead_letters=topics.dead_letter_topic("ingest").qualified(prefix),
        )
        self.delivery = Delivery(service="ingest", group=isolation.consumer_group("ingest"),
                                 bootstrap_servers=isolation.kafka_bootstrap, channel=relay_channel(schema))
        self.counted: list[int] = []
        self.log = MemoryLog(partitions=1)

    async def started_import(self, rows: int) -> str:
        import_id = str(uuid.uuid4())
        async with self.engine.begin() as conn:
            await store.create_import(conn, import_id=import_id, organizer_id="org-a", source="json", filename=None)
            await store.start_import(conn, import_id=import_id, organizer_id="org-a", columns=None)
            await store.finish_parsing(conn, import_id=import_id, total_rows=rows)
        return import_id

    def answers(self, import_id: str, numbers: range) -> list[Any]:
        event = ImportRowsProcessedV1(import_id=import_id, organizer_id="org-a", rows=[
            ProcessedRow(row_number=n, outcome="created", contact_id=f"c-{n}") for n in numbers
        ])
        envelope = Envelope(id=str(uuid.uuid4()), type=event.TYPE, source="kagibag-contacts/identity")
        return self.log.append([encode(event, envelope, topic=self.topics.row_outcomes, key=import_id)])

    def counts(self, import_id: str) -> tuple[Any, ...]:
        with psycopg.connect(libpq_url(self.isolation.database_url)) as conn:
            found = conn.execute(f'SELECT status, processed_rows, created FROM "{self.isolation.schema("ingest")}"'
                                 ".imports WHERE import_id = %s", (import_id,)).fetchone()
        assert found is not None
        return tuple(found)


@pytest.fixture
async def ingest(isolation: Isolation) -> AsyncIterator[Ingest]:
    isolation.migrate(("ingest",))
    service = Ingest(isolation)
    yield service
    await service.engine.dispose()


async def test_answers_are_counted_into_their_import_and_pacing_is_told(ingest: Ingest) -> None:
    broker = KafkaBroker(ingest.isolation.kafka_bootstrap)
    register(broker, engine=ingest.engine, topics=ingest.topics, delivery=ingest.delivery,
             on_counted=lambda: ingest.counted.append(1))
    import_id = await ingest.started_import(rows=3)
    async with in_memory(broker) as started:
        await deliver(started, ingest.answers(import_id, range(1, 3)))
        assert ingest.counts(import_id) == ("processing", 2, 2)
        assert ingest.counted == [1]
        await deliver(started, ingest.answers(import_id, range(3, 4)))
    assert ingest.counts(import_id) == ("processed", 3, 3)
    assert ingest.counted == [1, 1]


@pytest.mark.parametrize("raised", [pg_errors.DeadlockDetected, pg_errors.SerializationFailure])
async def test_a_deadlock_raised_unwrapped_by_psycopg_is_retried_at_once(
    ingest: Ingest, monkeypatch: pytest.MonkeyPatch, raised: type[psycopg.Error]
) -> None:
    import_id = await ingest.started_import(rows=2)
    real, calls = outcomes.count_outcomes, []

    async def fails_once(conn: Any, messages: Any) -> Any:
        calls.append(1)
        if len(calls) == 1:
            raise raised("deadlock detected")
        return await real(conn, messages)

    monkeypatch.setattr(outcomes, "count_outcomes", fails_once)
    applied = await service.apply_answers(ingest.engine, ingest.answers(import_id, range(1, 3)),
                                           topics=ingest.topics, delivery=ingest.delivery)
    assert (applied.rows, len(calls)) == (2, 2)
    assert ingest.counts(import_id) == ("processed", 2, 2)


async def test_another_psycopg_error_is_raised(ingest: Ingest, monkeypatch: pytest.MonkeyPatch) -> None:
    import_id = await ingest.started_import(rows=2)

    async def broken(conn: Any, messages: Any) -> Any:
        raise pg_errors.UndefinedTable("no such table")

    monkeypatch.setattr(outcomes, "count_outcomes", broken)
    with pytest.raises(pg_errors.UndefinedTable):
        await service.apply_answers(ingest.engine, ingest.answers(import_id, range(1, 3)), topics=ingest.topics,
                                     delivery=ingest.delivery)
    assert ingest.counts(import_id) == ("processing", 0, 0)
