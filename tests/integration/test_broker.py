"""Topics on the real broker: created idempotently with their partition counts; envelopes survive a trip."""

from __future__ import annotations

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from shared.events import ImportRowReceivedV1
from shared.kafka import ensure_topics
from shared.producer import create_producer
from shared.topics import ALL_TOPICS, CONTACT_EVENTS, IMPORT_ROWS, PROFILE_UPDATES
from tests.support.isolation import Isolation
from tests.support.kafka import consume_until, publish_events

pytestmark = pytest.mark.integration


async def test_topics_are_created_once_with_their_partition_counts(isolation: Isolation) -> None:
    bootstrap, prefix = isolation.kafka_bootstrap, isolation.topic_prefix

    created = await ensure_topics(bootstrap, prefix=prefix, topics=ALL_TOPICS)
    again = await ensure_topics(bootstrap, prefix=prefix, topics=ALL_TOPICS)

    assert sorted(created) == sorted(isolation.topic(topic) for topic in ALL_TOPICS)
    assert again == []
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        described = await admin.describe_topics([isolation.topic(topic) for topic in ALL_TOPICS])
    finally:
        await admin.close()
    partitions = {item["topic"]: len(item["partitions"]) for item in described}
    assert partitions == {isolation.topic(topic): topic.partitions for topic in ALL_TOPICS}


async def test_a_published_event_is_read_back_with_its_envelope(isolation: Isolation) -> None:
    topic = isolation.topic(IMPORT_ROWS)
    await ensure_topics(isolation.kafka_bootstrap, prefix=isolation.topic_prefix, topics=[IMPORT_ROWS])
    rows = [
        ImportRowReceivedV1(import_id="imp-1", organizer_id="org-1", row_number=n, email=f"p{n}@example.com")
        for n in (1, 2, 3)
    ]

    envelopes = await publish_events(
        isolation.kafka_bootstrap, topic=topic, events=[(row.email, row) for row in rows]
    )
    seen = await consume_until(isolation.kafka_bootstrap, topic, lambda seen: len(seen) >= 3, timeout=20)

    assert sorted(c.envelope.id for c in seen if c.envelope) == sorted(e.id for e in envelopes)
    assert {c.key: c.event for c in seen} == {row.email: row for row in rows}


async def test_topics_carry_their_configs_and_a_topic_a_client_created_with_too_few_partitions_is_fixed(
    isolation: Isolation,
) -> None:
    """The contact log is kept forever, profile updates compacted, working topics 7 days; a topic the local
    broker made up (4 partitions, on a client's request after it restarted empty) gets the registry's count."""
    bootstrap = isolation.kafka_bootstrap
    rows = isolation.topic(IMPORT_ROWS)
    producer = create_producer(bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(rows, b"made up by the broker")
    finally:
        await producer.stop()

    created = await ensure_topics(bootstrap, prefix=isolation.topic_prefix, topics=ALL_TOPICS,
                                  min_insync_replicas=1)

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        (described,) = await admin.describe_topics([rows])
        configs = {}
        for topic in (CONTACT_EVENTS, PROFILE_UPDATES, IMPORT_ROWS):
            (response,) = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC,
                                                                      isolation.topic(topic))])
            (resource,) = response.resources
            configs[topic.name] = {entry[0]: entry[1] for entry in resource[4]}
    finally:
        await admin.close()
    assert rows in created and len(described["partitions"]) == IMPORT_ROWS.partitions
    assert configs[CONTACT_EVENTS.name]["retention.ms"] == "-1"
    assert configs[PROFILE_UPDATES.name]["cleanup.policy"] == "compact"
    assert configs[IMPORT_ROWS.name]["retention.ms"] == str(7 * 24 * 3600 * 1000)
    assert configs[IMPORT_ROWS.name]["min.insync.replicas"] == "1"
