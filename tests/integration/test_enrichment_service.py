"""enrichment against the real broker and PostgreSQL (the app in this process, its lifespan running the consumer,
the paced worker and the relay): contact events in; kept per contact only what the person stated; suggestions
made behind, one event per contact per run; the attendee's decisions out to identity; exactly once in effect;
poison messages dead-lettered."""

from __future__ import annotations

import pytest

from shared import topics
from shared.events import (
    AttendeeStatedV1,
    ContactCreatedV1,
    ContactEvent,
    ContactMatchedV1,
    ContactSource,
    EnrichmentSuggestedV1,
    SuggestionDecidedV1,
)
from shared.producer import OutgoingMessage
from tests.support.enrichment import (
    ADA,
    IMPORT_B,
    NOW,
    TICKET,
    as_identity,
    created,
    enrichment_running,
    suggested,
    updated,
)
from tests.support.isolation import Isolation
from tests.support.kafka import consume_quiet, consume_until, publish
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

async def test_suggestions_compare_with_what_the_person_stated_never_with_an_organizers_import(
    isolation: Isolation,
) -> None:
    async with enrichment_running(isolation) as service:
        await service.send(
            created("c-ada", ADA, first_name="Organizer's", company="Organizer's Company", phone="+1 555 0100"),
            created("c-bob", "bob@gmail.com"),
            created("c-cy", "cy.young@acme.io", TICKET, phone="+44 20 7946 0958"),
            updated("c-ada", 2, IMPORT_B, title="Imported Title"),
        )
        await wait_until(lambda: len(service.suggestions("c-ada")) == 3 and service.suggestions("c-cy"), timeout=30)
        seen = await consume_quiet(isolation.kafka_bootstrap, isolation.topic(topics.ENRICHMENTS), quiet_seconds=1.5)

    assert service.rows("SELECT contact_id, email, first_name, company, phone, title, organizers FROM contacts "
                        "ORDER BY contact_id") == [
        ("c-ada", ADA, None, None, None, None, ["org-a", "org-b"]),  # nothing the organizers imported
        ("c-bob", "bob@gmail.com", None, None, None, None, ["org-a"]),
        ("c-cy", "cy.young@acme.io", None, None, "+44 20 7946 0958", None, ["org-c"]),
    ]
    assert service.suggestions("c-ada") == [
        ("company", None, "Analytical", "email_domain", "pending"),
        ("first_name", None, "Ada", "email_name", "pending"),
        ("last_name", None, "Lovelace", "email_name", "pending"),
    ]
    assert service.suggestions("c-bob") == []  # free mail: no company; "bob": no name
    assert service.suggestions("c-cy") == [
        ("company", None, "Acme", "email_domain", "pending"),
        ("first_name", None, "Cy", "email_name", "pending"),
        ("last_name", None, "Young", "email_name", "pending"),
        ("phone", "+44 20 7946 0958", "+442079460958", "phone_format", "pending"),
    ]
    events = suggested(seen)
    assert sorted(e.contact_id for e in events) == ["c-ada", "c-cy"]  # one event per contact per run
    (ada,) = [e for e in events if e.contact_id == "c-ada"]
    assert {(s.field, s.suggested, s.current) for s in ada.suggestions} == {
        ("first_name", "Ada", None), ("last_name", "Lovelace", None), ("company", "Analytical", None)}
    assert all(c.key == c.event.contact_id for c in seen if isinstance(c.event, EnrichmentSuggestedV1))


