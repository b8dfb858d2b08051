"""shared.inbox's pure parts: derived ids and batch decoding."""

from __future__ import annotations

import uuid

from aiokafka import ConsumerRecord
from hypothesis import given
from hypothesis import strategies as st

from shared.envelope import Envelope
from shared.events import ContactMatchedV1, DisplayNameResolvedV1
from shared.inbox import DERIVED_ID_NAMESPACE, decode_batch, derived_id
from shared.kafka import encode


@given(st.lists(st.one_of(st.text(max_size=20), st.integers()), min_size=1, max_size=4))
def test_derived_ids_are_exactly_uuid5_of_the_joined_parts(parts: list[object]) -> None:
    assert derived_id(*parts) == str(uuid.uuid5(DERIVED_ID_NAMESPACE, "/".join(map(str, parts))))


def test_derived_ids_differ_by_namespace() -> None:
    assert derived_id("a", namespace=uuid.NAMESPACE_URL) != derived_id("a")


def _record(topic: str, offset: int, value: bytes, headers: list[tuple[str, bytes]]) -> ConsumerRecord:
    return ConsumerRecord(topic=topic, partition=0, offset=offset, timestamp=0, timestamp_type=0, key=b"k",
                          value=value, checksum=None, serialized_key_size=1, serialized_value_size=len(value),
                          headers=tuple(headers))


def test_a_type_is_accepted_only_on_the_topics_that_carry_it() -> None:
    name = DisplayNameResolvedV1(contact_id="c", display_name="Ann", contact_version=1)
    message = encode(name, Envelope(type=name.TYPE, source="tests"), topic="x", key="c")
    on_enrichments = _record("enrichments", 1, message.value, message.headers)
    on_contact_events = _record("contact-events", 2, message.value, message.headers)
    garbage = _record("enrichments", 3, b"\\xff", [])

    batch = decode_batch(
        [on_enrichments, on_contact_events, garbage],
        {"enrichments": (DisplayNameResolvedV1,), "contact-events": (ContactMatchedV1,)},
    )

    assert [event for _, event in batch.messages] == [name]
    assert [(record.offset, error.code) for record, error in batch.undecodable] == [
        (2, "UNEXPECTED_TYPE"), (3, "BAD_ENVELOPE")]
