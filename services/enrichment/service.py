"""enrichment's use case: fold a batch of contact events into the per-contact state in one transaction, and
publish the display names that changed (one outbox row for the whole batch)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import msgspec
from aiokafka import ConsumerRecord
from sqlalchemy.ext.asyncio import AsyncConnection

from services.enrichment import store
from services.enrichment.domain import ContactEvent, Resolution, plan_batch
from shared import wire
from shared.codec import UndecodableMessage, dead_letter
from shared.consumer import Delivery, header
from shared.envelope import HeaderTemplate, derived_id
from shared.outbox_batches import enqueue
from shared.producer import OutgoingMessage

SOURCE = "kagibag-contacts/enrichment"
DISPLAY_NAME_TYPE = wire.TYPE_OF_STRUCT[wire.DisplayNameResolved]
_contact_events = wire.Decoder(wire.CONTACT_EVENT_STRUCTS)
_display_names = HeaderTemplate(type=DISPLAY_NAME_TYPE, source=SOURCE)


@dataclass(frozen=True)
class EnrichmentTopics:
    contact_events: str
    enrichments: str
    dead_letters: str


@dataclass(frozen=True)
class Enriched:
    events: int
    display_names: int
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


def _display_name_message(resolution: Resolution, cause: ConsumerRecord, topics: EnrichmentTopics) -> OutgoingMessage:
    event = wire.DisplayNameResolved(contact_id=resolution.contact_id, display_name=resolution.display_name,
                                     contact_version=resolution.contact_version)
    correlation = header(cause, "ce_correlationid")
    cause_id = header(cause, "ce_id") or b""
    headers = _display_names.build(
        id=derived_id("display-name", event.contact_id, event.contact_version), time=datetime.now(UTC),
        subject=event.contact_id, correlation_id=(correlation or cause_id).decode(), causation_id=cause_id.decode(),
    )
    return OutgoingMessage(topics.enrichments, event.contact_id.encode(), wire.encode(event), headers)


async def enrich(
    conn: AsyncConnection, records: Sequence[ConsumerRecord], *, topics: EnrichmentTopics, delivery: Delivery
) -> Enriched:
    """Apply ``records`` exactly once in effect in the caller's transaction: the group's positions advance past
    them, redelivered events are stale by their version, and what changed is published through the outbox."""
    fresh = await delivery.claim(conn, records)
    causes: dict[tuple[str, int], ConsumerRecord] = {}
    todo: list[ContactEvent] = []
    dead: list[OutgoingMessage] = []
    for record in fresh:
        try:
            event = _decode(record)
        except UndecodableMessage as error:
            dead.append(dead_letter(record, error, topic=topics.dead_letters))
            continue
        causes.setdefault((event.contact_id, event.version), record)
        todo.append(event)
    known = await store.lock_contacts(conn, [event.contact_id for event in todo])
    plan = plan_batch(known, todo)
    await store.save_contacts(conn, list(plan.changed.values()))
    names = [_display_name_message(r, causes[(r.contact_id, r.contact_version)], topics) for r in plan.resolutions]
    await enqueue(conn, names + dead, channel=delivery.channel)
    return Enriched(events=len(todo), display_names=len(names), dead_letters=dead)
