"""``contacts rebuild profiles`` refuses to replay a contact log that lost events profiles had applied (the broker
restarted empty, the topic recreated: Tansu keeps no log and has no DeleteRecords), says to republish, and
rebuilds the whole read model once ``contacts republish contact-events`` has put identity's event store back.

identity's event store is filled by its subscriber through FastStream's in-memory broker (a process takes ~20 s to
start on a loaded machine); the log, the rebuilds and the republish use the real broker and PostgreSQL."""

from __future__ import annotations

import asyncio

import psycopg
import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from ops.cli import main
from ops.local_postgres import libpq_url
from services.profiles.config import ProfilesSettings
from services.profiles.rebuild import IncompleteLog, rebuild
from shared.topics import CONTACT_EVENTS
from tests.support.identity import contact_event_messages, identity_in_memory, row_messages
from tests.support.isolation import Isolation
from tests.support.kafka import publish
from tests.support.memory_broker import MemoryLog, deliver

pytestmark = pytest.mark.integration


def schemas(isolation: Isolation) -> set[str]:
    with psycopg.connect(libpq_url(isolation.database_url)) as conn:
        rows = conn.execute("SELECT nspname FROM pg_namespace WHERE nspname LIKE %s", (f"t{isolation.id}%",))
        return {name for (name,) in rows}


def drop(isolation: Isolation, *names: str) -> None:
    with psycopg.connect(libpq_url(isolation.database_url), autocommit=True) as conn:
        for name in names:
            conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


async def identity_applies(isolation: Isolation, emails: list[str]) -> None:
    """identity resolves one import of ``emails`` into its event store, and the contact log gets it as identity's
    relay writes it (the store in order, the same ids and headers)."""
    async with identity_in_memory(isolation) as identity:
        await deliver(identity, MemoryLog().append(row_messages(isolation, "imp-lost", emails)))
    assert await publish(isolation.kafka_bootstrap, contact_event_messages(isolation)) == len(emails)


async def test_a_rebuild_of_a_log_that_lost_events_refuses_until_republished(
    isolation: Isolation, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    isolation.migrate(("identity", "profiles"))
    settings = ProfilesSettings(db_schema=isolation.schema("profiles"), consumer_group=isolation.consumer_group(
        "profiles"), platform=isolation.platform_settings())
    topic = isolation.topic(CONTACT_EVENTS)
    emails = ["ann@x.io", "bob@x.io", " ANN@x.io", "cy@x.io", "dee@x.io", "bob@x.io"]
    await identity_applies(isolation, emails)
    live, target = isolation.schema("profiles"), f"{isolation.schema('profiles')}_rebuild"
    retired: str | None = None
    try:
        # the live read model: the whole log applied, positions stored under the live group
        retired = (await rebuild(settings, swap=True, quiet_seconds=0.5)).swapped_out
        assert retired is not None

        admin = AIOKafkaAdminClient(bootstrap_servers=isolation.kafka_bootstrap)
        await admin.start()
        try:  # what a restart of the memory-only broker does to the log
            await admin.delete_topics([topic])
            await admin.create_topics([NewTopic(topic, CONTACT_EVENTS.partitions, 1)])
        finally:
            await admin.close()

        with pytest.raises(IncompleteLog) as refused:
            await rebuild(settings, quiet_seconds=0.5)
        message = str(refused.value)
        assert "`contacts republish contact-events`" in message, message
        assert "4 of 4 contacts would be missing or older" in message, message
        assert "profiles had consumed partition" in message and "the log now ends at 0" in message, message
        assert target not in schemas(isolation)  # nothing left behind

        for name, value in isolation.env().items():
            monkeypatch.setenv(name, value)
        assert await asyncio.to_thread(main, ["republish", "contact-events"]) == 0
        assert f"republished {len(emails)} contact events" in capsys.readouterr().out

        summary = await rebuild(settings, quiet_seconds=0.5)
        assert (summary.messages, summary.applied, summary.profiles) == (len(emails), len(emails), 4)
    finally:
        drop(isolation, target, *([retired] if retired else []))
    assert {live} <= schemas(isolation)
