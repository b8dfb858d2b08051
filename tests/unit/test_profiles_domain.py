"""The profile projection, given/when/then, without I/O."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.profiles.domain import (
    FieldSource,
    Profile,
    Statement,
    StoredPermission,
    Update,
    apply,
    plan_batch,
    settle_permissions,
    snapshot,
)
from services.profiles.insights import RecordedInteraction
from shared.events import (
    ContactCreatedV1,
    ContactMatchedV1,
    ContactProfileUpdatedV1,
    ContactSource,
    ContactUpdatedV1,
    DisplayNameResolvedV1,
    EmailPermission,
    InteractionRecordedV1,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


def source(organizer: str = "org-a", permission: EmailPermission | None = None) -> ContactSource:
    return ContactSource(kind="import", organizer_id=organizer, import_id="imp-1", row_number=1,
                         email_permission=permission)


def created(
    contact_id: str = "c1", *, organizer: str = "org-a", permission: EmailPermission | None = None,
    **fields: str,
) -> ContactCreatedV1:
    return ContactCreatedV1(contact_id=contact_id, version=1, occurred_at=at(1),
                            source=source(organizer, permission), email="ann@x.io",
                            email_original=" Ann@X.io", fields=fields)  # type: ignore[arg-type]


def updated(
    version: int, contact_id: str = "c1", *, organizer: str = "org-a", **changes: str
) -> ContactUpdatedV1:
    return ContactUpdatedV1(contact_id=contact_id, version=version, occurred_at=at(version),
                            source=source(organizer), changes=changes)  # type: ignore[arg-type]


def matched(version: int, contact_id: str = "c1", *, organizer: str = "org-b",
            permission: EmailPermission | None = None) -> ContactMatchedV1:
    return ContactMatchedV1(contact_id=contact_id, version=version, occurred_at=at(version),
                            source=source(organizer, permission))


def named(name: str, contact_version: int, contact_id: str = "c1") -> DisplayNameResolvedV1:
    return DisplayNameResolvedV1(contact_id=contact_id, display_name=name, contact_version=contact_version)


def when(update: Update) -> datetime:
    """As the handler does: a contact event happened when it occurred; display names at minute 50."""
    return at(50) if isinstance(update, DisplayNameResolvedV1) else update.occurred_at


def fold(*updates: Update, start: Profile | None = None) -> Profile:
    profile = start or Profile(contact_id="c1")
    for update in updates:
        profile = apply(profile, update, at=when(update))
    return profile


# --- contact events ---------------------------------------------------------------------------------------


def test_created_then_updated_then_matched_builds_the_profile_and_its_version_follows_the_contact() -> None:
    profile = fold(created(first_name="Ann"))
    assert (profile.exists, profile.contact_version, profile.profile_version) == (True, 1, 1)
    assert (profile.created_at, profile.updated_at) == (at(1), at(1))

    profile = fold(updated(2, last_name="Lee", company="Acme"), start=profile)
    assert profile.fields == {"first_name": "Ann", "last_name": "Lee", "company": "Acme"}
    assert (profile.contact_version, profile.profile_version, profile.updated_at) == (2, 2, at(2))

    profile = fold(matched(3), start=profile)
    assert (profile.contact_version, profile.profile_version, profile.updated_at) == (3, 3, at(2))


@pytest.mark.parametrize(
    "stale", [created(first_name="Bob"), updated(2, first_name="Bob"), matched(3), matched(1)]
)
def test_stale_and_duplicate_contact_events_are_ignored(stale: Update) -> None:
    profile = fold(created(first_name="Ann"), updated(2, title="CTO"), matched(3))

    assert apply(profile, stale, at=at(99)) is profile


def test_an_update_that_repeats_known_values_is_not_published_and_keeps_the_update_time() -> None:
    profile = fold(created(first_name="Ann"))

    plan = plan_batch({"c1": profile}, [(updated(2, first_name="Ann"), at(2))])

    assert plan.snapshots == {} and plan.profiles["c1"].updated_at == at(1)


# --- display names ----------------------------------------------------------------------------------------


def test_a_display_name_is_a_change_to_the_profile() -> None:
    profile = fold(created(), named("ann", 1))

    assert (profile.display_name, profile.display_name_version, profile.profile_version) == ("ann", 1, 2)
    assert profile.updated_at == at(50)


def test_an_older_display_name_never_replaces_a_newer_one() -> None:
    profile = fold(created(), named("Ann Lee", 2))

    assert apply(profile, named("ann", 1), at=at(60)) is profile


def test_a_display_name_stays_valid_when_later_contact_events_do_not_change_it() -> None:
    """Enrichment publishes only when the name changes, so the name's version may trail the contact's."""
    profile = fold(created(first_name="Ann"), updated(2, title="CTO"), matched(3), named("Ann", 1))

    assert (profile.display_name, profile.contact_version) == ("Ann", 3)


def test_the_same_name_at_a_newer_version_is_remembered_but_not_a_change() -> None:
    profile = fold(created(), named("ann", 1))

    again = apply(profile, named("ann", 4), at=at(70))

    assert (again.display_name_version, again.profile_version, again.updated_at) == (4, 5, profile.updated_at)
    assert plan_batch({"c1": profile}, [(named("ann", 4), at(70))]).snapshots == {}


def test_a_different_name_at_the_same_version_does_not_replace_the_first() -> None:
    """Otherwise a new name would be published without a greater profile version."""
    profile = fold(created(), named("ann", 1))

    assert apply(profile, named("Ann B", 1), at=at(60)) is profile


def test_a_display_name_that_arrives_before_the_contact_is_kept_for_it() -> None:
    early = fold(named("ann", 1))
    assert (early.exists, early.display_name) == (False, "ann")
    assert plan_batch({}, [(named("ann", 1), at(50))]).snapshots == {}

    profile = fold(created(), start=early)

    assert (profile.exists, profile.profile_version, profile.display_name) == (True, 2, "ann")


# --- batches ----------------------------------------------------------------------------------------------


def test_a_batch_snapshots_each_changed_contact_once_caused_by_its_last_change() -> None:
    updates: list[tuple[Update, datetime]] = [
        (created("c1"), at(1)), (created("c2"), at(1)), (updated(2, "c1", title="CTO"), at(2)),
        (matched(3, "c1"), at(3)), (matched(2, "c2"), at(2)),
    ]

    plan = plan_batch({}, updates)

    assert plan.snapshots == {"c1": 2, "c2": 1}
    assert (plan.profiles["c1"].profile_version, plan.profiles["c1"].contact_version) == (3, 3)
    assert plan.profiles["c2"].profile_version == 2


def test_a_batch_with_only_matches_changes_versions_but_snapshots_nothing() -> None:
    known = {"c1": fold(created())}

    plan = plan_batch(known, [(matched(2), at(2))])

    assert plan.snapshots == {} and plan.profiles["c1"].contact_version == 2


def test_every_organizer_that_touched_a_contact_is_sighted_once_with_its_latest_stated_permission() -> None:
    updates: list[tuple[Update, datetime]] = [
        (created(organizer="org-a", permission="subscribed"), at(1)),
        (matched(2, organizer="org-b"), at(2)),
        (matched(3, organizer="org-a", permission="unsubscribed"), at(3)),
        (matched(4, organizer="org-a"), at(4)),
        (matched(4, organizer="org-c"), at(4)),  # a duplicate version: stale, so org-c saw nothing
    ]

    plan = plan_batch({}, updates)

    sightings = {s.organizer_id: (s.first_seen_at, s.last_seen_at, s.import_permission)
                 for s in plan.sightings}
    assert sightings == {
        "org-a": (at(1), at(4), Statement("unsubscribed", at(3), "imp-1")), "org-b": (at(2), at(2), None)
    }


def test_a_redelivered_batch_changes_nothing() -> None:
    updates: list[tuple[Update, datetime]] = [(created(), at(1)), (updated(2, first_name="Ann"), at(2)),
                                              (named("Ann", 2), at(3))]
    first = plan_batch({}, updates)

    again = plan_batch(first.profiles, updates)

    assert (again.profiles, again.snapshots, again.sightings, again.interactions) == ({}, {}, [], [])


# --- snapshots --------------------------------------------------------------------------------------------


def test_a_snapshot_is_the_full_public_profile() -> None:
    profile = fold(created(first_name="Ann", phone="+1 555"), named("Ann", 1))

    event = snapshot(profile)

    assert isinstance(event, ContactProfileUpdatedV1)
    assert event.model_dump() == {
        "contact_id": "c1", "profile_version": 2, "email": "ann@x.io", "email_original": " Ann@X.io",
        "first_name": "Ann", "last_name": None, "company": None, "title": None, "phone": "+1 555",
        "display_name": "Ann", "created_at": at(1), "updated_at": at(50), "bio": None, "social_links": {},
        "user_account_id": None,
        "field_sources": {name: {"kind": "import", "at": at(1)} for name in ("email", "first_name", "phone")},
    }


def test_there_is_no_snapshot_of_a_profile_that_does_not_exist_yet() -> None:
    with pytest.raises(ValueError, match="does not exist"):
        snapshot(fold(named("ann", 1)))


# --- properties -------------------------------------------------------------------------------------------

field_values = st.sampled_from(["Ann", "Bo", "Acme", "CTO"])
contact_steps = st.lists(
    st.one_of(st.fixed_dictionaries({}, optional={"first_name": field_values, "company": field_values}),
              st.just({})),  # {}: a match
    max_size=10,
)


def interleave(first: list[Update], second: list[Update], picks: list[bool]) -> list[Update]:
    """Merge two ordered streams (two topics), taking from ``second`` where ``picks`` says so."""
    merged, a, b = [], list(first), list(second)
    for pick in picks + [False] * len(a) + [True] * len(b):
        source = b if pick and b else a if a else b
        if source:
            merged.append(source.pop(0))
    return merged


@given(contact_steps, st.sets(st.integers(1, 12), max_size=4), st.lists(st.booleans(), max_size=20),
       st.integers(1, 4))
def test_batching_redelivery_and_interleaving_never_change_the_final_profile(
    steps: list[dict[str, str]], name_versions: set[int], picks: list[bool], batch_size: int
) -> None:
    """Contact events and display names come from two topics, each in its own order, interleaved in any way
    and cut into batches of any size, each batch redelivering the last update of the one before: the final
    profile (its version too) is always the same, and snapshots' profile versions only increase."""
    events: list[Update] = [created()]
    for version, changes in enumerate(steps, start=2):
        events.append(updated(version, **changes) if changes else matched(version))
    names: list[Update] = [named(f"name-{v}", v) for v in sorted(name_versions)]

    def run(stream: list[Update]) -> tuple[Profile, list[int]]:
        known: dict[str, Profile] = {}
        versions: list[int] = []
        for start in range(0, len(stream), batch_size):
            batch = stream[max(0, start - 1): start + batch_size]
            plan = plan_batch(known, [(update, when(update)) for update in batch])
            known.update(plan.profiles)
            versions += [known[cid].profile_version for cid in plan.snapshots]
        return known["c1"], versions

    final, versions = run(interleave(events, names, picks))
    reference, _ = run(events + names)

    assert final == reference  # every column, profile_version and updated_at included
    assert final.display_name == (f"name-{max(name_versions)}" if name_versions else None)
    assert versions == sorted(set(versions))


