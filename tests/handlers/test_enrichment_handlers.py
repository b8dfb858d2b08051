"""enrichment's subscriber through FastStream's in-memory test broker and the real PostgreSQL: a batch of contact
events folded in one transaction (what the person stated kept, an organizer's import never; the contact marked due
for the providers once); a stale event (a version already applied, arriving again at a new offset) changes nothing;
an undecodable record dead-lettered with the rest applied."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import psycopg
import pytest
from faststream.kafka import KafkaBroker

from ops.local_postgres import libpq_url
from services.enrichment.handlers import register
from services.enrichment.service import EnrichmentTopics
from shared import topics
from shared.consumer import Delivery
from shared.db import create_engine
from shared.events import ContactSource
from shared.lifecycle import relay_channel
from shared.outbox_batches import unpack
from tests.support.enrichment import ADA, IMPORT_A, as_identity, created, updated
from tests.support.isolation import Isolation
from tests.support.memory_broker import MemoryLog, deliver, in_memory

pytestmark = pytest.mark.integration

ATTENDEE = ContactSource(kind="attendee", organizer_id="")


@pytest.fixture
async def enrichment(isolation: Isolation) -> AsyncIterator[tuple[KafkaBroker, list[int]]]:
    isolation.migrate(("enrichment",))
    schema, prefix = isolation.schema("enrichment"), isolation.topic_prefix
    engine = create_engine(isolation.database_url, schema=schema)
    broker = KafkaBroker(isolation.kafka_bootstrap)
    batches: list[int] = []
    register(
        broker, engine=engine, batch_size=5000, applied=lambda: batches.append(1),
        topics=EnrichmentTopics(
            contact_events=topics.CONTACT_EVENTS.qualified(prefix), enrichments=topics.ENRICHMENTS.qualified(prefix),
            attendee_statements=topics.ATTENDEE_STATEMENTS.qualified(prefix),
            dead_letters=topics.dead_letter_topic("enrichment").qualified(prefix),
        ),
        delivery=Delivery(service="enrichment", group=isolation.consumer_group("enrichment"),
                          bootstrap_servers=isolation.kafka_bootstrap, channel=relay_channel(schema)),
    )
    try:
        async with in_memory(broker) as started:
            yield started, batches
    finally:
        await engine.dispose()


def rows(isolation: Isolation, sql: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(libpq_url(isolation.database_url)) as conn:
        conn.execute(f'SET search_path TO "{isolation.schema("enrichment")}"')
        return conn.execute(sql).fetchall()


async def test_what_the_person_stated_is_kept_an_import_never_and_a_stale_event_changes_nothing(
    isolation: Isolation, enrichment: tuple[KafkaBroker, list[int]]
) -> None:
    broker, batches = enrichment
    log = MemoryLog(partitions=1)
    events = [created("c-1", ADA, IMPORT_A, company="Imported Ltd"), updated("c-1", 2, ATTENDEE, title="Countess")]
    await deliver(broker, log.append([as_identity(isolation, e) for e in events]))
    kept = "SELECT contact_id, email, version, company, title, organizers, due_at IS NOT NULL FROM contacts"
    assert rows(isolation, kept) == [("c-1", ADA, 2, None, "Countess", ["org-a"], True)]
    assert batches == [1]

    await deliver(broker, log.append([as_identity(isolation, updated("c-1", 2, ATTENDEE, title="Other"))]))
    assert rows(isolation, kept) == [("c-1", ADA, 2, None, "Countess", ["org-a"], True)]


async def test_an_undecodable_record_is_dead_lettered_and_the_rest_applied(
    isolation: Isolation, enrichment: tuple[KafkaBroker, list[int]]
) -> None:
    broker, _ = enrichment
    good = as_identity(isolation, created("c-2", "grace@navy.example"))
    broken = good._replace(value=b"[]", key=b"c-3")
    await deliver(broker, MemoryLog(partitions=1).append([broken, good]))

    assert rows(isolation, "SELECT contact_id FROM contacts") == [("c-2",)]
    letters = [m for (packed,) in rows(isolation, "SELECT messages FROM outbox_batches") for m in unpack(packed)]
    (letter,) = letters
    assert letter.topic == isolation.topic(topics.dead_letter_topic("enrichment")) and letter.value == b"[]"
