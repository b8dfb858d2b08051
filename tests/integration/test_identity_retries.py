"""identity retries a batch at once when another instance created one of its contacts first: the batch's COPY into
``contacts`` meets the other transaction's row on the unique email index, and the retry finds the contact and
matches it (``services.identity.service.resolve_with_retries``). Found by the scale-out test, where two instances
(and two lanes) create the same new people at the same moment."""

from __future__ import annotations

import asyncio

import psycopg
import pytest
from aiokafka import ConsumerRecord

from ops.local_postgres import libpq_url
from services.identity.service import IdentityTopics, resolve_with_retries
from shared import topics
from shared.consumer import Delivery
from shared.db import create_engine
from shared.lifecycle import relay_channel
from tests.support.identity import query, row_messages
from tests.support.isolation import Isolation
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration


async def test_a_contact_another_instance_creates_meanwhile_is_matched_on_a_retry(isolation: Isolation) -> None:
    isolation.migrate(("identity",))
    schema, prefix = isolation.schema("identity"), isolation.topic_prefix
    engine = create_engine(isolation.database_url, schema=schema)
    identity_topics = IdentityTopics(
        import_rows=topics.IMPORT_ROWS.qualified(prefix), bulk_import_rows=topics.BULK_IMPORT_ROWS.qualified(prefix),
        interactions=topics.INTERACTIONS.qualified(prefix),
        attendee_statements=topics.ATTENDEE_STATEMENTS.qualified(prefix),
        contact_events=topics.CONTACT_EVENTS.qualified(prefix),
        row_outcomes=topics.IMPORT_ROW_OUTCOMES.qualified(prefix),
        dead_letters=topics.dead_letter_topic("identity").qualified(prefix),
    )
    delivery = Delivery(service="identity", group=isolation.consumer_group("identity"),
                        bootstrap_servers=isolation.kafka_bootstrap, channel=relay_channel(schema))
    [row] = row_messages(isolation, "imp-race", ["ann@x.io"])
    record = ConsumerRecord(topic=row.topic, partition=0, offset=0, timestamp=0, timestamp_type=0, key=row.key,
                            value=row.value, checksum=None, serialized_key_size=len(row.key or b""),
                            serialized_value_size=len(row.value), headers=tuple(row.headers))
    try:
        async with await psycopg.AsyncConnection.connect(libpq_url(isolation.database_url)) as other:
            # another instance's batch has created ann@x.io and not committed yet
            await other.execute(f'SET search_path TO "{schema}"')
            await other.execute("INSERT INTO contacts (contact_id, email, version, created_at, updated_at) "
                                "VALUES (gen_random_uuid(), 'ann@x.io', 1, now(), now())")
            resolving = asyncio.create_task(
                resolve_with_retries(engine, [record], topics=identity_topics, delivery=delivery))
            blocker = other.info.backend_pid

            async def waiting_on_the_other() -> bool:
                async with await psycopg.AsyncConnection.connect(libpq_url(isolation.database_url)) as watcher:
                    found = await (await watcher.execute(
                        "SELECT count(*) FROM pg_stat_activity WHERE %s = ANY(pg_blocking_pids(pid))", (blocker,)
                    )).fetchone()
                return bool(found and found[0])

            await wait_until(waiting_on_the_other, timeout=10, interval=0.05,
                             description="the batch waits on the other transaction's new contact")
            await other.commit()
        resolved = await asyncio.wait_for(resolving, 30)
    finally:
        await engine.dispose()

    assert resolved.rows == 1
    assert query(isolation, "SELECT email, version FROM contacts") == [("ann@x.io", 2)]
