"""identity's intake: the records of a batch turned into ``IncomingRecord``s with the fast codec (no pydantic
model or envelope per record), and what can never be applied turned into dead letters."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import msgspec
from aiokafka import ConsumerRecord

from services.identity.domain import IncomingRecord, Interaction, InvalidEmail, normalize_email
from shared import wire
from shared.codec import UndecodableMessage, dead_letter
from shared.producer import OutgoingMessage
from shared.tracing import TRACEPARENT

ROW_TYPE = wire.TYPE_OF_STRUCT[wire.ImportRowReceived]


@dataclass(frozen=True, slots=True)
class RowIntake:
    """An import row and where it came from: its message id, and the rows-topic partition it was read from."""

    record: IncomingRecord
    message_id: str
    import_id: str
    row_number: int
    partition: int
    traceparent: str | None


@dataclass(frozen=True, slots=True)
class StatementIntake:
    """What the person did or said: an interaction reported by a platform team, or their own statement as an
    attendee. Identified by its CloudEvents source and id."""

    record: IncomingRecord
    message_id: str
    source: str
    correlation_id: str | None
    traceparent: str | None


@dataclass
class Intake:
    """A batch in arrival order (rows and interactions interleaved as they came), and its dead letters."""

    items: list[RowIntake | StatementIntake] = field(default_factory=list)
    dead_letters: list[OutgoingMessage] = field(default_factory=list)


@lru_cache(maxsize=64)
def _time(value: bytes) -> datetime:
    """``ce_time`` of a row: every row of a batch shares one, so it is parsed once."""
    parsed = datetime.fromisoformat(value.decode())
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _text(value: bytes | None) -> str | None:
    return value.decode(errors="replace") if value else None


_rows = wire.Decoder((wire.ImportRowReceived,))
_interactions = wire.Decoder(wire.INTERACTION_STRUCTS)
_statements = wire.Decoder((wire.AttendeeStated,))
STATEMENT_TYPE = wire.TYPE_OF_STRUCT[wire.AttendeeStated]
ATTENDEE = wire.ContactSource(kind="attendee", organizer_id="")


def _row(record: ConsumerRecord, headers: dict[str, bytes]) -> RowIntake:
    row = _rows.decode(ROW_TYPE, record.value or b"")
    source = wire.ContactSource(
        kind="import", organizer_id=row.organizer_id, import_id=row.import_id, row_number=row.row_number,
        external_id=row.external_id, email_permission=row.email_permission,
    )
    fields = {"first_name": row.first_name, "last_name": row.last_name, "company": row.company,
              "title": row.title, "phone": row.phone}
    time = headers.get("ce_time")
    incoming = IncomingRecord(email=row.email, fields=fields, source=source,  # type: ignore[arg-type]
                              occurred_at=_time(time) if time else datetime.now(UTC))
    return RowIntake(incoming, headers["ce_id"].decode(), row.import_id, row.row_number, record.partition,
                     _text(headers.get(TRACEPARENT)))


def _interaction(record: ConsumerRecord, headers: dict[str, bytes], event_type: str) -> StatementIntake:
    event: Any = _interactions.decode(event_type, record.value or b"")
    try:
        normalize_email(event.email)
    except InvalidEmail as error:
        raise UndecodableMessage("INVALID_EMAIL", str(error)) from error
    message_id = headers["ce_id"].decode()
    profile = event if isinstance(event, wire.AttendeeProfileCompleted) else None
    purchase = event if isinstance(event, wire.TicketPurchased) else None
    account = event.user_account_id if isinstance(event, wire.UserAccountLinked) else None
    fields: dict[str, str | None] = {"first_name": event.first_name, "last_name": event.last_name}
    if profile is not None:
        fields |= {"company": profile.company, "title": profile.title, "phone": profile.phone}
    incoming = IncomingRecord(
        email=event.email,
        fields=fields,  # type: ignore[arg-type]
        source=wire.ContactSource(kind="interaction", organizer_id=event.organizer_id, interaction_id=message_id),
        occurred_at=event.occurred_at,
        bio=profile.bio if profile is not None else None,
        social_links=dict(profile.social_links) if profile is not None else {},
        user_account_id=account,
        interaction=Interaction(
            kind=wire.KIND_OF_STRUCT[type(event)], interaction_id=message_id,
            kagibag_event_id=event.kagibag_event_id,
            order_id=purchase.order_id if purchase is not None else None,
            ticket_count=purchase.ticket_count if purchase is not None else None,
            user_account_id=account,
        ),
    )
    return StatementIntake(incoming, message_id, headers["ce_source"].decode(),
                           _text(headers.get("ce_correlationid")), _text(headers.get(TRACEPARENT)))


def _statement(record: ConsumerRecord, headers: dict[str, bytes]) -> StatementIntake:
    stated: Any = _statements.decode(STATEMENT_TYPE, record.value or b"")
    try:
        normalize_email(stated.email)
    except InvalidEmail as error:
        raise UndecodableMessage("INVALID_EMAIL", str(error)) from error
    fields = {"first_name": stated.first_name, "last_name": stated.last_name, "company": stated.company,
              "title": stated.title, "phone": stated.phone}
    incoming = IncomingRecord(email=stated.email, fields=fields, source=ATTENDEE,  # type: ignore[arg-type]
                              occurred_at=stated.occurred_at, bio=stated.bio, social_links=dict(stated.social_links))
    return StatementIntake(incoming, headers["ce_id"].decode(), headers["ce_source"].decode(),
                           _text(headers.get("ce_correlationid")), _text(headers.get(TRACEPARENT)))


def take_in(
    records: Sequence[ConsumerRecord], *, rows_topics: tuple[str, ...], statements_topic: str, dead_letter_topic: str
) -> Intake:
    """Decode a batch. Rows come from ``rows_topics`` (both lanes), attendees' statements from ``statements_topic``,
    interactions from the other topic; a record of a type not accepted on its topic, without
    ``ce_id``/``ce_type``/``ce_source``, with bytes that are not its event, or a statement whose email identifies
    no one, becomes a dead letter (an import row with such an email gets an ``error`` answer instead)."""
    intake = Intake()
    for record in records:
        headers = dict(record.headers or ())
        try:
            for required in ("ce_id", "ce_type", "ce_source"):
                if not headers.get(required):
                    raise UndecodableMessage("BAD_ENVELOPE", f"missing header {required}")
            event_type = headers["ce_type"].decode(errors="replace")
            if record.topic in rows_topics and event_type == ROW_TYPE:
                intake.items.append(_row(record, headers))
            elif record.topic == statements_topic and event_type == STATEMENT_TYPE:
                intake.items.append(_statement(record, headers))
            elif record.topic not in (*rows_topics, statements_topic) and _interactions.accepts(event_type):
                intake.items.append(_interaction(record, headers, event_type))
            else:
                raise UndecodableMessage("UNEXPECTED_TYPE", f"type {event_type!r} is not accepted on {record.topic}")
        except UndecodableMessage as error:
            intake.dead_letters.append(dead_letter(record, error, topic=dead_letter_topic))
        except (msgspec.ValidationError, msgspec.DecodeError, UnicodeError, ValueError) as error:
            problem = UndecodableMessage("INVALID_PAYLOAD", str(error))
            intake.dead_letters.append(dead_letter(record, problem, topic=dead_letter_topic))
    return intake
