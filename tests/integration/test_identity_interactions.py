"""identity as a real process: interactions published by platform teams resolve to the contact an import
created, link user accounts, dead-letter what can never be applied and apply a redelivery once."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from shared.codec import encode
from shared.envelope import Envelope
from shared.events import (
    AttendeeProfileCompletedV1,
    AttendeeStatedV1,
    EventCheckedInV1,
    ImportRowReceivedV1,
    TicketPurchasedV1,
    UserAccountLinkedV1,
    WaitlistRegisteredV1,
)
from shared.producer import OutgoingMessage
from shared.topics import ATTENDEE_STATEMENTS, INTERACTIONS, dead_letter_topic
from tests.support.identity import (
    identity_process,
    interaction_message,
    outcomes_for,
    query,
    recorded,
    row_messages,
    stream,
)
from tests.support.isolation import Isolation
from tests.support.kafka import consume_until, publish
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

AT = datetime(2026, 4, 7, 12, 0, tzinfo=UTC)


async def test_every_interaction_type_resolves_to_the_contact_an_import_created(
    isolation: Isolation, tmp_path: Path
) -> None:
    isolation.migrate(("identity",))
    identity = identity_process(isolation, tmp_path)
    await identity.start()
    common = {"organizer_id": "org-9", "occurred_at": AT}
    interactions = [
        TicketPurchasedV1(email=" Ada@Example.com", kagibag_event_id="ev-1", order_id="o-1", ticket_count=2,
                          last_name="Lovelace", **common),
        WaitlistRegisteredV1(email="ADA@example.com ", kagibag_event_id="ev-2", **common),
        EventCheckedInV1(email="ada@EXAMPLE.com", kagibag_event_id="ev-1", **common),
        AttendeeProfileCompletedV1(email="Ada@example.COM", company="Analytical Engines", title="Analyst",
                                   bio="Poetical scientist", social_links={"github": "@ada"}, first_name=" ",
                                   **common),
        UserAccountLinkedV1(email="\tada@example.com", user_account_id="user-42", **common),
    ]
    try:
        await publish(isolation.kafka_bootstrap, row_messages(isolation, "imp-ada", ["ADA@example.com"]))
        assert (await outcomes_for(isolation, "imp-ada", 1))[1].pop().startswith("created:")
        await publish(isolation.kafka_bootstrap, [interaction_message(isolation, e) for e in interactions])
        await wait_until(lambda: len(recorded(isolation, "ada@example.com")) == 5, timeout=60)
    finally:
        await identity.stop()

    (contact,) = query(isolation, "SELECT email, first_name, last_name, company, title, bio, social_links, "
                                  "user_account_id, version FROM contacts")
    # canonical: what the person stated; the import's first name is the importing organizer's own
    assert contact == ("ada@example.com", None, "Lovelace", "Analytical Engines", "Analyst",
                       "Poetical scientist", {"github": "@ada"}, "user-42", 9)
    layers = query(isolation, "SELECT organizer_id, email_original, first_name FROM contact_layers ORDER BY 1")
    assert layers == [("org-1", "ADA@example.com", "name-1"), ("org-9", None, None)]
    types = [type_.removeprefix("com.kagibag.contacts.") for _, type_, _ in stream(isolation, "ada@example.com")]
    assert types == [
        "contact.created.v1",  # the import row
        "contact.updated.v1", "interaction.recorded.v1",  # ticket purchase brings the last name
        "interaction.recorded.v1",  # waitlist: nothing new, no update
        "interaction.recorded.v1",  # check-in
        "contact.updated.v1", "interaction.recorded.v1",  # completed profile (the blank first name erases nothing)
        "contact.updated.v1", "interaction.recorded.v1",  # the linked account
    ]  # one key, one partition: applied in publishing order
    details = [(r["kind"], *(r.get(k) for k in ("kagibag_event_id", "order_id", "ticket_count", "user_account_id")))
               for r in recorded(isolation, "ada@example.com")]
    assert details == [
        ("ticket_purchased", "ev-1", "o-1", 2, None),
        ("waitlist_registered", "ev-2", None, None, None),
        ("event_checked_in", "ev-1", None, None, None),
        ("attendee_profile_completed", None, None, None, None),
        ("user_account_linked", None, None, None, "user-42"),
    ]


async def test_invalid_interactions_are_dead_lettered_and_a_redelivery_changes_nothing(
    isolation: Isolation, tmp_path: Path
) -> None:
    isolation.migrate(("identity",))
    identity = identity_process(isolation, tmp_path)
    await identity.start()
    topic = isolation.topic(INTERACTIONS)
    ce = [("ce_source", b"kagibag-platform/tickets"), ("ce_specversion", b"1.0")]
    bad_json = OutgoingMessage(topic, b"k", b"{not json", [("ce_id", b"i-bad"),
                                                           ("ce_type", EventCheckedInV1.TYPE.encode()), *ce])
    row = ImportRowReceivedV1(import_id="i", organizer_id="o", row_number=1, email="x@y.io")
    wrong_type = OutgoingMessage(topic, b"k", row.model_dump_json().encode(),
                                 [("ce_id", b"i-wrong"), ("ce_type", row.TYPE.encode()), *ce])
    no_headers = OutgoingMessage(topic, b"k", b'{"organizer_id": "o"}', [])
    bad_email = interaction_message(isolation, EventCheckedInV1(
        email="not an email", kagibag_event_id="ev-1", organizer_id="org-9", occurred_at=AT))
    checked_in = interaction_message(isolation, EventCheckedInV1(
        email="Grace@x.io", kagibag_event_id="ev-1", organizer_id="org-9", occurred_at=AT), id="same-id")
    try:
        await publish(isolation.kafka_bootstrap, [bad_json, wrong_type, no_headers, bad_email, checked_in])
        dead = await consume_until(isolation.kafka_bootstrap, isolation.topic(dead_letter_topic("identity")),
                                   lambda got: len(got) >= 4)
        await wait_until(lambda: len(recorded(isolation, "grace@x.io")) == 1, timeout=60)
        await publish(isolation.kafka_bootstrap, [checked_in])  # redelivered: same ce_id, a new offset
        await publish(isolation.kafka_bootstrap, [interaction_message(isolation, EventCheckedInV1(
            email="marker@x.io", kagibag_event_id="ev-1", organizer_id="org-9", occurred_at=AT))])
        await wait_until(lambda: recorded(isolation, "marker@x.io"), timeout=60)  # the redelivery was behind it
    finally:
        await identity.stop()

    codes = {d.record.value: d.headers["dlq_error_code"] for d in dead}
    assert codes == {b"{not json": b"INVALID_PAYLOAD", row.model_dump_json().encode(): b"UNEXPECTED_TYPE",
                     b'{"organizer_id": "o"}': b"BAD_ENVELOPE", bad_email.value: b"INVALID_EMAIL"}
    assert all(d.headers["dlq_original_topic"] == topic.encode() for d in dead)
    assert {d.headers.get("ce_id") for d in dead} >= {b"i-bad", b"i-wrong"}  # original headers kept
    assert [(v, t.rsplit(".", 2)[-2]) for v, t, _ in stream(isolation, "grace@x.io")] == [
        (1, "created"), (2, "recorded")]
    assert recorded(isolation, "grace@x.io")[0]["interaction_id"] == "same-id"
    assert query(isolation, "SELECT count(*) FROM contacts") == [(2,)]


async def test_two_sources_sending_the_same_ce_id_are_both_applied_and_each_once(
    isolation: Isolation, tmp_path: Path
) -> None:
    """CloudEvents identifies an event by source and id: two teams may both number their events 1, 2, 3."""
    isolation.migrate(("identity",))
    identity = identity_process(isolation, tmp_path)
    checked_in = EventCheckedInV1(email="ana@x.io", kagibag_event_id="ev-1", organizer_id="org-9", occurred_at=AT)
    waitlisted = WaitlistRegisteredV1(email="ana@x.io", kagibag_event_id="ev-2", organizer_id="org-9",
                                      occurred_at=AT)
    try:
        await identity.start()
        await publish(isolation.kafka_bootstrap, [
            interaction_message(isolation, checked_in, id="42", source="kagibag-platform/check-in"),
            interaction_message(isolation, waitlisted, id="42", source="kagibag-platform/waitlist"),
            interaction_message(isolation, checked_in, id="42", source="kagibag-platform/check-in"),  # a re-send
        ])
        await wait_until(lambda: len(recorded(isolation, "ana@x.io")) >= 2, timeout=60)
        await publish(isolation.kafka_bootstrap, [interaction_message(isolation, EventCheckedInV1(
            email="marker@x.io", kagibag_event_id="ev-1", organizer_id="org-9", occurred_at=AT))])
        await wait_until(lambda: recorded(isolation, "marker@x.io"), timeout=60)  # the re-send was before it
    finally:
        await identity.stop()

    assert sorted(r["kind"] for r in recorded(isolation, "ana@x.io")) == ["event_checked_in", "waitlist_registered"]


async def test_a_message_the_database_refuses_is_dead_lettered_alone_and_the_rest_applied(
    isolation: Isolation, tmp_path: Path
) -> None:
    """A value PostgreSQL refuses (a NUL character in a name) decodes fine but fails its batch every time: after
    retries with backoff the batch is split until that message stands alone; it goes to the dead letters with the
    error, everything else in the batch is applied."""
    isolation.migrate(("identity",))
    identity = identity_process(isolation, tmp_path)
    people = [f"p{n}@x.io" for n in range(12)]
    poison = TicketPurchasedV1(email="nul@x.io", first_name="Ada\u0000", kagibag_event_id="ev-1", order_id="o-1",
                               ticket_count=1, organizer_id="org-9", occurred_at=AT)
    messages = [interaction_message(isolation, EventCheckedInV1(
        email=email, kagibag_event_id="ev-1", organizer_id="org-9", occurred_at=AT)) for email in people]
    messages.insert(5, interaction_message(isolation, poison, id="the-poison"))
    try:
        await identity.start()
        await publish(isolation.kafka_bootstrap, messages)
        dead = await consume_until(isolation.kafka_bootstrap, isolation.topic(dead_letter_topic("identity")),
                                   lambda got: len(got) >= 1, timeout=90)
        await wait_until(lambda: all(recorded(isolation, email) for email in people), timeout=60)
    finally:
        await identity.stop()

    (letter,) = dead
    assert letter.headers["ce_id"] == b"the-poison"
    assert letter.headers["dlq_error_code"] == b"PROCESSING_FAILED"
    assert b"0x00" in letter.headers["dlq_error"] or b"NUL" in letter.headers["dlq_error"].upper()
    assert query(isolation, "SELECT count(*) FROM contacts WHERE email = 'nul@x.io'") == [(0,)]
    assert "batch.poison_dead_lettered" in identity.log_path.read_text()


async def test_an_attendees_own_statement_is_canonical_and_a_later_import_does_not_change_it(
    isolation: Isolation, tmp_path: Path
) -> None:
    isolation.migrate(("identity",))
    identity = identity_process(isolation, tmp_path)
    stated = AttendeeStatedV1(email=" Ada@x.io", occurred_at=AT, statement="suggestion_customized",
                              suggestion_id="s-1", company="Analytical Engines", first_name="Ada")
    envelope = Envelope(type=stated.TYPE, source="kagibag-contacts/enrichment")
    try:
        await identity.start()
        await publish(isolation.kafka_bootstrap, row_messages(isolation, "imp-ada", ["ada@x.io"]))
        await outcomes_for(isolation, "imp-ada", 1)
        await publish(isolation.kafka_bootstrap, [
            encode(stated, envelope, topic=isolation.topic(ATTENDEE_STATEMENTS), key="ada@x.io"),
            encode(stated, envelope, topic=isolation.topic(ATTENDEE_STATEMENTS), key="ada@x.io"),  # a re-send
        ])
        await wait_until(lambda: query(isolation, "SELECT company FROM contacts") == [("Analytical Engines",)],
                         timeout=60)
        later = [m._replace(value=m.value.replace(b'"name-1"', b'"Countess"')) for m in
                 row_messages(isolation, "imp-later", ["ADA@x.io"])]
        await publish(isolation.kafka_bootstrap, later)
        await outcomes_for(isolation, "imp-later", 1)
    finally:
        await identity.stop()

    assert query(isolation, "SELECT first_name, company FROM contacts") == [("Ada", "Analytical Engines")]
    assert query(isolation, "SELECT organizer_id, first_name FROM contact_layers") == [("org-1", "Countess")]
    types = [t.rsplit(".", 2)[-2] for _, t, _ in stream(isolation, "ada@x.io")]
    assert types == ["created", "updated", "updated"]  # the statement once; the later import in org-1's layer
