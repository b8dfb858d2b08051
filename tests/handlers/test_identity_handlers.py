"""identity's subscribers through FastStream's in-memory test broker and the real PostgreSQL, in milliseconds per
case: a batch of rows resolved in one transaction; the same rows re-published at new offsets recognised by their
row numbers and answered again from the stored answers; an undecodable record dead-lettered with the rest applied.
A redelivery at the same offsets asks the broker whether its log was replaced, and what the relays publish needs
the broker: both are the real-broker tier's (tests/integration)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import msgspec
import pytest
from faststream.kafka import KafkaBroker

from shared import topics, wire
from shared.outbox_batches import unpack
from shared.producer import OutgoingMessage
from shared.wire import TYPE_OF_STRUCT
from tests.support.identity import identity_in_memory, query, row_messages
from tests.support.isolation import Isolation
from tests.support.memory_broker import MemoryLog, deliver

pytestmark = pytest.mark.integration


@pytest.fixture
async def identity(isolation: Isolation) -> AsyncIterator[KafkaBroker]:
    isolation.migrate(("identity",))
    async with identity_in_memory(isolation, batch_size=5000) as started:
        yield started


def outbox(isolation: Isolation) -> list[OutgoingMessage]:
    return [m for (packed,) in query(isolation, "SELECT messages FROM outbox_batches ORDER BY position")
            for m in unpack(packed)]


def answered_rows(messages: list[OutgoingMessage]) -> list[int]:
    answers = [msgspec.json.decode(m.value, type=dict[str, Any]) for m in messages]
    return sorted(row["row_number"] for answer in answers for row in answer["rows"])


def counts(isolation: Isolation) -> tuple[int, int, int]:
    ((contacts, events, answers),) = query(
        isolation, "SELECT (SELECT count(*) FROM contacts), (SELECT count(*) FROM contact_events), "
        "(SELECT count(*) FROM row_answers)")
    return contacts, events, answers


async def test_a_batch_of_rows_is_resolved_in_one_go(isolation: Isolation, identity: KafkaBroker) -> None:
    emails = ["ada@example.com", " ADA@example.com", "grace@example.com", "alan@example.com"]
    await deliver(identity, MemoryLog(partitions=1).append(row_messages(isolation, "imp-1", emails)))
    assert counts(isolation) == (3, 4, 1)  # three people; a creation each and a match for Ada; one stored answer
    ((first, last, rows),) = query(isolation, "SELECT first_row, last_row, payload->'rows' FROM row_answers")
    assert (first, last) == (1, 4) and [r["outcome"] for r in rows] == ["created", "matched", "created", "created"]


async def test_rows_published_again_at_new_offsets_are_answered_again_never_applied_twice(
    isolation: Isolation, identity: KafkaBroker
) -> None:
    log = MemoryLog(partitions=1)
    emails = [f"person{n}@example.com" for n in range(6)]
    await deliver(identity, log.append(row_messages(isolation, "imp-2", emails)))
    before = counts(isolation)

    await deliver(identity, log.append(row_messages(isolation, "imp-2", emails[2:4])))  # ingest re-published them
    assert counts(isolation) == before
    (again,) = outbox(isolation)  # the stored answer holding rows 3 and 4 (one answer for rows 1-6), as published
    assert again.topic == isolation.topic(topics.IMPORT_ROW_OUTCOMES) and answered_rows([again]) == [1, 2, 3, 4, 5, 6]


async def test_an_undecodable_record_is_dead_lettered_and_the_rest_applied(
    isolation: Isolation, identity: KafkaBroker
) -> None:
    good = row_messages(isolation, "imp-3", ["lin@example.com", "kay@example.com"])
    broken = good[0]._replace(value=b"{not json", key=b"broken")
    await deliver(identity, MemoryLog(partitions=1).append([good[0], broken, good[1]]))

    assert counts(isolation)[:2] == (2, 2)
    (letter,) = [m for m in outbox(isolation) if m.topic == isolation.topic(topics.dead_letter_topic("identity"))]
    assert letter.key == b"broken" and letter.value == b"{not json"
    assert dict(letter.headers)["dlq_error_code"] == b"INVALID_PAYLOAD"
    created = TYPE_OF_STRUCT[wire.ContactCreated]
    assert [c for (c,) in query(isolation, "SELECT type FROM contact_events")] == [created, created]
