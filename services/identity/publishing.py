"""What identity publishes, read from where it is stored anyway: contact events from the event store and row
answers from their table, each by position after its relay cursor (envelope attributes are columns: nothing is
stored twice), plus the outbox (dead letters, repeated answers)."""

from __future__ import annotations

from typing import Any

from services.identity.service import ANSWER_TYPE, SOURCE, IdentityTopics
from shared.envelope import cloud_event_headers
from shared.inbox import derived_id
from shared.kafka import OutgoingMessage
from shared.relay import CursorSource, OutboxSource, RelaySource

CONTACT_EVENTS = (
    "SELECT position, contact_id::text AS contact_id, version, type, payload::text AS payload, recorded_at, "
    "correlation_id, causation_id FROM contact_events WHERE position > :after ORDER BY position LIMIT :n"
)
ROW_ANSWERS = (
    "SELECT position, import_id, payload::text AS payload, recorded_at, causation_id FROM row_answers "
    "WHERE position > :after ORDER BY position LIMIT :n"
)


def contact_event_id(contact_id: str, version: int) -> str:
    """A contact event's message id: derived from its place in the stream, so a re-publish repeats it."""
    return derived_id(contact_id, version)


def relay_sources(topics: IdentityTopics) -> list[RelaySource]:
    def contact_event(row: Any) -> OutgoingMessage:
        headers = cloud_event_headers(
            id=contact_event_id(row.contact_id, row.version), type=row.type, source=SOURCE,
            time=row.recorded_at.isoformat(), subject=row.contact_id, correlation_id=row.correlation_id,
            causation_id=row.causation_id,
        )
        return OutgoingMessage(topics.contact_events, row.contact_id.encode(), row.payload.encode(), headers)

    def row_answer(row: Any) -> OutgoingMessage:
        headers = cloud_event_headers(
            id=derived_id("row-answer", row.position), type=ANSWER_TYPE, source=SOURCE,
            time=row.recorded_at.isoformat(), subject=row.import_id, correlation_id=row.import_id,
            causation_id=row.causation_id,
        )
        return OutgoingMessage(topics.row_outcomes, row.import_id.encode(), row.payload.encode(), headers)

    return [
        CursorSource("contact-events", table="contact_events", query=CONTACT_EVENTS, to_message=contact_event),
        CursorSource("row-answers", table="row_answers", query=ROW_ANSWERS, to_message=row_answer),
        OutboxSource(),
    ]