async def test_redelivered_and_stale_events_change_nothing_and_suggest_nothing_twice(isolation: Isolation) -> None:
    async with enrichment_running(isolation) as service:
        first = as_identity(isolation, created("c1", "jo.ray@corp.example", TICKET, first_name="Jo"))
        await publish(isolation.kafka_bootstrap, [first])
        await wait_until(lambda: service.suggestions("c1"), timeout=30)
        before = await consume_quiet(isolation.kafka_bootstrap, isolation.topic(topics.ENRICHMENTS),
                                     quiet_seconds=1.5)

        stale = created("c1", "jo.ray@corp.example", TICKET, first_name="Someone")
        await publish(isolation.kafka_bootstrap, [first, as_identity(isolation, stale)])
        await service.send(created("c9", "marker.person@corp.example"))
        await wait_until(lambda: service.suggestions("c9"), timeout=30)
        after = await consume_quiet(isolation.kafka_bootstrap, isolation.topic(topics.ENRICHMENTS),
                                    quiet_seconds=1.5)

    assert [e.contact_id for e in suggested(before)] == ["c1"]
    assert sorted(e.contact_id for e in suggested(after)) == ["c1", "c9"]
    # the person stated a first name: no name is suggested, the company is, once
    assert service.suggestions("c1") == [("company", None, "Corp", "email_domain", "pending")]
    assert service.rows("SELECT first_name, version FROM contacts WHERE contact_id = 'c1'") == [("Jo", 1)]


async def test_the_attendee_accepts_customizes_and_rejects_and_identity_is_told(isolation: Isolation) -> None:
    statements_topic = isolation.topic(topics.ATTENDEE_STATEMENTS)
    async with enrichment_running(isolation) as service:
        await service.send(created("c-ada", ADA))
        await wait_until(lambda: len(service.suggestions("c-ada")) == 3, timeout=30)
        ada = service.attendee(f"  {ADA.upper()} ")
        listed = (await service.client.get("/v1/me/suggestions", headers=ada)).json()["items"]
        by_field = {item["field"]: item for item in listed}

        accepted = await service.client.post(f"/v1/me/suggestions/{by_field['first_name']['id']}/accept",
                                             headers=ada)
        customized = await service.client.post(f"/v1/me/suggestions/{by_field['company']['id']}/accept",
                                               headers=ada, json={"fields": {"company": " Analytical Engines "}})
        rejected = await service.client.post(f"/v1/me/suggestions/{by_field['last_name']['id']}/reject",
                                             headers=ada)
        again = await service.client.post(f"/v1/me/suggestions/{by_field['last_name']['id']}/accept", headers=ada)
        edited = await service.client.patch("/v1/me/profile", headers=ada,
                                            json={"title": "Analyst", "social_links": {"GitHub": "@ada"}})
        statements = await consume_until(isolation.kafka_bootstrap, statements_topic, lambda seen: len(seen) >= 3)
        decisions = await consume_until(
            isolation.kafka_bootstrap, isolation.topic(topics.ENRICHMENTS),
            lambda seen: len([c for c in seen if isinstance(c.event, SuggestionDecidedV1)]) >= 3)
        reviewed = (await service.client.get("/v1/me/suggestions?status=reviewed", headers=ada)).json()["items"]
        pending = (await service.client.get("/v1/me/suggestions", headers=ada)).json()["items"]

    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["suggestion"]["status"] == "accepted"
    assert customized.json()["suggestion"] | {"decided_at": None} == {
        **by_field["company"], "status": "customized", "value": "Analytical Engines", "decided_at": None}
    assert rejected.json()["suggestion"]["status"] == "rejected" and rejected.json()["statement_id"] is None
    assert again.status_code == 409 and again.json() == {"detail": "this suggestion was already rejected"}
    assert edited.status_code == 202, edited.text
    assert edited.json()["stated"] == {"title": "Analyst", "social_links": {"github": "@ada"}}
    assert {(item["field"], item["status"]) for item in reviewed} == {
        ("first_name", "accepted"), ("company", "customized"), ("last_name", "rejected")}
    assert pending == []

    stated = sorted(((c.key, c.event) for c in statements if isinstance(c.event, AttendeeStatedV1)),
                    key=lambda pair: pair[1].statement)  # type: ignore[union-attr]
    assert [(key, e.statement, e.first_name, e.company, e.title, e.social_links, e.email)  # type: ignore[union-attr]
            for key, e in stated] == [
        (ADA, "profile_edited", None, None, "Analyst", {"github": "@ada"}, ADA),
        (ADA, "suggestion_accepted", "Ada", None, None, {}, ADA),
        (ADA, "suggestion_customized", None, "Analytical Engines", None, {}, ADA),
    ]
    ids = {c.envelope.id for c in statements if c.envelope is not None}
    assert ids >= {f"statement:{by_field['first_name']['id']}", f"statement:{by_field['company']['id']}"}
    decided = {(c.event.field, c.event.decision, c.event.value)  # type: ignore[union-attr]
               for c in decisions if isinstance(c.event, SuggestionDecidedV1)}
    assert decided == {("first_name", "accepted", "Ada"), ("company", "customized", "Analytical Engines"),
                       ("last_name", "rejected", None)}  # a rejection carries no value


