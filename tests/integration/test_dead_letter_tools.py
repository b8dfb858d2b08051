"""``contacts dlq`` against the real broker and PostgreSQL, next to a running identity: a poison message identity
dead-lettered is counted and shown with its original headers, value and error; a dead-lettered interaction whose
cause was fixed is re-driven to its original topic, applied once, and never re-driven twice."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiokafka import ConsumerRecord

from shared import topics
from shared.codec import UndecodableMessage, dead_letter, encode
from shared.envelope import Envelope
from shared.events import InteractionRecordedV1, TicketPurchasedV1
from shared.producer import OutgoingMessage
from tests.support.cli import cli_env, contacts
from tests.support.isolation import Isolation
from tests.support.kafka import consume_quiet, consume_until, publish
from tests.support.processes import ServiceProcess

pytestmark = pytest.mark.e2e


def ticket(email: str) -> tuple[TicketPurchasedV1, Envelope]:
    event = TicketPurchasedV1(
        organizer_id="org-a", email=email, occurred_at=datetime.now(UTC), kagibag_event_id="ev-1",
        order_id=f"ord-{uuid.uuid4().hex[:6]}", ticket_count=2,
    )
    return event, Envelope(type=event.TYPE, source="kagibag-platform/tickets", subject=email)


def as_dead_letter(message: OutgoingMessage, *, dead_letters: str, offset: int) -> OutgoingMessage:
    """What identity's ``dead_letter`` writes for ``message`` read at ``offset`` (a validation bug, since fixed)."""
    record = ConsumerRecord(
        topic=message.topic, partition=0, offset=offset, timestamp=0, timestamp_type=0, key=message.key,
        value=message.value, checksum=None, serialized_key_size=0, serialized_value_size=0,
        headers=tuple(message.headers),
    )
    error = UndecodableMessage("INVALID_PAYLOAD", "ticket_count: a validation bug, fixed in the next release")
    return dead_letter(record, error, topic=dead_letters)


async def test_dead_letters_are_listed_shown_and_a_fixed_one_redriven_once(
    isolation: Isolation, tmp_path: Path
) -> None:
    isolation.migrate(("identity", "ops"))
    env = cli_env(isolation)
    identity = ServiceProcess.for_isolation(isolation, "identity", log_dir=tmp_path)
    interactions = isolation.topic(topics.INTERACTIONS)
    dead_letters = isolation.topic(topics.dead_letter_topic("identity"))
    try:
        await identity.start()
        poison = OutgoingMessage(topic=interactions, key=b"bad@example.com", value=b"{not json",
                                 headers=[*ticket("bad@example.com")[1].to_headers(), ("x-trace", b"\xff\x00")])
        await publish(isolation.kafka_bootstrap, [poison])
        await consume_until(isolation.kafka_bootstrap, dead_letters, lambda seen: len(seen) >= 1, timeout=60)

        event, envelope = ticket("ada@example.com")
        fixed = encode(event, envelope, topic=interactions, key="ada@example.com")
        await publish(isolation.kafka_bootstrap, [as_dead_letter(fixed, dead_letters=dead_letters, offset=41)])
        await consume_until(isolation.kafka_bootstrap, dead_letters, lambda seen: len(seen) >= 2)

        code, listing, errors = await contacts("dlq", "list", "--service", "identity", "--json", env=env)
        assert code == 0, errors
        counts = {(row["original_topic"], row["error_code"]): (row["count"], row["redriven"])
                  for row in json.loads(listing)}
        assert counts == {(interactions, "INVALID_PAYLOAD"): (2, 0)}

        code, shown, errors = await contacts("dlq", "show", "--service", "identity", "--json", env=env)
        assert code == 0, errors
        letters: list[dict[str, Any]] = json.loads(shown)
        bad = next(letter for letter in letters if letter["key"] == "bad@example.com")
        assert bad["value"] == "{not json"
        assert bad["headers"]["ce_type"] == TicketPurchasedV1.TYPE
        assert bad["headers"]["x-trace"] == "base64:/wA="  # not UTF-8: kept byte for byte, shown losslessly
        assert bad["original"]["topic"] == interactions and bad["error_code"] == "INVALID_PAYLOAD"
        assert "dlq_error_code" not in bad["headers"]
        ours = next(letter for letter in letters if letter["key"] == "ada@example.com")
        offset = ours["dead_letter"].rsplit(":", 1)[1]

        code, out, errors = await contacts("dlq", "redrive", "--service", "identity", "--offset", offset, env=env)
        assert code == 0, errors
        assert "1 re-driven, 0 skipped" in out
        code, out, errors = await contacts("dlq", "redrive", "--service", "identity", "--all", env=env)
        assert code == 0, errors
        assert "1 re-driven, 1 skipped" in out  # the poison one goes back too; ours is not sent twice

        recorded = await consume_until(
            isolation.kafka_bootstrap, isolation.topic(topics.CONTACT_EVENTS),
            lambda seen: any(isinstance(c.event, InteractionRecordedV1) for c in seen), timeout=60,
        )
        settled = await consume_quiet(isolation.kafka_bootstrap, isolation.topic(topics.CONTACT_EVENTS))
        applied = [c for c in settled if isinstance(c.event, InteractionRecordedV1)
                   and c.envelope is not None and c.envelope.causation_id == envelope.id]
        assert len(applied) == 1, [c.event for c in recorded]
        assert applied[0].event.order_id == event.order_id  # type: ignore[union-attr]

        republished = await consume_quiet(isolation.kafka_bootstrap, interactions)
        redriven = [c for c in republished if "dlq_redriven_from" in c.headers]
        assert {c.key for c in redriven} == {"ada@example.com", "bad@example.com"}
        ada = next(c for c in redriven if c.key == "ada@example.com")
        assert ada.record.value == fixed.value
        assert ada.headers["ce_id"] == envelope.id.encode()
        assert ada.headers["dlq_redriven_from"].decode() == f"{dead_letters}:0:{offset}"

        code, listing, _ = await contacts("dlq", "list", "--service", "identity", "--json", env=env)
        rows = json.loads(listing)
        # the poison message failed again: a new dead letter, not yet re-driven
        assert sum(row["count"] for row in rows) >= 2 and sum(row["redriven"] for row in rows) == 2
    finally:
        await identity.stop()


async def test_redrive_needs_a_choice_and_the_ops_schema(isolation: Isolation) -> None:
    env = cli_env(isolation)
    code, _, errors = await contacts("dlq", "redrive", "--service", "identity", env=env)
    assert code == 2 and "run 'contacts migrate'" in errors

    isolation.migrate(("ops",))
    code, _, errors = await contacts("dlq", "redrive", "--service", "identity", env=env)
    assert code == 2 and "--offset N" in errors
    code, _, errors = await contacts("dlq", "redrive", "--service", "identity", "--offset", "7", env=env)
    assert code == 2 and "no such dead letter" in errors
