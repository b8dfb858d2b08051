"""``contacts republish contact-events`` publishes identity's event store to the contact log again, each event under
the id it always has, all of it or one contact's stream; a consumer that applied them drops the repeats."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from ops.cli import main
from shared.events import ContactCreatedV1, ContactEvent, ContactMatchedV1, ContactUpdatedV1
from shared.topics import CONTACT_EVENTS, IMPORT_ROW_OUTCOMES
from tests.support.identity import identity_process, query, row_messages, rows_of
from tests.support.isolation import Isolation
from tests.support.kafka import consume_quiet, consume_until, publish

pytestmark = pytest.mark.integration
CONTACT_EVENT_TYPES = (ContactCreatedV1, ContactUpdatedV1, ContactMatchedV1)


async def test_the_event_store_is_published_again_whole_or_one_contact(
    isolation: Isolation, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    isolation.migrate(("identity",))
    identity = identity_process(isolation, tmp_path)
    emails = ["ann@x.io", "bob@x.io", " ANN@x.io", "cy@x.io", "bob@x.io"]
    try:
        await identity.start()
        await publish(isolation.kafka_bootstrap, row_messages(isolation, "imp-re", emails))
        await consume_until(isolation.kafka_bootstrap, isolation.topic(IMPORT_ROW_OUTCOMES),
                            lambda got: len(rows_of(got, "imp-re")) >= len(emails))
        await consume_until(isolation.kafka_bootstrap, isolation.topic(CONTACT_EVENTS),
                            lambda got: len(got) >= len(emails), accepted=CONTACT_EVENT_TYPES)
    finally:
        await identity.stop()
    topic = isolation.topic(CONTACT_EVENTS)
    admin = AIOKafkaAdminClient(bootstrap_servers=isolation.kafka_bootstrap)
    await admin.start()
    try:
        await admin.delete_topics([topic])  # the log is gone (retention, a lost broker, an operator's mistake)
        await admin.create_topics([NewTopic(topic, CONTACT_EVENTS.partitions, 1)])
    finally:
        await admin.close()
    for name, value in isolation.env().items():
        monkeypatch.setenv(name, value)

    assert await asyncio.to_thread(main, ["republish", "contact-events"]) == 0  # the CLI runs its own loop
    assert "republished 5 contact events" in capsys.readouterr().out
    whole = await consume_until(isolation.kafka_bootstrap, topic, lambda got: len(got) >= 5,
                                accepted=CONTACT_EVENT_TYPES)
    (ann,) = query(isolation, "SELECT contact_id::text FROM contacts WHERE email = 'ann@x.io'")
    assert await asyncio.to_thread(main, ["republish", "contact-events", "--contact", ann[0]]) == 0
    after = await consume_quiet(isolation.kafka_bootstrap, topic)

    stored = query(isolation, "SELECT contact_id::text, version FROM contact_events ORDER BY position")
    published = [(c.key, c.event.version) for c in whole if isinstance(c.event, ContactEvent)]
    assert sorted(published) == sorted(stored)
    for contact in {contact for contact, _ in stored}:  # each stream in version order
        versions = [version for key, version in published if key == contact]
        assert versions == sorted(versions)
    assert {c.envelope.id for c in whole if c.envelope} == {f"{contact}:{version}" for contact, version in stored}
    again = Counter((c.key, c.event.version) for c in after if isinstance(c.event, ContactEvent)) - Counter(published)
    assert sorted(again.elements()) == sorted((contact, version) for contact, version in stored if contact == ann[0])
