"""The consuming side of exactly-once in effect: decode a batch, claim its messages' tracking records in the
caller's transaction, and turn what can never be processed into dead letters."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from aiokafka import ConsumerRecord
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.envelope import Envelope
from shared.events import Event
from shared.kafka import OutgoingMessage, UndecodableMessage, dead_letter, decode
from shared.tracking import claim_new_messages

E = TypeVar("E", bound=Event)

DERIVED_ID_NAMESPACE = uuid.UUID("0c9a7c52-3f0e-4bb4-8a55-1d2a3c4b5e6f")


def derived_id(*parts: object, namespace: uuid.UUID = DERIVED_ID_NAMESPACE) -> str:
    """Ids of what a message causes are derived from it, so a retried batch produces identical messages.
    Equal to ``str(uuid.uuid5(namespace, "/".join(parts)))``, computed without building ``UUID`` objects
    (a third of the cost; it runs once or twice per row)."""
    digest = bytearray(hashlib.sha1(namespace.bytes + "/".join(map(str, parts)).encode()).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = digest.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _tracking_id(record: ConsumerRecord) -> str:
    """An undecodable record may have no id of its own; its position names it."""
    return f"{record.topic}/{record.partition}/{record.offset}"


@dataclass(frozen=True)
class DecodedBatch(Generic[E]):
    messages: list[tuple[Envelope, E]]
    undecodable: list[tuple[ConsumerRecord, UndecodableMessage]]


def decode_batch(
    records: Sequence[ConsumerRecord],
    accepted: tuple[type[E], ...] | Mapping[str, tuple[type[E], ...]],
    *,
    validate: Callable[[E], None] | None = None,
) -> DecodedBatch[E]:
    """Decode every record; ``accepted`` is the event types allowed, or a mapping topic -> types when one
    subscriber reads several topics (a type on the wrong topic is undecodable there). ``validate`` may refuse
    a decoded event for good by raising ``UndecodableMessage`` (a rule the payload schema cannot state)."""
    messages: list[tuple[Envelope, E]] = []
    undecodable: list[tuple[ConsumerRecord, UndecodableMessage]] = []
    for record in records:
        try:
            types = accepted.get(record.topic, ()) if isinstance(accepted, Mapping) else accepted
            envelope, event = decode(record, types)
            if validate is not None:
                validate(event)  # type: ignore[arg-type]
        except UndecodableMessage as error:
            undecodable.append((record, error))
            continue
        messages.append((envelope, event))  # type: ignore[arg-type]
    return DecodedBatch(messages, undecodable)


@dataclass(frozen=True)
class ClaimedBatch(Generic[E]):
    """What this consumer has not applied before (each message once, in batch order), and the dead letters
    to enqueue for the undecodable records it has not dead-lettered before."""

    fresh: list[tuple[Envelope, E]]
    dead_letters: list[OutgoingMessage]


async def claim_batch(
    conn: AsyncConnection, batch: DecodedBatch[E], *, consumer: str, dead_letter_topic: str
) -> ClaimedBatch[E]:
    ids = [envelope.id for envelope, _ in batch.messages] + [_tracking_id(r) for r, _ in batch.undecodable]
    new_ids = await claim_new_messages(conn, consumer=consumer, message_ids=ids)
    fresh: list[tuple[Envelope, E]] = []
    for envelope, event in batch.messages:
        if envelope.id in new_ids:
            new_ids.discard(envelope.id)  # the same message twice in one batch is applied once
            fresh.append((envelope, event))
    dead = [
        dead_letter(record, error, topic=dead_letter_topic)
        for record, error in batch.undecodable
        if _tracking_id(record) in new_ids
    ]
    return ClaimedBatch(fresh, dead)
