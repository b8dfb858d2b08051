"""enrichment against the real broker and PostgreSQL: contact events in, display names out, exactly once in
effect, poison messages dead-lettered."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import psycopg
import pytest

from services.enrichment.app import create_app
from services.enrichment.config import EnrichmentSettings
from services.local_postgres import libpq_url
from shared import topics
from shared.codec import encode
from shared.envelope import Envelope
from shared.events import (
    ContactCreatedV1,
    ContactEvent,
    ContactMatchedV1,
    ContactSource,
    ContactUpdatedV1,
    DisplayNameResolvedV1,
)
from shared.producer import OutgoingMessage
from tests.support.isolation import Isolation
from tests.support.kafka import Consumed, consume_quiet, consume_until, publish
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

NOW = datetime(2026, 3, 1, tzinfo=UTC)
SOURCE = ContactSource(kind="import", organizer_id="org-a", import_id="imp-1", row_number=1)


def created(contact_id: str, email: str, **fields: str) -> ContactCreatedV1:
    return ContactCreatedV1(
        contact_id=contact_id,
        version=1,
        occurred_at=NOW,
        source=SOURCE,
        email=email,
        email_original=email,
        fields=fields,
    )  # type: ignore[arg-type]


def updated(contact_id: str, version: int, **changes: str) -> ContactUpdatedV1:
    return ContactUpdatedV1(
        contact_id=contact_id, version=version, occurred_at=NOW, source=SOURCE, changes=changes
    )  # type: ignore[arg-type]


def matched(contact_id: str, version: int) -> ContactMatchedV1:
    return ContactMatchedV1(contact_id=contact_id, version=version, occurred_at=NOW, source=SOURCE)


def as_identity(isolation: Isolation, event: ContactEvent) -> tuple[OutgoingMessage, Envelope]:
    """The message identity would publish: keyed by contact id, with its own CloudEvents envelope."""
    envelope = Envelope(
        type=event.TYPE,
        source="kagibag-contacts/identity",
        subject=event.contact_id,
        correlation_id=f"import-{uuid.uuid4().hex[:6]}",
    )
    topic = isolation.topic(topics.CONTACT_EVENTS)
    return encode(event, envelope, topic=topic, key=event.contact_id), envelope


@contextlib.asynccontextmanager
async def enrichment_running(isolation: Isolation) -> AsyncIterator[None]:
    isolation.migrate(("enrichment",))
    settings = EnrichmentSettings(
        db_schema=isolation.schema("enrichment"),
        consumer_group=isolation.consumer_group("enrichment"),
        platform=isolation.platform_settings(log_level="WARNING"),
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        yield


def names(seen: list[Consumed]) -> list[tuple[str, str, int]]:
    return [
        (e.contact_id, e.display_name, e.contact_version)
        for c in seen
        if isinstance(e := c.event, DisplayNameResolvedV1)
    ]


def contacts_table(isolation: Isolation) -> list[tuple[object, ...]]:
    with psycopg.connect(libpq_url(isolation.database_url)) as conn:
        return conn.execute(
            f"SELECT contact_id, email, first_name, last_name, display_name, version "
            f'FROM "{isolation.schema("enrichment")}".contacts ORDER BY contact_id'
        ).fetchall()


async def test_display_names_are_published_when_they_change_caused_by_the_contact_event(
    isolation: Isolation,
) -> None:
    enrichments = isolation.topic(topics.ENRICHMENTS)
    sent: dict[tuple[str, int], Envelope] = {}

    async def send(*events: ContactEvent) -> None:
        pairs = [as_identity(isolation, event) for event in events]
        sent.update(
            {(e.contact_id, e.version): envelope for e, (_, envelope) in zip(events, pairs, strict=True)}
        )
        await publish(isolation.kafka_bootstrap, [message for message, _ in pairs])

    async with enrichment_running(isolation):
        await send(
            created("c1", "jane.doe@example.com"),
            created("c2", "ann@example.com", first_name="Ann", last_name="Lee"),
        )
        await consume_until(isolation.kafka_bootstrap, enrichments, lambda seen: len(names(seen)) >= 2)
        await send(updated("c1", 2, first_name="Jane"), matched("c2", 2), updated("c1", 3, company="Acme"))
        await wait_until(lambda: contacts_table(isolation)[0][-1] == 3, timeout=15)
        seen = await consume_quiet(isolation.kafka_bootstrap, enrichments, quiet_seconds=1.5)

    assert sorted(names(seen)) == [("c1", "Jane", 2), ("c1", "jane.doe", 1), ("c2", "Ann Lee", 1)]
    assert [n for n in names(seen) if n[0] == "c1"] == [("c1", "jane.doe", 1), ("c1", "Jane", 2)]  # in order
    for consumed in seen:
        assert isinstance(consumed.event, DisplayNameResolvedV1) and consumed.envelope is not None
        cause = sent[(consumed.event.contact_id, consumed.event.contact_version)]
        assert consumed.key == consumed.event.contact_id
        assert consumed.envelope.causation_id == cause.id
        assert consumed.envelope.correlation_id == cause.correlation_id
        assert consumed.envelope.source == "kagibag-contacts/enrichment"
        assert consumed.envelope.subject == consumed.event.contact_id
    assert contacts_table(isolation) == [
        ("c1", "jane.doe@example.com", "Jane", None, "Jane", 3),
        ("c2", "ann@example.com", "Ann", "Lee", "Ann Lee", 2),
    ]


async def test_redelivered_and_stale_events_change_nothing(isolation: Isolation) -> None:
    enrichments = isolation.topic(topics.ENRICHMENTS)
    async with enrichment_running(isolation):
        messages = [
            as_identity(isolation, created("c1", "bo@example.com"))[0],
            as_identity(isolation, updated("c1", 2, last_name="Ray"))[0],
        ]
        await publish(isolation.kafka_bootstrap, messages)
        await wait_until(
            lambda: contacts_table(isolation) == [("c1", "bo@example.com", None, "Ray", "Ray", 2)], timeout=20
        )
        before = await consume_quiet(isolation.kafka_bootstrap, enrichments, quiet_seconds=1.5)

        stale = created("c1", "bo@example.com", first_name="Someone", last_name="Else")
        # the same messages again (same envelope ids), and an old version in a new message
        await publish(isolation.kafka_bootstrap, [*messages, as_identity(isolation, stale)[0]])
        marker = as_identity(isolation, created("c9", "marker@example.com"))[0]
        await publish(isolation.kafka_bootstrap, [marker])
        after = await consume_until(
            isolation.kafka_bootstrap, enrichments, lambda seen: any(n[0] == "c9" for n in names(seen))
        )
        after = await consume_quiet(isolation.kafka_bootstrap, enrichments, quiet_seconds=1.5)

    assert sorted(names(after)) == sorted([*names(before), ("c9", "marker", 1)])
    assert contacts_table(isolation)[0] == ("c1", "bo@example.com", None, "Ray", "Ray", 2)


async def test_an_undecodable_message_is_dead_lettered_and_the_rest_of_the_batch_applied(
    isolation: Isolation,
) -> None:
    topic = isolation.topic(topics.CONTACT_EVENTS)
    dead_letters = isolation.topic(topics.dead_letter_topic("enrichment"))
    garbage = OutgoingMessage(
        topic=topic,
        key=b"c-bad",
        value=b"{not json",
        headers=[
            ("ce_id", b"bad-1"),
            ("ce_type", ContactCreatedV1.TYPE.encode()),
            ("ce_source", b"somewhere"),
        ],
    )
    async with enrichment_running(isolation):
        await publish(
            isolation.kafka_bootstrap, [garbage, as_identity(isolation, created("c3", "cy@x.io"))[0]]
        )
        letters = await consume_until(isolation.kafka_bootstrap, dead_letters, lambda seen: len(seen) >= 1)
        await consume_until(
            isolation.kafka_bootstrap,
            isolation.topic(topics.ENRICHMENTS),
            lambda seen: ("c3", "cy", 1) in names(seen),
        )

    (letter,) = letters
    assert letter.record.value == b"{not json" and letter.key == "c-bad"
    assert letter.headers["dlq_error_code"] == b"INVALID_PAYLOAD"
    assert letter.headers["dlq_original_topic"] == topic.encode()
    assert letter.headers["ce_id"] == b"bad-1"


async def test_a_record_with_a_non_utf8_header_does_not_block_its_partition(isolation: Isolation) -> None:
    topic = isolation.topic(topics.CONTACT_EVENTS)
    bad_header = OutgoingMessage(
        topic=topic,
        key=b"c4",
        value=b"{}",
        headers=[("ce_id", b"\xff\xfe"), ("ce_type", b"x"), ("ce_source", b"s")],
    )
    async with enrichment_running(isolation):
        await publish(
            isolation.kafka_bootstrap, [bad_header, as_identity(isolation, created("c4", "d@x.io"))[0]]
        )
        await consume_until(
            isolation.kafka_bootstrap,
            isolation.topic(topics.ENRICHMENTS),
            lambda seen: ("c4", "d", 1) in names(seen),
            timeout=15,
        )
