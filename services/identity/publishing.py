"""What identity publishes, read from where it is stored anyway: contact events from the event store and row
answers from their table, each by position after its relay cursor (envelope attributes are columns: nothing is
stored twice), plus the outbox (dead letters, repeated answers)."""

from __future__ import annotations

from typing import Any

from services.identity.service import ANSWER_TYPE, SOURCE, IdentityTopics
from shared.envelope import HeaderTemplate, derived_id
from shared.producer import OutgoingMessage
from shared.relay import CursorSource, OutboxSource, RelaySource
from shared.wire import CONTACT_EVENT_STRUCTS, TYPE_OF_STRUCT

EVENT_COLUMNS = ("position, contact_id::text, version, type, payload::text, recorded_at, correlation_id, causation_id, "
                 "traceparent")
CONTACT_EVENTS = f"SELECT {EVENT_COLUMNS} FROM contact_events WHERE position > %(after)s ORDER BY position LIMIT %(n)s"
ROW_ANSWERS = (
    "SELECT position, import_id, payload::text, recorded_at, causation_id, traceparent FROM row_answers "
    "WHERE position > %(after)s ORDER BY position LIMIT %(n)s"
)


class ContactEventMessages:
    """A row of the event store (``CONTACT_EVENTS``' columns) as the message published on the contact log: the
    same for the relay and for ``contacts republish``, so consumers recognise a re-published event."""

    def __init__(self, topic: str) -> None:
        self._topic = topic
        self._templates = {
            TYPE_OF_STRUCT[struct]: HeaderTemplate(type=TYPE_OF_STRUCT[struct], source=SOURCE)
            for struct in CONTACT_EVENT_STRUCTS
        }

    def __call__(self, row: Any) -> OutgoingMessage:
        _, contact_id, version, event_type, payload, recorded_at, correlation_id, causation_id, traceparent = row
        headers = self._templates[event_type].build(  # the id is the event's place in its stream: stable
            id=f"{contact_id}:{version}", time=recorded_at, subject=contact_id, correlation_id=correlation_id,
            causation_id=causation_id, traceparent=traceparent,
        )
        return OutgoingMessage(self._topic, contact_id.encode(), payload.encode(), headers)


def relay_sources(topics: IdentityTopics) -> list[RelaySource]:
    answers = HeaderTemplate(type=ANSWER_TYPE, source=SOURCE)
    answers_topic = topics.row_outcomes
    contact_event = ContactEventMessages(topics.contact_events)

    def row_answer(row: Any) -> OutgoingMessage:
        position, import_id, payload, recorded_at, causation_id, traceparent = row
        headers = answers.build(id=derived_id("row-answer", position), time=recorded_at, subject=import_id,
                                correlation_id=import_id, causation_id=causation_id, traceparent=traceparent)
        return OutgoingMessage(answers_topic, import_id.encode(), payload.encode(), headers)

    return [
        CursorSource("contact-events", table="contact_events", query=CONTACT_EVENTS, to_message=contact_event),
        CursorSource("row-answers", table="row_answers", query=ROW_ANSWERS, to_message=row_answer),
        OutboxSource(),
    ]