async def test_every_bad_input_is_a_clear_4xx(isolation: Isolation) -> None:
    async with enrichment_running(isolation) as service:
        await service.send(created("c-ada", ADA), created("c-bob", "bob.stone@bobs.example"))
        await wait_until(lambda: len(service.suggestions("c-ada")) == 3 and service.suggestions("c-bob"), timeout=30)
        ada, bob = service.attendee(ADA), service.attendee("bob.stone@bobs.example")
        nobody = service.attendee("nobody@nowhere.example")
        ada_items = (await service.client.get("/v1/me/suggestions", headers=ada)).json()["items"]
        company = next(item["id"] for item in ada_items if item["field"] == "company")
        client = service.client
        answers = {
            "bob accepts ada's": await client.post(f"/v1/me/suggestions/{company}/accept", headers=bob),
            "unknown id": await client.post("/v1/me/suggestions/nope/reject", headers=ada),
            "other field": await client.post(f"/v1/me/suggestions/{company}/accept", headers=ada,
                                             json={"fields": {"title": "X"}}),
            "blank": await client.post(f"/v1/me/suggestions/{company}/accept", headers=ada,
                                       json={"fields": {"company": "  "}}),
            "not json": await client.post(f"/v1/me/suggestions/{company}/accept", headers={
                **ada, "Content-Type": "application/json"}, content=b"{nope"),
            "unknown key": await client.post(f"/v1/me/suggestions/{company}/accept", headers=ada,
                                             json={"field": {"company": "X"}}),
            "empty edit": await client.patch("/v1/me/profile", headers=ada, json={}),
            "erase": await client.patch("/v1/me/profile", headers=ada, json={"bio": None}),
            "long title": await client.patch("/v1/me/profile", headers=ada, json={"title": "x" * 300}),
            "bad network": await client.patch("/v1/me/profile", headers=ada, json={"social_links": {"a b": "x"}}),
            "edit unknown field": await client.patch("/v1/me/profile", headers=ada, json={"email": "x@y.z"}),
            "no profile": await client.get("/v1/me/profile", headers=nobody),
            "no token": await client.get("/v1/me/profile"),
            "organizer token": await client.get("/v1/me/suggestions", headers=service.organizer("org-a")),
            "bad status": await client.get("/v1/me/suggestions?status=maybe", headers=ada),
        }
        nobody_suggestions = (await client.get("/v1/me/suggestions", headers=nobody)).json()
        still = (await client.get("/v1/me/suggestions", headers=ada)).json()["items"]

    assert {name: answer.status_code for name, answer in answers.items()} == {
        "bob accepts ada's": 404, "unknown id": 404, "other field": 422, "blank": 422, "not json": 422,
        "unknown key": 422, "empty edit": 422, "erase": 422, "long title": 422, "bad network": 422,
        "edit unknown field": 422, "no profile": 404, "no token": 401, "organizer token": 403, "bad status": 422,
    }
    assert answers["bob accepts ada's"].json() == answers["unknown id"].json() == {"detail": "suggestion not found"}
    assert "this suggestion is for company" in answers["other field"].text
    assert "cannot be erased" in answers["erase"].text
    assert nobody_suggestions == {"items": []}
    assert len(still) == 3  # nothing was decided


