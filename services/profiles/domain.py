"""The profile projection, free of I/O: fold contact events and display names into a contact's canonical
profile (``apply``), each organizer's sightings of it with the permission its imports stated and the
interactions with its events, and what one batch changes and publishes (``plan_batch``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

from services.profiles.insights import RecordedInteraction
from services.profiles.permission import Permission, Statement, effective, latest_imported
from shared.events import (
    ContactCreatedV1,
    ContactEvent,
    ContactField,
    ContactMatchedV1,
    ContactProfileUpdatedV1,
    ContactUpdatedV1,
    DisplayNameResolvedV1,
    FieldSourceV1,
    InteractionRecordedV1,
)
from shared.events import SourceKind as events_SourceKind

Update = ContactEvent | DisplayNameResolvedV1
SourceKind = events_SourceKind


@dataclass(frozen=True)
class FieldSource:
    """Where a field's current value came from: an organizer's import (``reference`` = import id) or an
    interaction with one of its events (``reference`` = the interaction message's id), at ``at``."""

    kind: SourceKind
    organizer_id: str
    reference: str | None
    at: datetime

    @classmethod
    def of(cls, event: ContactEvent) -> FieldSource:
        source = event.source
        reference = source.import_id if source.kind == "import" else source.interaction_id
        return cls(kind=source.kind, organizer_id=source.organizer_id, reference=reference, at=event.occurred_at)


@dataclass(frozen=True)
class Profile:
    """A contact's canonical profile. A profile exists once its ``ContactCreatedV1`` has been applied; before
    that the row may already hold a display name that arrived first.

    ``contact_version``: the last contact event applied. ``display_name_version``: the contact version the
    display name was resolved at. Both only grow, and every change to the canonical profile raises one of
    them, so their sum is the ``profile_version``: increasing per contact, and a function of what has been
    applied only (not of how the two topics interleaved), so a rebuild reproduces it.

    ``sources`` is keyed by ``email``, the standard fields, ``bio``, ``user_account_id`` and
    ``social_links.<network>``."""

    contact_id: str
    contact_version: int = 0
    email: str | None = None
    email_original: str | None = None
    fields: dict[ContactField, str] = field(default_factory=dict)
    display_name: str | None = None
    display_name_version: int = 0
    created_at: datetime | None = None
    updated_at: datetime | None = None
    bio: str | None = None
    social_links: dict[str, str] = field(default_factory=dict)
    user_account_id: str | None = None
    sources: dict[str, FieldSource] = field(default_factory=dict)

    @property
    def exists(self) -> bool:
        return self.email is not None and self.created_at is not None

    @property
    def profile_version(self) -> int:
        return self.contact_version + self.display_name_version

    def canonical(self) -> tuple[object, ...]:
        """What a snapshot shows; a change here is published."""
        return (self.email, self.email_original, self.fields, self.display_name, self.bio, self.social_links,
                self.user_account_id, self.sources)


def is_stale(profile: Profile, update: Update) -> bool:
    """Contact events at or below the applied contact version change nothing (redeliveries, replays); nor
    do display names resolved at a contact version no newer than the known display name's (older ones, and
    the same one re-published: the first name at a version stands, so the version always grows with a new
    name)."""
    if isinstance(update, DisplayNameResolvedV1):
        return update.contact_version <= profile.display_name_version
    return update.version <= profile.contact_version


def _settle(before: Profile, after: Profile, at: datetime) -> Profile:
    """Stamp a change to the canonical profile with when it happened."""
    if before.canonical() == after.canonical() and before.exists == after.exists:
        return after
    updated_at = at if before.updated_at is None else max(before.updated_at, at)
    return replace(after, updated_at=updated_at)


def _stated(event: ContactCreatedV1 | ContactUpdatedV1) -> dict[str, str]:
    """What ``event`` states, by the names ``sources`` uses (blanks state nothing)."""
    fields: dict[str, str] = {**event.fields} if isinstance(event, ContactCreatedV1) else {**event.changes}  # type: ignore[dict-item]
    stated = {"email": event.email, **fields} if isinstance(event, ContactCreatedV1) else fields
    if event.bio:
        stated["bio"] = event.bio
    if event.user_account_id:
        stated["user_account_id"] = event.user_account_id
    for network, value in event.social_links.items():
        stated[f"social_links.{network}"] = value
    return stated


def _value(profile: Profile, name: str) -> object:
    if name.startswith("social_links."):
        return profile.social_links.get(name.removeprefix("social_links."))
    if name in ("email", "bio", "user_account_id"):
        return getattr(profile, name)
    return profile.fields.get(name)  # type: ignore[call-overload]


def _contact_changed(profile: Profile, event: ContactCreatedV1 | ContactUpdatedV1) -> Profile:
    """``profile`` with what ``event`` states (a blank erases nothing), and ``event`` as the source of every
    value that changed."""
    changed = [name for name, value in _stated(event).items() if _value(profile, name) != value]
    sources = {**profile.sources, **dict.fromkeys(changed, FieldSource.of(event))} if changed else profile.sources
    creation = isinstance(event, ContactCreatedV1)
    return replace(
        profile,
        contact_version=event.version,
        email=event.email if isinstance(event, ContactCreatedV1) else profile.email,
        email_original=event.email_original if isinstance(event, ContactCreatedV1) else profile.email_original,
        created_at=event.occurred_at if creation else profile.created_at,
        fields={**profile.fields, **(event.fields if isinstance(event, ContactCreatedV1) else event.changes)},
        bio=event.bio or profile.bio,
        social_links={**profile.social_links, **event.social_links} if event.social_links else profile.social_links,
        user_account_id=event.user_account_id or profile.user_account_id,
        sources=sources,
    )


def apply(profile: Profile, update: Update, *, at: datetime) -> Profile:
    """The profile after ``update``; a stale update returns ``profile`` unchanged. ``at`` is when the change
    happened: the contact event's ``occurred_at``, or when the display name was resolved."""
    if is_stale(profile, update):
        return profile
    if isinstance(update, DisplayNameResolvedV1):
        after = replace(
            profile, display_name=update.display_name, display_name_version=update.contact_version
        )
    elif isinstance(update, ContactCreatedV1 | ContactUpdatedV1):
        after = _contact_changed(profile, update)
    elif isinstance(update, ContactMatchedV1 | InteractionRecordedV1):
        after = replace(profile, contact_version=update.version)
    else:
        raise TypeError(f"unknown update {type(update).__name__}")
    return _settle(profile, after, at)


@dataclass(frozen=True)
class Sighting:
    """An organizer's contact with a person, coalesced over a batch. ``import_permission``: the latest email
    permission an import of this organizer stated in the batch, ``None`` when none said anything."""

    organizer_id: str
    contact_id: str
    first_seen_at: datetime
    last_seen_at: datetime
    import_permission: Statement | None = None


def _import_statement(event: ContactEvent) -> Statement | None:
    source = event.source
    if source.kind != "import" or source.email_permission is None:
        return None
    return Statement(status=source.email_permission, at=event.occurred_at, by=source.import_id or source.organizer_id)


def _sighted(previous: Sighting | None, event: ContactEvent) -> Sighting:
    at, statement = event.occurred_at, _import_statement(event)
    if previous is None:
        return Sighting(event.source.organizer_id, event.contact_id, at, at, statement)
    return replace(
        previous,
        first_seen_at=min(previous.first_seen_at, at),
        last_seen_at=max(previous.last_seen_at, at),
        import_permission=latest_imported(previous.import_permission, statement),
    )


@dataclass(frozen=True)
class BatchPlan:
    """``profiles``: every row that changes. ``snapshots``: per contact whose canonical profile changed, the
    index (in the input) of the last update that changed it, i.e. the cause of its one snapshot.
    ``sightings``: per organizer and contact, from the contact events applied. ``interactions``: the
    interactions recorded by those events."""

    profiles: dict[str, Profile]
    snapshots: dict[str, int]
    sightings: list[Sighting]
    interactions: list[RecordedInteraction]


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
    interactions: list[RecordedInteraction] = []
    for index in sorted(range(len(updates)), key=position):  # stable: arrival order among equals
        update, at = updates[index]
        before = state.get(update.contact_id) or Profile(contact_id=update.contact_id)
        if is_stale(before, update):
            continue
        after = apply(before, update, at=at)
        if after != before:
            state[update.contact_id] = changed[update.contact_id] = after
        if after.exists and (before.canonical() != after.canonical() or not before.exists):
            snapshots[update.contact_id] = index
        if isinstance(update, ContactEvent):
            key = (update.source.organizer_id, update.contact_id)
            sightings[key] = _sighted(sightings.get(key), update)
        if isinstance(update, InteractionRecordedV1):
            interactions.append(RecordedInteraction.of(update))
    return BatchPlan(
        profiles=changed, snapshots=snapshots, sightings=list(sightings.values()), interactions=interactions
    )


@dataclass(frozen=True)
class StoredPermission:
    """The two kinds of statements an organizer contact holds: the latest of its imports and the latest set
    explicitly through the API (written by the API side; read here to compute what applies)."""

    imported: Statement | None
    explicit: Statement | None


@dataclass(frozen=True)
class PermissionChange:
    organizer_id: str
    contact_id: str
    imported: Statement
    permission: Permission


def settle_permissions(
    sightings: Sequence[Sighting], stored: dict[tuple[str, str], StoredPermission]
) -> list[PermissionChange]:
    """Fold each sighting's import statement into the stored one (``latest_imported``: an unsubscribe, else the
    latest, stands) and recompute the
    effective permission; sightings without a statement change nothing."""
    changes = []
    for sighting in sightings:
        if sighting.import_permission is None:
            continue
        current = stored.get((sighting.organizer_id, sighting.contact_id), StoredPermission(None, None))
        imported = latest_imported(current.imported, sighting.import_permission)
        assert imported is not None
        changes.append(
            PermissionChange(sighting.organizer_id, sighting.contact_id, imported,
                             effective(imported, current.explicit))
        )
    return changes


def snapshot(profile: Profile) -> ContactProfileUpdatedV1:
    """The public full snapshot of an existing profile: no organizer's private data, and of each field's
    source only its kind and time (never the organizer or the import)."""
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
        bio=profile.bio,
        social_links=profile.social_links,
        user_account_id=profile.user_account_id,
        field_sources={name: FieldSourceV1(kind=source.kind, at=source.at) for name, source in profile.sources.items()},
    )
