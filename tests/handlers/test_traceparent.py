"""One trace per import from the row to the profile snapshot: the W3C ``traceparent`` a row event carries goes onto
the contact event identity stores and publishes for it, and onto the snapshot profiles publishes for that contact
(identity's subscriber through the in-memory broker, the relay's own message builder, profiles' projection; the real
PostgreSQL, no broker)."""

from __future__ import annotations

import psycopg
import pytest

from ops.local_postgres import libpq_url
from services.profiles.handlers import ProfilesTopics, project
from shared import topics
from shared.consumer import Delivery
from shared.db import create_engine
from shared.lifecycle import relay_channel
from shared.outbox_batches import unpack
from shared.producer import OutgoingMessage
from shared.tracing import header_of, trace_id_of
from tests.support.identity import contact_event_messages, identity_in_memory, row_messages
from tests.support.isolation import Isolation
from tests.support.memory_broker import MemoryLog, deliver

pytestmark = pytest.mark.integration

IMPORT_A = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
IMPORT_B = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def traced(messages: list[OutgoingMessage], traceparent: str) -> list[OutgoingMessage]:
    return [m._replace(headers=[*m.headers, ("traceparent", traceparent.encode())]) for m in messages]


def trace_of(message: OutgoingMessage) -> str | None:
    return trace_id_of(header_of(message.headers))


def profiles_outbox(isolation: Isolation) -> list[OutgoingMessage]:
    with psycopg.connect(libpq_url(isolation.database_url)) as conn:
        rows = conn.execute(f'SELECT messages FROM "{isolation.schema("profiles")}".outbox_batches ORDER BY position')
        return [message for (packed,) in rows for message in unpack(packed)]


async def test_the_rows_trace_reaches_its_contact_event_and_profile_snapshot(isolation: Isolation) -> None:
    isolation.migrate(("identity", "profiles"))
    rows = [*traced(row_messages(isolation, "imp-a", ["ann@x.io", "bob@x.io"]), IMPORT_A),
            *traced(row_messages(isolation, "imp-b", ["cy@x.io"]), IMPORT_B)]
    expected = {"ann@x.io": trace_id_of(IMPORT_A), "bob@x.io": trace_id_of(IMPORT_A), "cy@x.io": trace_id_of(IMPORT_B)}
    async with identity_in_memory(isolation) as identity:
        await deliver(identity, MemoryLog().append(rows))

    contact_events = contact_event_messages(isolation)
    email_of = {m.key: email for m in contact_events for email in expected if email.encode() in m.value}
    assert sorted(email_of.values()) == sorted(expected)
    assert {email_of[m.key]: trace_of(m) for m in contact_events} == expected

    schema = isolation.schema("profiles")
    engine = create_engine(isolation.database_url, schema=schema)
    try:
        applied = await project(
            engine, MemoryLog().append(contact_events), topics=ProfilesTopics.qualified(isolation.topic_prefix),
            delivery=Delivery(service="profiles", group=isolation.consumer_group("profiles"),
                              bootstrap_servers=isolation.kafka_bootstrap, channel=relay_channel(schema)),
        )
    finally:
        await engine.dispose()
    assert applied == len(contact_events)
    snapshots = [m for m in profiles_outbox(isolation) if m.topic == isolation.topic(topics.PROFILE_UPDATES)]
    assert len(snapshots) == len(email_of) and {m.key for m in snapshots} == set(email_of)
    assert {email_of[m.key]: trace_of(m) for m in snapshots} == expected
