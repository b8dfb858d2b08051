"""enrichment's consumer: fold a batch of contact events into what enrichment keeps per contact, in one
transaction, and mark the contacts the providers should run for. Nothing else happens per event: the providers run
behind, in the paced worker (``services.enrichment.worker``), so an import never waits for them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import msgspec
from aiokafka import ConsumerRecord
from sqlalchemy.ext.asyncio import AsyncConnection

from services.enrichment import store
from services.enrichment.domain import ContactEvent, inert, plan_batch
from shared import wire
from shared.codec import UndecodableMessage, dead_letter
from shared.consumer import Delivery, header
from shared.outbox_batches import enqueue
from shared.producer import OutgoingMessage
from shared.tracing import traceparents_by_key

SOURCE = "kagibag-contacts/enrichment"
_contact_events = wire.Decoder(wire.CONTACT_EVENT_STRUCTS)


@dataclass(frozen=True)
class EnrichmentTopics:
    contact_events: str
    enrichments: str
    attendee_statements: str
    dead_letters: str


@dataclass(frozen=True)
class Folded:
    events: int
    changed: int
    due: int
    dead_letters: list[OutgoingMessage]


def _decode(record: ConsumerRecord) -> ContactEvent:
    event_type = header(record, "ce_type")
    if event_type is None or header(record, "ce_id") is None:
        raise UndecodableMessage("BAD_ENVELOPE", "missing header ce_type or ce_id")
    kind = event_type.decode(errors="replace")
    if not _contact_events.accepts(kind):
        raise UndecodableMessage("UNEXPECTED_TYPE", f"type {kind!r} is not accepted on {record.topic}")
    try:
        event: ContactEvent = _contact_events.decode(kind, record.value or b"")
    except (msgspec.ValidationError, msgspec.DecodeError) as error:
        raise UndecodableMessage("INVALID_PAYLOAD", str(error)) from error
    return event


async def fold_contact_events(
    conn: AsyncConnection, records: Sequence[ConsumerRecord], *, topics: EnrichmentTopics, delivery: Delivery
) -> Folded:
    """Apply ``records`` exactly once in effect in the caller's transaction: the group's positions advance past
    them, redelivered events are stale by their version, and the changed people are written with one upsert
    that also marks those due for the providers."""
    fresh = await delivery.claim(conn, records)
    decoded: list[ContactEvent] = []
    dead: list[OutgoingMessage] = []
    for record in fresh:
        try:
            decoded.append(_decode(record))
        except UndecodableMessage as error:
            dead.append(dead_letter(record, error, topic=topics.dead_letters))
    organizers = await store.known_organizers(conn, (event.contact_id for event in decoded))
    todo = [event for event in decoded
            if (related := organizers.get(event.contact_id)) is None or not inert(event, related)]
    known = await store.load_people(conn, (event.contact_id for event in todo if event.contact_id in organizers))
    plan = plan_batch(known, todo)
    await store.save_people(conn, list(plan.changed.values()), due=plan.due, now=datetime.now(UTC),
                            traceparents=traceparents_by_key(fresh) if plan.due else None)
    await enqueue(conn, dead, channel=delivery.channel)
    return Folded(events=len(decoded), changed=len(plan.changed), due=len(plan.due), dead_letters=dead)
