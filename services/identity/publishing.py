"""What identity publishes, read from where it is stored anyway: contact events from the event store and row
answers from their table, each by position after its relay cursor (envelope attributes are columns: nothing is
stored twice), plus the outbox (dead letters, repeated answers)."""

from __future__ import annotations

from typing import Any

from services.identity.service import ANSWER_TYPE, SOURCE, IdentityTopics
from shared.envelope import HeaderTemplate
from shared.inbox import derived_id
from shared.kafka import OutgoingMessage
from shared.relay import CursorSource, OutboxSource, RelaySource
from shared.wire import CONTACT_EVENT_STRUCTS, TYPE_OF_STRUCT

CONTACT_EVENTS = (
    "SELECT position, contact_id::text, version, type, payload::text, recorded_at, correlation_id, causation_id "
    "FROM contact_events WHERE position > %(after)s ORDER BY position LIMIT %(n)s"
)
ROW_ANSWERS = (
    "SELECT position, import_id, payload::text, recorded_at, causation_id FROM row_answers "
    "WHERE position > %(after)s ORDER BY position LIMIT %(n)s"
)


def relay_sources(topics: IdentityTopics) -> list[RelaySource]:
    templates = {
        TYPE_OF_STRUCT[struct]: HeaderTemplate(type=TYPE_OF_STRUCT[struct], source=SOURCE)
        for struct in CONTACT_EVENT_STRUCTS
    }
    answers = HeaderTemplate(type=ANSWER_TYPE, source=SOURCE)
    events_topic, answers_topic = topics.contact_events, topics.row_outcomes

    def contact_event(row: Any) -> OutgoingMessage:
        _, contact_id, version, event_type, payload, recorded_at, correlation_id, causation_id = row
        headers = templates[event_type].build(  # the id is the event's place in its stream: stable on re-publish
            id=f"{contact_id}:{version}", time=recorded_at, subject=contact_id, correlation_id=correlation_id,
            causation_id=causation_id,
        )
        return OutgoingMessage(events_topic, contact_id.encode(), payload.encode(), headers)

    def row_answer(row: Any) -> OutgoingMessage:
        position, import_id, payload, recorded_at, causation_id = row
        headers = answers.build(id=derived_id("row-answer", position), time=recorded_at, subject=import_id,
                                correlation_id=import_id, causation_id=causation_id)
        return OutgoingMessage(answers_topic, import_id.encode(), payload.encode(), headers)

    return [
        CursorSource("contact-events", table="contact_events", query=CONTACT_EVENTS, to_message=contact_event),
        CursorSource("row-answers", table="row_answers", query=ROW_ANSWERS, to_message=row_answer),
        OutboxSource(),
    ]
