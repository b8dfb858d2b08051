"""profiles' intake: the records of a batch of contact events turned into staging rows (``store.STAGE_COLUMNS``)
with the fast codec (no pydantic model or envelope per record), and what can never be applied into dead
letters."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec
from aiokafka import ConsumerRecord

from services.profiles.domain import statements
from shared import wire
from shared.codec import UndecodableMessage, dead_letter
from shared.producer import OutgoingMessage

_decoder = wire.Decoder(wire.CONTACT_EVENT_STRUCTS)
_json = msgspec.json.Encoder()
TYPES: dict[type[wire.Wire], str] = {
    wire.ContactCreated: "created", wire.ContactUpdated: "updated", wire.ContactMatched: "matched",
    wire.InteractionRecorded: "interaction",
}


@dataclass
class Intake:
    """A batch's contact events as staging rows, in arrival order, and its dead letters."""

    staged: list[tuple[Any, ...]] = field(default_factory=list)
    dead_letters: list[OutgoingMessage] = field(default_factory=list)


def stage_row(seq: int, event: Any, *, message_id: str, correlation_id: str | None) -> tuple[Any, ...]:
    """One contact event (a wire struct) as the merge stages it."""
    source = event.source
    written = getattr(event, "email_original", None)
    recorded = isinstance(event, wire.InteractionRecorded)
    return (
        seq, message_id, correlation_id, event.contact_id, event.version, TYPES[type(event)], source.kind,
        source.organizer_id, source.import_id if source.kind == "import" else source.interaction_id,
        source.email_permission, event.occurred_at, event.email if isinstance(event, wire.ContactCreated) else None,
        (written.strip() or None) if written else None, _json.encode(statements(event)).decode(),
        event.interaction_id if recorded else None, event.kind if recorded else None,
        event.kagibag_event_id if recorded else None, event.order_id if recorded else None,
        event.ticket_count if recorded else None,
    )


def _header(headers: Sequence[tuple[str, bytes]], name: str) -> str | None:
    value = next((value for key, value in headers if key == name), None)
    return value.decode(errors="replace") if value is not None else None


def take_in(records: Sequence[ConsumerRecord], *, dead_letter_topic: str) -> Intake:
    """Decode a batch of the contact log. A record without ``ce_id``/``ce_type``, of a type that is not a contact
    event, or with bytes that are not its event becomes a dead letter."""
    intake = Intake()
    for seq, record in enumerate(records):
        headers = record.headers or ()
        try:
            message_id, event_type = _header(headers, "ce_id"), _header(headers, "ce_type")
            if message_id is None or event_type is None:
                raise UndecodableMessage("BAD_ENVELOPE", "missing header ce_id or ce_type")
            if not _decoder.accepts(event_type):
                raise UndecodableMessage("UNEXPECTED_TYPE", f"type {event_type!r} is not accepted on {record.topic}")
            event = _decoder.decode(event_type, record.value or b"")
            intake.staged.append(stage_row(seq, event, message_id=message_id,
                                           correlation_id=_header(headers, "ce_correlationid")))
        except UndecodableMessage as error:
            intake.dead_letters.append(dead_letter(record, error, topic=dead_letter_topic))
        except (msgspec.ValidationError, msgspec.DecodeError, UnicodeError, ValueError) as error:
            problem = UndecodableMessage("INVALID_PAYLOAD", str(error))
            intake.dead_letters.append(dead_letter(record, problem, topic=dead_letter_topic))
    return intake
