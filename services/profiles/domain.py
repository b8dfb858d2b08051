"""The profile projection, free of I/O: fold contact events and display names into a contact's canonical
profile (``apply``), each organizer's sightings of it, and what one batch changes and publishes
(``plan_batch``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

from shared.events import (
    ContactCreatedV1,
    ContactEvent,
    ContactField,
    ContactMatchedV1,
    ContactProfileUpdatedV1,
    ContactUpdatedV1,
    DisplayNameResolvedV1,
    EmailPermission,
    InteractionRecordedV1,
)

Update = ContactEvent | DisplayNameResolvedV1


@dataclass(frozen=True)
class Profile:
    """A contact's canonical profile. A profile exists once its ``ContactCreatedV1`` has been applied; before
    that the row may already hold a display name that arrived first.

    ``contact_version``: the last contact event applied. ``display_name_version``: the contact version the
    display name was resolved at. ``profile_version``: counts changes to the canonical profile (what a
    snapshot carries), 1 at creation."""

    contact_id: str
    contact_version: int = 0
    profile_version: int = 0
    email: str | None = None
    email_original: str | None = None
    fields: dict[ContactField, str] = field(default_factory=dict)
    display_name: str | None = None
    display_name_version: int = 0
    created_at: datetime | None = None
    updated_at: datetime | None = None

    @property
    def exists(self) -> bool:
        return self.email is not None and self.created_at is not None

    def canonical(self) -> tuple[object, ...]:
        """What a snapshot shows; a change here is a new profile version."""
        return (self.email, self.email_original, self.fields, self.display_name)


def is_stale(profile: Profile, update: Update) -> bool:
    """Contact events at or below the applied contact version, and display names resolved at an older
    contact version than the known display name's, change nothing (redeliveries, replays, reordering)."""
    if isinstance(update, DisplayNameResolvedV1):
        return update.contact_version < profile.display_name_version
    return update.version <= profile.contact_version


def _settle(before: Profile, after: Profile, at: datetime) -> Profile:
    """Count a change to the canonical profile as a new version (once the profile exists)."""
    if before.canonical() == after.canonical() and before.exists == after.exists:
        return after
    updated_at = at if before.updated_at is None else max(before.updated_at, at)
    profile_version = after.profile_version + (1 if after.exists else 0)
    return replace(after, profile_version=profile_version, updated_at=updated_at)


def apply(profile: Profile, update: Update, *, at: datetime) -> Profile:
    """The profile after ``update``; a stale update returns ``profile`` unchanged. ``at`` is when the change
    happened: the contact event's ``occurred_at``, or when the display name was resolved."""
    if is_stale(profile, update):
        return profile
    if isinstance(update, DisplayNameResolvedV1):
        after = replace(
            profile, display_name=update.display_name, display_name_version=update.contact_version
        )
    elif isinstance(update, ContactCreatedV1):
        after = replace(
            profile,
            contact_version=update.version,
            email=update.email,
            email_original=update.email_original,
            fields={**profile.fields, **update.fields},
            created_at=update.occurred_at,
        )
    elif isinstance(update, ContactUpdatedV1):
        after = replace(profile, contact_version=update.version, fields={**profile.fields, **update.changes})
    elif isinstance(update, ContactMatchedV1 | InteractionRecordedV1):
        after = replace(profile, contact_version=update.version)
    else:
        raise TypeError(f"unknown update {type(update).__name__}")
    return _settle(profile, after, at)


@dataclass(frozen=True)
class Sighting:
    """An organizer's contact with a person, coalesced over a batch. ``email_permission`` is ``None`` when
    no event said anything about it (the stored value then stays as it is)."""

    organizer_id: str
    contact_id: str
    first_seen_at: datetime
    last_seen_at: datetime
    email_permission: EmailPermission | None = None


def _sighted(previous: Sighting | None, event: ContactEvent) -> Sighting:
    source, at = event.source, event.occurred_at
    if previous is None:
        return Sighting(source.organizer_id, event.contact_id, at, at, source.email_permission)
    return replace(
        previous,
        first_seen_at=min(previous.first_seen_at, at),
        last_seen_at=max(previous.last_seen_at, at),
        email_permission=source.email_permission or previous.email_permission,
    )


@dataclass(frozen=True)
class BatchPlan:
    """``profiles``: every row that changes. ``snapshots``: per contact whose canonical profile changed, the
    index (in the input) of the last update that changed it, i.e. the cause of its one snapshot.
    ``sightings``: per organizer and contact, from the contact events applied."""

    profiles: dict[str, Profile]
    snapshots: dict[str, int]
    sightings: list[Sighting]


def plan_batch(known: dict[str, Profile], updates: Sequence[tuple[Update, datetime]]) -> BatchPlan:
    """Fold ``updates`` (each with when it happened) into the ``known`` profiles, per contact in version
    order; contacts missing from ``known`` start blank."""

    def position(index: int) -> int:
        update = updates[index][0]
        return update.contact_version if isinstance(update, DisplayNameResolvedV1) else update.version

    state = dict(known)
    changed: dict[str, Profile] = {}
    snapshots: dict[str, int] = {}
    sightings: dict[tuple[str, str], Sighting] = {}
    for index in sorted(range(len(updates)), key=position):  # stable: arrival order among equals
        update, at = updates[index]
        before = state.get(update.contact_id) or Profile(contact_id=update.contact_id)
        if is_stale(before, update):
            continue
        after = apply(before, update, at=at)
        if after != before:
            state[update.contact_id] = changed[update.contact_id] = after
        if after.profile_version != before.profile_version:
            snapshots[update.contact_id] = index
        if isinstance(update, ContactEvent):
            key = (update.source.organizer_id, update.contact_id)
            sightings[key] = _sighted(sightings.get(key), update)
    return BatchPlan(profiles=changed, snapshots=snapshots, sightings=list(sightings.values()))


def snapshot(profile: Profile) -> ContactProfileUpdatedV1:
    """The public full snapshot of an existing profile (no organizer's private data is in a profile)."""
    if profile.email is None or profile.email_original is None or profile.created_at is None:
        raise ValueError(f"profile {profile.contact_id} does not exist yet")
    return ContactProfileUpdatedV1(
        contact_id=profile.contact_id,
        profile_version=profile.profile_version,
        email=profile.email,
        email_original=profile.email_original,
        **profile.fields,
        display_name=profile.display_name,
        created_at=profile.created_at,
        updated_at=profile.updated_at or profile.created_at,
    )
