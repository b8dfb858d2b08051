"""ingest's use case on identity's answers: row outcomes, decoded with the fast codec and checked, counted into
their imports in one transaction that also stores the group's positions; what can never be stored goes to
ingest's dead-letter topic through the outbox."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

import msgspec
from aiokafka import ConsumerRecord
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.ingest import outcomes
from shared import wire
from shared.codec import UndecodableMessage, dead_letter
from shared.consumer import Delivery, header
from shared.outbox_batches import enqueue
from shared.producer import OutgoingMessage
from shared.transactions import with_retries

MAX_ROW_NUMBER = 2**31 - 1
ANSWER_TYPE = wire.TYPE_OF_STRUCT[wire.ImportRowsProcessed]
_answers = wire.Decoder((wire.ImportRowsProcessed,))


@dataclass(frozen=True)
class IngestTopics:
    import_rows: str
    bulk_import_rows: str
    row_outcomes: str
    dead_letters: str


@dataclass
class Answers:
    """A batch of outcome messages as decoded, and the dead letters of what cannot be stored."""

    messages: list[wire.ImportRowsProcessed] = field(default_factory=list)
    dead_letters: list[OutgoingMessage] = field(default_factory=list)


def check_storable(message: wire.ImportRowsProcessed, *, known_ids: set[str]) -> None:
    """Refuse (``UndecodableMessage``) a message of outcomes ingest cannot store: beyond the contract, the
    import id must be a UUID and every row number fit the table, or the batch's transaction would fail on every
    redelivery. One bad row refuses the whole message: its rows are stored together or not at all.
    ``known_ids`` holds the import ids already checked (a batch's messages mostly share a few)."""
    if message.import_id not in known_ids:
        try:
            uuid.UUID(message.import_id)
        except ValueError as error:
            problem = f"import_id {message.import_id[:100]!r} is not a UUID"
            raise UndecodableMessage("INVALID_PAYLOAD", problem) from error
        known_ids.add(message.import_id)
    out_of_range = [row.row_number for row in message.rows if not 1 <= row.row_number <= MAX_ROW_NUMBER]
    if out_of_range:
        shown = ", ".join(map(str, out_of_range[:5])) + (", ..." if len(out_of_range) > 5 else "")
        problem = (
            f"row_number {shown} is out of range (1..{MAX_ROW_NUMBER}) in {len(out_of_range)} of the "
            f"message's {len(message.rows)} rows; none of its rows is stored"
        )
        raise UndecodableMessage("INVALID_PAYLOAD", problem)


def take_in(records: Sequence[ConsumerRecord], *, dead_letter_topic: str) -> Answers:
    """Decode a batch of outcome messages; a record without ``ce_id``/``ce_type``/``ce_source``, of another
    type, with bytes that are not the event, or that cannot be stored (``check_storable``) is a dead letter."""
    answers = Answers()
    known_ids: set[str] = set()
    for record in records:
        try:
            for required in ("ce_id", "ce_source"):
                if header(record, required) is None:
                    raise UndecodableMessage("BAD_ENVELOPE", f"missing header {required}")
            event_type = (header(record, "ce_type") or b"").decode(errors="replace")
            if not event_type:
                raise UndecodableMessage("BAD_ENVELOPE", "missing header ce_type")
            if event_type != ANSWER_TYPE:
                unexpected = f"type {event_type[:200]!r} is not accepted on {record.topic}"
                raise UndecodableMessage("UNEXPECTED_TYPE", unexpected)
            message = _answers.decode(event_type, record.value or b"")
            check_storable(message, known_ids=known_ids)
            answers.messages.append(message)
        except UndecodableMessage as error:
            answers.dead_letters.append(dead_letter(record, error, topic=dead_letter_topic))
        except (msgspec.ValidationError, msgspec.DecodeError, UnicodeError, ValueError) as error:
            problem = UndecodableMessage("INVALID_PAYLOAD", str(error))
            answers.dead_letters.append(dead_letter(record, problem, topic=dead_letter_topic))
    return answers


@dataclass(frozen=True)
class Applied:
    messages: int
    rows: int
    dead_letters: list[OutgoingMessage]
    finished: list[outcomes.Progress]


async def apply_answers(
    engine: AsyncEngine, records: Sequence[ConsumerRecord], *, topics: IngestTopics, delivery: Delivery
) -> Applied:
    """Apply a batch exactly once in effect: the group's positions, the outcomes and the dead letters are
    written in one transaction (tried again after a deadlock); a redelivered batch is skipped by its offsets, and
    a row answered again in a later message keeps its first outcome."""

    async def count(conn: AsyncConnection) -> Applied:
        fresh = await delivery.claim(conn, records)
        answers = take_in(fresh, dead_letter_topic=topics.dead_letters)
        progress = await outcomes.count_outcomes(conn, answers.messages)
        await enqueue(conn, answers.dead_letters, channel=delivery.channel)
        return Applied(
            messages=len(answers.messages),
            rows=sum(len(message.rows) for message in answers.messages),
            dead_letters=answers.dead_letters,
            finished=[item for item in progress if item.finished_now],
        )

    return await with_retries(engine, count, event="row_outcomes.retry")
