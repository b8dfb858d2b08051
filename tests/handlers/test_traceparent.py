"""One trace per import from the row to the profile snapshot and the suggestions: the W3C ``traceparent`` a row event
carries goes onto the contact event identity stores and publishes for it, onto the snapshot profiles publishes for
that contact, and onto the suggestions enrichment's providers make for it (identity's subscriber through the
in-memory broker, the relay's own message builder, profiles' projection, enrichment's fold and one worker turn; the
real PostgreSQL, no broker)."""

from __future__ import annotations

import psycopg
import pytest

from ops.local_postgres import libpq_url
from services.enrichment.providers import EmailDomainCompany, EmailLocalPartName
from services.enrichment.service import EnrichmentTopics, fold_contact_events
from services.enrichment.worker import Pace, Worker
from services.profiles.service import ProfilesTopics, project
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


def outbox(isolation: Isolation, service: str) -> list[OutgoingMessage]:
    with psycopg.connect(libpq_url(isolation.database_url)) as conn:
        rows = conn.execute(f'SELECT messages FROM "{isolation.schema(service)}".outbox_batches ORDER BY position')
        return [message for (packed,) in rows for message in unpack(packed)]


async def test_the_rows_trace_reaches_its_contact_event_profile_snapshot_and_suggestions(isolation: Isolation) -> None:
    isolation.migrate(("identity", "profiles", "enrichment"))
    ann, bob, cy = "ann.lee@acme.example", "bob.stone@acme.example", "cy.young@initech.example"
    rows = [*traced(row_messages(isolation, "imp-a", [ann, bob]), IMPORT_A),
            *traced(row_messages(isolation, "imp-b", [cy]), IMPORT_B)]
    expected = {ann: trace_id_of(IMPORT_A), bob: trace_id_of(IMPORT_A), cy: trace_id_of(IMPORT_B)}
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
    snapshots = [m for m in outbox(isolation, "profiles") if m.topic == isolation.topic(topics.PROFILE_UPDATES)]
    assert len(snapshots) == len(email_of) and {m.key for m in snapshots} == set(email_of)
    assert {email_of[m.key]: trace_of(m) for m in snapshots} == expected

    await enrichment_turn(isolation, contact_events)
    suggested = [m for m in outbox(isolation, "enrichment") if m.topic == isolation.topic(topics.ENRICHMENTS)]
    assert len(suggested) == len(email_of) and {m.key for m in suggested} == set(email_of)
    assert {email_of[m.key]: trace_of(m) for m in suggested} == expected


async def enrichment_turn(isolation: Isolation, contact_events: list[OutgoingMessage]) -> None:
    """enrichment folds the contact events, then its worker runs the offline providers once."""
    schema = isolation.schema("enrichment")
    engine = create_engine(isolation.database_url, schema=schema)
    prefix = isolation.topic_prefix
    try:
        async with engine.begin() as conn:
            folded = await fold_contact_events(
                conn, MemoryLog().append(contact_events),
                topics=EnrichmentTopics(contact_events=topics.CONTACT_EVENTS.qualified(prefix),
                                        enrichments=topics.ENRICHMENTS.qualified(prefix),
                                        attendee_statements=topics.ATTENDEE_STATEMENTS.qualified(prefix),
                                        dead_letters=topics.dead_letter_topic("enrichment").qualified(prefix)),
                delivery=Delivery(service="enrichment", group=isolation.consumer_group("enrichment"),
                                  bootstrap_servers=isolation.kafka_bootstrap, channel=relay_channel(schema)),
            )
        assert folded.due == 3
        worker = Worker(engine, providers=[EmailLocalPartName(), EmailDomainCompany()],
                        topic=topics.ENRICHMENTS.qualified(prefix), channel=relay_channel(schema),
                        lock_name=f"{schema}.worker", pace=Pace(busy_rate=100, idle_rate=100, quiet_seconds=0),
                        batch_size=10, poll_seconds=0.1)
        assert (await worker.run_once()).events == 3
    finally:
        await engine.dispose()
