"""The local broker keeps its log in memory: killed and restarted empty mid-import, it loses every message. identity
recovers by itself from what PostgreSQL holds: topics are recreated, its event store and row answers are published
again into the new log, its stored positions (taken in the lost log) are forgotten, and rows published again
(as ingest does from its checkpoint) are answered without being applied twice."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from ops.local_broker import LocalBroker, start_broker
from shared.events import ContactCreatedV1, ContactMatchedV1, ContactUpdatedV1
from shared.topics import CONTACT_EVENTS, IMPORT_ROW_OUTCOMES, IMPORT_ROWS
from tests.support.identity import (
    assert_one_contact_per_person_with_gapless_streams,
    identity_process,
    query,
    row_messages,
    rows_of,
    spellings,
)
from tests.support.isolation import Isolation
from tests.support.kafka import consume_until, publish
from tests.support.ports import free_port
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration


async def partitions(broker: LocalBroker, topic: str) -> int:
    admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap_servers)
    await admin.start()
    try:
        if topic not in await admin.list_topics():
            return 0
        return len((await admin.describe_topics([topic]))[0]["partitions"])
    finally:
        await admin.close()


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[list[LocalBroker]]:
    """A broker of this test's own (it gets killed), as a one-element list so the test can replace it."""
    brokers = [start_broker(port=free_port(), log_path=tmp_path / "tansu.log")]
    yield brokers
    brokers[0].stop()


async def test_identity_recovers_from_a_broker_restarted_empty(
    own_broker: list[LocalBroker], database_url: str, tmp_path: Path
) -> None:
    broker = own_broker[0]
    isolation = Isolation(database_url=database_url, kafka_bootstrap=broker.bootstrap_servers)
    isolation.migrate(("identity",))
    identity = identity_process(isolation, tmp_path)
    emails = spellings(people=400, rows=2_000, seed=3)
    messages = row_messages(isolation, "imp-loss", emails)
    try:
        await identity.start()
        await publish(broker.bootstrap_servers, messages[:1_200])
        await consume_until(broker.bootstrap_servers, isolation.topic(IMPORT_ROW_OUTCOMES),
                            lambda got: len(rows_of(got, "imp-loss")) >= 1_200, timeout=60)
        stored_events = query(isolation, "SELECT count(*) FROM contact_events")[0][0]

        broker.process.kill()  # what a crash of `make run`'s broker does: every message in memory is gone
        broker.process.wait()
        own_broker[0] = broker = start_broker(port=broker.port, log_path=tmp_path / "tansu-2.log")
        async def recreated() -> bool:
            return await partitions(broker, isolation.topic(IMPORT_ROWS)) == IMPORT_ROWS.partitions

        await wait_until(recreated, timeout=90, interval=1,
                         description="identity to create the rows topic again as the registry says")

        # ingest publishes the rows it has no answer for again (from its checkpoint, after a deadline)
        await publish(broker.bootstrap_servers, messages)
        answered = await consume_until(
            broker.bootstrap_servers, isolation.topic(IMPORT_ROW_OUTCOMES),
            lambda got: len({row.row_number for row in rows_of(got, "imp-loss")}) >= len(emails), timeout=120,
        )
        events = await consume_until(
            broker.bootstrap_servers, isolation.topic(CONTACT_EVENTS), lambda got: len(got) >= len(emails),
            accepted=(ContactCreatedV1, ContactUpdatedV1, ContactMatchedV1), timeout=120,
        )
        assert_one_contact_per_person_with_gapless_streams(isolation, emails)  # nothing applied twice
    finally:
        await identity.stop()
        isolation.drop_schemas()

    assert stored_events >= 1_200
    by_row: dict[int, set[str]] = {}
    for row in rows_of(answered, "imp-loss"):
        by_row.setdefault(row.row_number, set()).add(f"{row.outcome}:{row.contact_id}")
    assert sorted(by_row) == list(range(1, len(emails) + 1))
    assert all(len(answers) == 1 for answers in by_row.values()), "a row answered again is answered identically"
    # the new log holds the whole event store again, every contact's stream gapless from version 1
    versions: dict[str, list[int]] = {}
    for consumed in events:
        versions.setdefault(consumed.key or "", []).append(consumed.event.version)  # type: ignore[union-attr]
    assert all(sorted(set(v)) == list(range(1, max(v) + 1)) for v in versions.values())
    assert sum(len(set(v)) for v in versions.values()) == len(emails)
    assert "relay.log_replaced" in identity.log_path.read_text()

