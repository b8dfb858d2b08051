"""The CloudEvents envelope survives the trip through Kafka headers, and causation chains correctly."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.envelope import CONTENT_TYPE, DERIVED_ID_NAMESPACE, SPEC_VERSION, Envelope, MissingHeaderError, derived_id


def test_every_attribute_round_trips_through_headers() -> None:
    envelope = Envelope(
        type="com.kagibag.contacts.contact.created.v1",
        source="kagibag-contacts/identity",
        time=datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC),
        subject="contact-1",
        correlation_id="import-7",
        causation_id="row-3",
    )

    assert Envelope.from_headers(envelope.to_headers()) == envelope


def test_headers_follow_the_kafka_binary_mode_names() -> None:
    headers = dict(Envelope(type="t", source="s", subject="x").to_headers())

    assert headers["ce_specversion"] == SPEC_VERSION.encode()
    assert headers["content-type"] == CONTENT_TYPE.encode()
    assert {"ce_id", "ce_type", "ce_source", "ce_time", "ce_subject"} <= headers.keys()


def test_optional_attributes_are_left_out_and_come_back_as_none() -> None:
    envelope = Envelope(type="t", source="s")
    names = {name for name, _ in envelope.to_headers()}

    assert not names & {"ce_subject", "ce_correlationid", "ce_causationid"}
    decoded = Envelope.from_headers(tuple(envelope.to_headers()))
    assert (decoded.subject, decoded.correlation_id, decoded.causation_id) == (None, None, None)


@pytest.mark.parametrize("missing", ["ce_id", "ce_type", "ce_source"])
def test_a_required_header_missing_is_an_error(missing: str) -> None:
    all_headers = Envelope(type="t", source="s").to_headers()
    headers = [(name, value) for name, value in all_headers if name != missing]

    with pytest.raises(MissingHeaderError, match=missing):
        Envelope.from_headers(headers)


def test_a_caused_event_keeps_the_correlation_and_points_at_its_cause() -> None:
    request = Envelope(type="request", source="ingest")
    first = request.caused(type="first", source="identity", subject="c1")
    second = first.caused(type="second", source="enrichment", subject="c1", id="fixed-id")

    assert first.correlation_id == request.id
    assert first.causation_id == request.id
    assert second.correlation_id == request.id
    assert second.causation_id == first.id
    assert second.id == "fixed-id"


def test_cloud_event_headers_are_those_of_the_envelope() -> None:
    from shared.envelope import cloud_event_headers

    envelope = Envelope(id="e-1", type="t", source="s", subject="sub", correlation_id="c", causation_id="k")

    headers = cloud_event_headers(id="e-1", type="t", source="s", time=envelope.time.isoformat(), subject="sub",
                                  correlation_id="c", causation_id="k")

    assert headers == envelope.to_headers()
    assert Envelope.from_headers(headers) == envelope


def test_a_header_template_builds_the_envelopes_headers() -> None:
    from shared.envelope import HeaderTemplate

    envelope = Envelope(id="e-1", type="t", source="s", subject="sub", correlation_id="c", causation_id="k")
    template = HeaderTemplate(type="t", source="s")

    headers = template.build(id="e-1", time=envelope.time, subject="sub", correlation_id="c", causation_id="k")

    assert Envelope.from_headers(headers) == envelope
    assert sorted(headers) == sorted(envelope.to_headers())


@given(st.lists(st.one_of(st.text(max_size=20), st.integers()), min_size=1, max_size=4))
def test_derived_ids_are_exactly_uuid5_of_the_joined_parts(parts: list[object]) -> None:
    assert derived_id(*parts) == str(uuid.uuid5(DERIVED_ID_NAMESPACE, "/".join(map(str, parts))))


def test_derived_ids_differ_by_namespace() -> None:
    assert derived_id("a", namespace=uuid.NAMESPACE_URL) != derived_id("a")