def test_a_recorded_interaction_advances_the_contact_version_and_is_not_published() -> None:
    profile = apply(Profile("c1"), created(first_name="Ann"), at=at(1))
    interaction = InteractionRecordedV1(contact_id="c1", version=2, occurred_at=at(2), source=source("org-b"),
                                        kind="ticket_purchased", interaction_id="m-1", kagibag_event_id="ev-1",
                                        order_id="o-1", ticket_count=1)

    plan = plan_batch({"c1": profile}, [(interaction, at(2))])

    assert plan.profiles["c1"].contact_version == 2 and plan.snapshots == {}
    assert plan.interactions == [RecordedInteraction("org-b", "c1", "m-1", "ticket_purchased", "ev-1", "o-1", 1, at(2))]


# --- the full profile and where each field came from ------------------------------------------------------


def interaction_source(organizer: str = "org-b", message: str = "m-1") -> ContactSource:
    return ContactSource(kind="interaction", organizer_id=organizer, interaction_id=message)


def test_bio_social_links_and_user_account_are_kept_with_the_source_of_each_value() -> None:
    first = ContactCreatedV1(contact_id="c1", version=1, occurred_at=at(1), source=source(), email="ann@x.io",
                             email_original="ann@x.io", fields={"first_name": "Ann"}, bio="Speaker",
                             social_links={"github": "ann"})
    completed = ContactUpdatedV1(contact_id="c1", version=2, occurred_at=at(2), source=interaction_source(),
                                 changes={"company": "Acme"}, social_links={"linkedin": "in/ann"},
                                 user_account_id="u-7")

    profile = fold(first, completed)

    assert (profile.bio, profile.social_links, profile.user_account_id) == (
        "Speaker", {"github": "ann", "linkedin": "in/ann"}, "u-7")
    by_import = FieldSource("import", "org-a", "imp-1", at(1))
    by_interaction = FieldSource("interaction", "org-b", "m-1", at(2))
    assert profile.sources == {
        "email": by_import, "first_name": by_import, "bio": by_import, "social_links.github": by_import,
        "company": by_interaction, "social_links.linkedin": by_interaction, "user_account_id": by_interaction,
    }
    published = snapshot(profile).model_dump()
    assert published["field_sources"]["company"] == {"kind": "interaction", "at": at(2)}
    assert "org-a" not in str(published) and "org-b" not in str(published) and "imp-1" not in str(published)


