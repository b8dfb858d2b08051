"""The monitor's poller against the real broker: a group named only in settings is found on the topics it committed
on; end offsets of topics no group reads; an unreachable broker is an error in the snapshot, not an exception."""

from __future__ import annotations

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import OffsetAndMetadata

from services.monitor.domain import LagBook, Rules, Status
from services.monitor.poller import OffsetPoller
from shared import topics
from shared.kafka import ensure_topics
from shared.producer import OutgoingMessage
from tests.support.isolation import Isolation
from tests.support.kafka import publish
from tests.support.ports import free_port

pytestmark = pytest.mark.integration


async def test_a_group_named_in_settings_is_watched_on_the_topics_it_committed_on(isolation: Isolation) -> None:
    await ensure_topics(isolation.kafka_bootstrap, prefix=isolation.topic_prefix, topics=topics.ALL_TOPICS)
    updates = isolation.topic(topics.PROFILE_UPDATES)
    dead_letters = isolation.topic(topics.dead_letter_topic("identity"))
    await publish(isolation.kafka_bootstrap, [
        OutgoingMessage(topic=updates, key=f"k{i}".encode(), value=b"{}", headers=[]) for i in range(20)
    ])
    downstream = f"{isolation.id}.crm-sync"
    committer = AIOKafkaConsumer(bootstrap_servers=isolation.kafka_bootstrap, group_id=downstream,
                                 enable_auto_commit=False)
    await committer.start()
    try:
        partitions = [TopicPartition(updates, p) for p in sorted(committer.partitions_for_topic(updates) or ())]
        committer.assign(partitions)  # no group join: a simple consumer's commit
        await committer.commit({partitions[0]: OffsetAndMetadata(1, "")})
    finally:
        await committer.stop()

    poller = OffsetPoller(isolation.kafka_bootstrap, groups={downstream: None}, topic_prefix=isolation.topic_prefix,
                          timeout=10.0, end_only=(dead_letters,))
    try:
        snapshot = await poller.read()
    finally:
        await poller.close()

    assert snapshot.error is None
    read = snapshot.groups[downstream]
    assert read.error is None
    assert {topic for topic, _ in read.committed} == {updates}
    assert read.committed[(updates, 0)] == 1
    assert (dead_letters, 0) in snapshot.ends
    assert sum(end for (topic, _), end in snapshot.ends.items() if topic == updates) > 0

    book = LagBook(rules=Rules(window=3, stop_after=60))
    book.record(snapshot)
    report = book.group_report(downstream, now=snapshot.at)
    assert report.status is Status.OK and report.sum_lag > 0  # one sample: too early to judge


async def test_an_unreachable_broker_makes_every_group_err() -> None:
    poller = OffsetPoller(f"127.0.0.1:{free_port()}", groups={"identity": ("contacts.import-rows.v1",)},
                          topic_prefix="", timeout=2.0)
    try:
        snapshot = await poller.read()
    finally:
        await poller.close()

    assert snapshot.error and snapshot.error.startswith("broker:")
    book = LagBook()
    book.record(snapshot)
    assert book.group_report("identity", now=snapshot.at).status is Status.ERR