async def test_organizers_see_review_counts_of_their_own_contacts_only(isolation: Isolation) -> None:
    async with enrichment_running(isolation) as service:
        await service.send(created("c-ada", ADA), ContactMatchedV1(contact_id="c-ada", version=2, occurred_at=NOW,
                                                                   source=IMPORT_B))
        await wait_until(lambda: len(service.suggestions("c-ada")) == 3, timeout=30)
        await wait_until(lambda: service.rows("SELECT organizers FROM contacts") == [(["org-a", "org-b"],)])
        ada = service.attendee(ADA)
        items = (await service.client.get("/v1/me/suggestions", headers=ada)).json()["items"]
        review = "/v1/contacts/c-ada/enrichment-review"
        before = (await service.client.get(review, headers=service.organizer("org-a"))).json()
        await service.client.post(f"/v1/me/suggestions/{items[0]['id']}/reject", headers=ada)
        after_a = await service.client.get(review, headers=service.organizer("org-a"))
        after_b = await service.client.get(review, headers=service.organizer("org-b"))
        stranger = await service.client.get(review, headers=service.organizer("org-z"))
        unknown = await service.client.get("/v1/contacts/c-nobody/enrichment-review",
                                           headers=service.organizer("org-a"))
        as_attendee = await service.client.get(review, headers=ada)

    assert before == {"contact_id": "c-ada", "pending": 3, "reviewed": 0, "status": "pending"}
    assert after_a.json() == after_b.json() == {"contact_id": "c-ada", "pending": 2, "reviewed": 1,
                                                "status": "pending"}
    assert items[0]["suggested"] not in after_a.text  # counts, never values
    assert (stranger.status_code, stranger.json()) == (unknown.status_code, unknown.json()) == (
        404, {"detail": "contact not found"})
    assert as_attendee.status_code == 403


async def test_an_undecodable_message_is_dead_lettered_and_the_rest_of_the_batch_applied(
    isolation: Isolation,
) -> None:
    topic = isolation.topic(topics.CONTACT_EVENTS)
    garbage = OutgoingMessage(topic=topic, key=b"c-bad", value=b"{not json",
                              headers=[("ce_id", b"bad-1"), ("ce_type", ContactCreatedV1.TYPE.encode()),
                                       ("ce_source", b"somewhere")])
    bad_header = OutgoingMessage(topic=topic, key=b"c4", value=b"{}",
                                 headers=[("ce_id", b"\xff\xfe"), ("ce_type", b"x"), ("ce_source", b"s")])
    async with enrichment_running(isolation) as service:
        await publish(isolation.kafka_bootstrap,
                      [garbage, bad_header, as_identity(isolation, created("c3", "cy@x.io"))])
        letters = await consume_until(isolation.kafka_bootstrap,
                                      isolation.topic(topics.dead_letter_topic("enrichment")),
                                      lambda seen: len(seen) >= 2)
        await wait_until(lambda: service.rows("SELECT contact_id FROM contacts") == [("c3",)], timeout=15)

    codes = {letter.headers["ce_id"]: letter.headers["dlq_error_code"] for letter in letters}
    assert codes == {b"bad-1": b"INVALID_PAYLOAD", b"\xff\xfe": b"UNEXPECTED_TYPE"}
    (letter,) = [letter for letter in letters if letter.headers["ce_id"] == b"bad-1"]
    assert letter.record.value == b"{not json" and letter.key == "c-bad"
    assert letter.headers["dlq_original_topic"] == topic.encode()


async def test_organizer_ids_of_any_spelling_are_kept_exactly(isolation: Isolation) -> None:
    odd = ['org "quoted", {braced}', "back\\slash", "NULL", "ünïcode org"]
    events: list[ContactEvent] = [created("c-odd", "odd@corp.example",
                                          ContactSource(kind="import", organizer_id=odd[0]))]
    events += [ContactMatchedV1(contact_id="c-odd", version=version, occurred_at=NOW,
                                source=ContactSource(kind="import", organizer_id=organizer))
               for version, organizer in enumerate(odd[1:], start=2)]
    async with enrichment_running(isolation) as service:
        await service.send(*events)
        await wait_until(lambda: service.rows("SELECT version FROM contacts") == [(4,)], timeout=30)
        answers = [await service.client.get("/v1/contacts/c-odd/enrichment-review",
                                            headers=service.organizer(organizer)) for organizer in odd]

    assert sorted(service.rows("SELECT organizers FROM contacts")[0][0]) == sorted(odd)
    assert [answer.status_code for answer in answers] == [200] * 4
