"""The event models on the wire, for paths that hold a model (interactive paths, tools, tests; the bulk paths use
``shared.wire``): encoding an event in its CloudEvents envelope, decoding a record into one or saying exactly why
not, and the dead letter of a record that can never be processed."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from aiokafka import ConsumerRecord
from pydantic import ValidationError

from shared.envelope import Envelope, Headers, MissingHeaderError
from shared.events import EVENTS_BY_TYPE, Event
from shared.producer import OutgoingMessage


class UndecodableMessage(Exception):
    """A record that can never be processed: wrong type, bad JSON, invalid payload. Goes to dead letters."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail


def encode(event: Event, envelope: Envelope, *, topic: str, key: str | None) -> OutgoingMessage:
    if envelope.type != event.TYPE:
        raise ValueError(f"envelope type {envelope.type!r} does not match event type {event.TYPE!r}")
    return OutgoingMessage(
        topic=topic,
        key=key.encode() if key is not None else None,
        value=event.model_dump_json().encode(),
        headers=envelope.to_headers(),
    )


def decode(record: ConsumerRecord, accepted: Sequence[type[Event]]) -> tuple[Envelope, Event]:
    """Envelope and typed event of one record, or ``UndecodableMessage`` saying exactly why not."""
    try:
        envelope = Envelope.from_headers(record.headers or ())
    except (MissingHeaderError, ValueError, UnicodeError) as error:
        raise UndecodableMessage("BAD_ENVELOPE", str(error)) from error
    model = EVENTS_BY_TYPE.get(envelope.type)
    if model is None or model not in accepted:
        raise UndecodableMessage("UNEXPECTED_TYPE", f"type {envelope.type!r} is not accepted on {record.topic}")
    try:
        return envelope, model.model_validate_json(record.value or b"")
    except ValidationError as error:
        raise UndecodableMessage("INVALID_PAYLOAD", str(error)) from error
    except Exception as error:  # anything else about these bytes is just as permanent
        raise UndecodableMessage("INVALID_PAYLOAD", repr(error)) from error


def dead_letter(record: ConsumerRecord, error: UndecodableMessage, *, topic: str) -> OutgoingMessage:
    """The original bytes and headers, plus headers naming where it came from and why it failed."""
    headers: Headers = list(record.headers or ())
    headers += [
        ("dlq_error_code", error.code.encode()),
        ("dlq_error", error.detail[:4000].encode()),
        ("dlq_original_topic", record.topic.encode()),
        ("dlq_original_partition", str(record.partition).encode()),
        ("dlq_original_offset", str(record.offset).encode()),
        ("dlq_failed_at", datetime.now(UTC).isoformat().encode()),
    ]
    return OutgoingMessage(topic=topic, key=record.key, value=record.value or b"", headers=headers)
