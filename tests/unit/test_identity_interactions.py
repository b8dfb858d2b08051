"""identity's rules for interactions reported by platform teams, given/when/then, without I/O."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from services.identity.domain import (
    Contact,
    IncomingRecord,
    Interaction,
    decide,
    evolve,
    rebuild,
    resolve_batch,
)
from shared.events import CONTACT_FIELDS
from shared.wire import ContactCreated, ContactMatched, ContactSource, ContactUpdated, InteractionRecorded
from tests.support.identity_records import record, sequential_ids

T0 = datetime(2026, 3, 1, tzinfo=UTC)
INTERACTION_SOURCE = ContactSource(kind="interaction", organizer_id="org-2", interaction_id="msg-1")


def interaction(email: str, kind: str = "event_checked_in", at: datetime = T0, **values: object) -> IncomingRecord:
    details = {k: values.pop(k) for k in ("kagibag_event_id", "order_id", "ticket_count") if k in values}
    account = values.pop("user_account_id", None)
    return IncomingRecord(
        email=email,
        fields={k: v for k, v in values.items() if k in CONTACT_FIELDS},  # type: ignore[misc]
        source=INTERACTION_SOURCE,
        occurred_at=at,
        bio=values.get("bio"),  # type: ignore[arg-type]
        social_links=values.get("social_links", {}),  # type: ignore[arg-type]
        user_account_id=account,  # type: ignore[arg-type]
        interaction=Interaction(kind=kind, interaction_id="msg-1", user_account_id=account, **details),  # type: ignore[arg-type]
    )


def known(email: str = "ada@x.io", **fields: str) -> Contact:
    return evolve(None, decide(None, record(email, T0, **fields), new_contact_id="c1")[0])  # an organizer's import


def test_an_interaction_from_a_new_person_creates_the_contact_then_records_the_interaction() -> None:
    events = decide(None, interaction(" Ada@X.io", "ticket_purchased", kagibag_event_id="ev-1", order_id="o-1",
                                          ticket_count=2, first_name="Ada"), new_contact_id="c1")

    created, recorded = events
    assert isinstance(created, ContactCreated) and created.fields == {"first_name": "Ada"}
    assert isinstance(recorded, InteractionRecorded)
    assert (recorded.contact_id, recorded.version, recorded.kind) == ("c1", 2, "ticket_purchased")
    assert (recorded.kagibag_event_id, recorded.order_id, recorded.ticket_count) == ("ev-1", "o-1", 2)
    assert recorded.source.organizer_id == "org-2" and recorded.occurred_at == T0


def test_an_interaction_that_brings_nothing_new_is_only_recorded() -> None:
    contact = known(first_name="Ada")

    events = decide(contact, interaction("ADA@x.io", first_name="  ", kagibag_event_id="ev-1"),
                        new_contact_id="-")

    assert [type(e) for e in events] == [InteractionRecorded]
    assert events[0].version == 2 and evolve(contact, events[0]).organizers["org-a"].fields == {"first_name": "Ada"}


def test_a_completed_profile_fills_fields_bio_and_social_links_and_each_remembers_its_source() -> None:
    contact = known(company="Analytical Engines")

    events = decide(contact, interaction("ada@x.io", "attendee_profile_completed", company="Babbage & Co",
                                             title="", bio=" Mathematician ",
                                             social_links={"github": "@ada", "x": " "}), new_contact_id="-")

    updated, recorded = events
    assert isinstance(updated, ContactUpdated) and isinstance(recorded, InteractionRecorded)
    assert updated.changes == {"company": "Babbage & Co"}
    assert (updated.bio, updated.social_links) == ("Mathematician", {"github": "@ada"})
    after = evolve(evolve(contact, updated), recorded)
    person = after.person
    assert (after.version, person.bio, person.social_links) == (3, "Mathematician", {"github": "@ada"})
    assert person.fields == {"company": "Babbage & Co"} and person.email_original == "ada@x.io"
    assert after.organizers["org-a"].fields == {"company": "Analytical Engines"}  # the organizer's own stays


def test_a_blank_never_erases_bio_links_or_account() -> None:
    contact = known()
    for event in decide(contact, interaction("ada@x.io", "attendee_profile_completed", bio="B",
                                                 social_links={"x": "@a"}, user_account_id="u1"),
                            new_contact_id="-"):
        contact = evolve(contact, event)

    events = decide(contact, interaction("ada@x.io", "attendee_profile_completed", bio=" ",
                                             social_links={"x": ""}), new_contact_id="-")

    assert [type(e) for e in events] == [InteractionRecorded]
    after = evolve(contact, events[0])
    assert (after.person.bio, after.person.social_links, after.person.user_account_id) == ("B", {"x": "@a"}, "u1")


def test_a_user_account_links_to_the_contact_and_a_new_one_replaces_it() -> None:
    contact = known()

    linked = decide(contact, interaction("ada@x.io", "user_account_linked", user_account_id="u-1"),
                        new_contact_id="-")
    contact = evolve(evolve(contact, linked[0]), linked[1])
    relinked = decide(contact, interaction("ada@x.io", "user_account_linked", user_account_id="u-2"),
                          new_contact_id="-")

    assert isinstance(linked[0], ContactUpdated) and linked[0].user_account_id == "u-1"
    assert isinstance(linked[1], InteractionRecorded) and linked[1].user_account_id == "u-1"
    assert contact.person.user_account_id == "u-1"
    assert isinstance(relinked[0], ContactUpdated) and relinked[0].user_account_id == "u-2"


def test_import_rows_still_produce_exactly_one_event_each() -> None:
    plan = resolve_batch({}, [record("a@x.io"), record("A@x.io"), record("a@x.io", title="CTO")],
                         new_contact_id=sequential_ids())

    assert [len(r.events) for r in plan.resolutions] == [1, 1, 1]
    assert [type(r.events[0]) for r in plan.resolutions] == [ContactCreated, ContactMatched, ContactUpdated]


def test_rows_and_interactions_for_one_person_in_a_batch_make_one_contact_with_a_gapless_stream() -> None:
    records = [record("Ada@x.io", first_name="Ada"), interaction(" ada@x.io", last_name="Lovelace"),
               interaction("ADA@X.IO", "waitlist_registered", kagibag_event_id="ev-2")]

    plan = resolve_batch({}, records, new_contact_id=sequential_ids())

    assert list(plan.created) == ["ada@x.io"]
    assert [(type(e).__name__, e.version) for e in plan.events] == [
        ("ContactCreated", 1), ("ContactUpdated", 2), ("InteractionRecorded", 3),
        ("InteractionRecorded", 4)]
    assert rebuild(plan.events) == plan.created["ada@x.io"]


kinds = st.sampled_from(["event_checked_in", "waitlist_registered", "attendee_profile_completed"])
values = st.fixed_dictionaries({
    "company": st.one_of(st.none(), st.sampled_from(["", " ", "Acme", "Beta"])),
    "bio": st.one_of(st.none(), st.sampled_from(["", "B1", "B2"])),
    "social_links": st.dictionaries(st.sampled_from(["x", "github"]), st.sampled_from(["", "@a", "@b"]), max_size=2),
})


@given(st.lists(st.tuples(st.booleans(), kinds, values), max_size=25), st.integers(min_value=1, max_value=6))
def test_whatever_the_batches_the_state_is_the_fold_and_every_interaction_is_recorded_once(
    items: list[tuple[bool, str, dict[str, Any]]], batch_size: int
) -> None:
    records = [
        interaction("ada@x.io", kind, T0 + timedelta(minutes=i), **v) if is_interaction
        else record(" ADA@x.io", company=v["company"])
        for i, (is_interaction, kind, v) in enumerate(items)
    ]
    state: dict[str, Contact] = {}
    stream = []
    new_id = itertools.count(1)
    for start in range(0, len(records), batch_size):
        plan = resolve_batch(state, records[start : start + batch_size], new_contact_id=lambda: f"c{next(new_id)}")
        state.update(plan.created)
        state.update(plan.changed)
        stream += plan.events

    assert [e.version for e in stream] == list(range(1, len(stream) + 1))
    assert sum(isinstance(e, InteractionRecorded) for e in stream) == sum(i for i, _, _ in items)
    if records:
        assert rebuild(stream) == state["ada@x.io"]
        bios = [v["bio"] for i, _, v in items if i and v["bio"]]
        assert state["ada@x.io"].person.bio == (bios[-1] if bios else None)