def test_a_restated_value_keeps_its_first_source() -> None:
    profile = fold(created(first_name="Ann"))
    again = ContactUpdatedV1(contact_id="c1", version=2, occurred_at=at(2), source=interaction_source(),
                             changes={"first_name": "Ann"})

    assert fold(again, start=profile).sources["first_name"] == FieldSource("import", "org-a", "imp-1", at(1))


# --- the email permission an import states ----------------------------------------------------------------


def test_a_later_import_saying_subscribed_does_not_lift_an_explicit_unsubscribe() -> None:
    plan = plan_batch({"c1": fold(created())}, [(matched(2, organizer="org-a", permission="subscribed"), at(2))])
    explicit = Statement("unsubscribed", at(1), "user-1")

    (change,) = settle_permissions(plan.sightings, {("org-a", "c1"): StoredPermission(None, explicit)})

    assert change.imported == Statement("subscribed", at(2), "imp-1")
    assert (change.permission.status, change.permission.source, change.permission.changed_by) == (
        "unsubscribed", "api", "user-1")


def test_an_older_import_statement_does_not_replace_a_newer_stored_one() -> None:
    plan = plan_batch({}, [(created(permission="subscribed"), at(1))])
    newer = Statement("unsubscribed", at(9), "imp-9")

    (change,) = settle_permissions(plan.sightings, {("org-a", "c1"): StoredPermission(newer, None)})

    assert (change.imported, change.permission.status, change.permission.source) == (
        newer, "unsubscribed", "import")


def test_sightings_without_a_statement_change_no_permission() -> None:
    plan = plan_batch({}, [(created(), at(1)), (matched(2, organizer="org-b"), at(2))])

    assert settle_permissions(plan.sightings, {}) == []
