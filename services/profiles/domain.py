"""The profile projection, free of I/O: whose value is whose.

A contact's events say by their source whose values they carry: ``import`` events carry the values an
organizer brought (``source.organizer_id``'s own), person-stated events (``interaction``, ``attendee``) the
values the person gave the platform themself. So per contact there is

- the **canonical profile**: the fold of the person-stated events only (``Canonical``; published downstream);
- per organizer with a relationship (any event whose ``source.organizer_id`` is that organizer), its
  **layer** (the fold of its own imports) and its **view** (``View``, ``overlay``): per field the person's
  value where the person stated one, else the organizer's own; the same for the email's spelling; the display
  name from the view's names, else the email's local part.

An organizer's view therefore changes only through its own events or the person's statements: another
organizer's import or interaction never touches it, nor its ``version`` and times (a count and times of its
own changes, so a rebuild reproduces them). ``plan_batch`` folds a batch of contact events into the known
states, per contact in version order.

This fold is the specification: the service applies batches set-wise in SQL (``store.merge``), and
``tests/integration/test_profiles_merge.py`` checks the two agree."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from services.profiles.insights import RecordedInteraction
from services.profiles.permission import Statement, latest_imported
from shared.events import (
    CONTACT_FIELDS,
    ContactCreatedV1,
    ContactEvent,
    ContactProfileUpdatedV1,
    FieldSourceV1,
    InteractionRecordedV1,
)

PERSON_STATED = frozenset({"interaction", "attendee"})
"""Source kinds whose values the person stated: canonical, seen by every organizer with a relationship."""
RELATIONSHIP_KINDS = frozenset({"import", "interaction"})
"""Source kinds that make ``source.organizer_id`` one of the contact's organizers (its import, or an
interaction with its event)."""

EMAIL = "email"
"""The key of the email spelling's source in ``Layer.sources``."""
SOCIAL = "social_links."


def person_stated(event: ContactEvent) -> bool:
    return event.source.kind in PERSON_STATED


@dataclass(frozen=True)
class FieldSource:
    """Where a value came from: ``kind`` and when. An organizer's own import also names the organizer and the
    import (``reference``); a person-stated value as an organizer's view shows it names neither."""

    kind: str
    at: datetime
    organizer_id: str | None = None
    reference: str | None = None

    @classmethod
    def of(cls, event: ContactEvent) -> FieldSource:
        source = event.source
        reference = source.import_id if source.kind == "import" else source.interaction_id
        return cls(kind=source.kind, at=event.occurred_at, organizer_id=source.organizer_id, reference=reference)

    def anonymous(self) -> FieldSource:
        return FieldSource(kind=self.kind, at=self.at)


def display_name(*, email: str | None, first_name: str | None, last_name: str | None) -> str | None:
    """The full name ("first last", or the one part known), else the email's local part (everything before
    the last ``@``). ``None`` only when neither is known."""
    full_name = " ".join(part for part in (_known(first_name), _known(last_name)) if part)
    if full_name:
        return full_name
    if email is None or not email.strip():
        return None
    local, at, _ = email.strip().rpartition("@")
    return (local.strip() if at else email.strip()) or email.strip()


def _known(value: str | None) -> str | None:
    stripped = value.strip() if value is not None else ""
    return stripped or None


def statements(event: Any) -> dict[str, str]:
    """What a contact event states, by value name: the standard fields, ``bio``, ``user_account_id`` and
    ``social_links.<network>`` (blanks state nothing). Only a creation (``fields``) or an update (``changes``)
    states values; the model or its wire struct alike."""
    values = getattr(event, "fields", None)
    if values is None:
        values = getattr(event, "changes", None)
    if values is None:
        return {}
    stated: dict[str, str] = dict(values.items())
    if event.bio:
        stated["bio"] = event.bio
    if event.user_account_id:
        stated["user_account_id"] = event.user_account_id
    for network, value in event.social_links.items():
        stated[SOCIAL + network] = value
    return stated


def spelling(event: ContactEvent) -> str | None:
    """The email as the event's source wrote it, if the event says."""
    written: str | None = getattr(event, "email_original", None)
    return (written.strip() or None) if written else None


@dataclass(frozen=True)
class Layer:
    """The values one party stated (the person, or one organizer through its imports), by value name, each
    with its source, and the first spelling of the email that party wrote (its source under ``"email"``).
    A blank never erases a value; a later spelling never replaces the first."""

    values: Mapping[str, str] = field(default_factory=dict)
    sources: Mapping[str, FieldSource] = field(default_factory=dict)
    email_original: str | None = None

    def stating(self, event: ContactEvent) -> Layer:
        changed = {name: value for name, value in statements(event).items() if self.values.get(name) != value}
        written = spelling(event) if self.email_original is None else None
        if not changed and written is None:
            return self
        source = FieldSource.of(event)
        sources = {**self.sources, **dict.fromkeys(changed, source)}
        if written is not None:
            sources[EMAIL] = source
        return Layer(values={**self.values, **changed}, sources=sources,
                     email_original=self.email_original or written)


@dataclass(frozen=True)
class Shown:
    """What a view shows (or a snapshot publishes): values by name, the email's spelling, the display name
    and each shown value's source."""

    email: str | None
    email_original: str | None
    values: Mapping[str, str]
    sources: Mapping[str, FieldSource]
    display_name: str | None

    def value(self, name: str) -> str | None:
        return self.values.get(name)

    @property
    def social_links(self) -> dict[str, str]:
        return {name.removeprefix(SOCIAL): value for name, value in self.values.items() if name.startswith(SOCIAL)}


def overlay(email: str | None, person: Layer, own: Layer) -> Shown:
    """An organizer's view: the person's value wherever the person stated one (its source reduced to kind and
    time), else the organizer's own; the email as the person first wrote it, else as the organizer first
    did, else normalized."""
    values = {**own.values, **person.values}
    sources = {**own.sources, **{name: source.anonymous() for name, source in person.sources.items()}}
    return Shown(
        email=email,
        email_original=person.email_original or own.email_original or email,
        values=values,
        sources=sources,
        display_name=display_name(email=email, first_name=values.get("first_name"),
                                  last_name=values.get("last_name")),
    )


@dataclass(frozen=True)
class Canonical:
    """A contact's canonical profile: the person's own statements. ``version``: the last contact event
    applied (of any source: events at or below it are stale). ``profile_version`` rises with every change to
    what a snapshot publishes: ``max(2 × the event's version, the previous + 1)``, a function of the log
    (a rebuild reproduces it) that stays above every version published before profiles resolved display names
    itself (then the log position plus the display name's). ``updated_at``: the last change the person made
    (the creation until then)."""

    contact_id: str
    version: int = 0
    email: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    stated: Layer = field(default_factory=Layer)
    profile_version: int = 0

    @property
    def exists(self) -> bool:
        return self.email is not None and self.created_at is not None

    def shown(self) -> Shown:
        """The public profile: the person's values, the email as the person first wrote it (else normalized);
        sources by kind and time only."""
        return overlay(self.email, self.stated, Layer())


@dataclass(frozen=True)
class View:
    """An organizer's view of a contact, with what the organizer brought (``imported``, its layer), its
    relationship's first and last sighting and the latest email permission its imports stated. ``version``
    counts the view's changes (1 when it appeared); ``created_at`` is when it appeared (the organizer's first
    event), ``updated_at`` its last change."""

    organizer_id: str
    contact_id: str
    imported: Layer
    version: int
    created_at: datetime
    updated_at: datetime
    first_seen_at: datetime
    last_seen_at: datetime
    import_permission: Statement | None = None


@dataclass(frozen=True)
class ContactState:
    """Everything the projection keeps about one contact: its canonical profile and every organizer's view."""

    canonical: Canonical
    views: Mapping[str, View] = field(default_factory=dict)

    def shown(self, organizer_id: str) -> Shown:
        return overlay(self.canonical.email, self.canonical.stated, self.views[organizer_id].imported)


def _import_statement(event: ContactEvent) -> Statement | None:
    source = event.source
    if source.kind != "import" or source.email_permission is None:
        return None
    return Statement(status=source.email_permission, at=event.occurred_at, by=source.import_id or source.organizer_id)


def _canonical_after(canonical: Canonical, event: ContactEvent) -> Canonical:
    after = replace(canonical, version=event.version)
    if isinstance(event, ContactCreatedV1):
        after = replace(after, email=event.email, created_at=event.occurred_at)
    if person_stated(event):
        after = replace(after, stated=canonical.stated.stating(event))
    if after.stated == canonical.stated and after.exists == canonical.exists:
        return after
    at = event.occurred_at
    return replace(
        after,
        updated_at=at if canonical.updated_at is None else max(canonical.updated_at, at),
        profile_version=max(2 * event.version, canonical.profile_version + 1),
    )


def _view_after(state: ContactState, canonical: Canonical, organizer_id: str, event: ContactEvent) -> View:
    """``organizer_id``'s view after ``event`` (which is its own, or changed the canonical profile)."""
    at, own = event.occurred_at, event.source.organizer_id == organizer_id
    before = state.views.get(organizer_id)
    if before is None:
        imported = Layer().stating(event) if event.source.kind == "import" else Layer()
        return View(organizer_id, event.contact_id, imported, version=1, created_at=at, updated_at=at,
                    first_seen_at=at, last_seen_at=at, import_permission=_import_statement(event))
    after = before
    if own:
        imported = before.imported.stating(event) if event.source.kind == "import" else before.imported
        after = replace(
            before,
            imported=imported,
            first_seen_at=min(before.first_seen_at, at),
            last_seen_at=max(before.last_seen_at, at),
            import_permission=latest_imported(before.import_permission, _import_statement(event)),
        )
    shown_before = state.shown(organizer_id)
    shown_after = overlay(canonical.email, canonical.stated, after.imported)
    if shown_after != shown_before:
        after = replace(after, version=before.version + 1, updated_at=max(before.updated_at, at))
    return after


def evolve(state: ContactState, event: ContactEvent) -> ContactState:
    """The contact after ``event``; a stale event (at or below the applied version) changes nothing. Only
    the event's own organizer's view and, when the person stated something new, every view, are touched."""
    if event.version <= state.canonical.version:
        return state
    canonical = _canonical_after(state.canonical, event)
    touched = set(state.views) if canonical.stated != state.canonical.stated else set()
    if event.source.kind in RELATIONSHIP_KINDS:
        touched.add(event.source.organizer_id)
    views = {**state.views, **{org: _view_after(state, canonical, org, event) for org in touched}}
    return ContactState(canonical, views)


def fold(contact_id: str, events: Sequence[ContactEvent]) -> ContactState:
    """The state a contact's events give, applied in version order: the specification of the read models."""
    state = ContactState(Canonical(contact_id))
    for event in sorted(events, key=lambda e: e.version):
        state = evolve(state, event)
    return state


@dataclass(frozen=True)
class BatchPlan:
    """``canonicals``: every canonical row that changes. ``views``: every view that changes (new ones too),
    with what it now shows. ``snapshots``: per contact whose published profile changed, the index (in the
    input) of the last event that changed it, the cause of its one snapshot. ``interactions``: those the batch
    records."""

    canonicals: dict[str, Canonical]
    views: list[tuple[View, Shown]]
    snapshots: dict[str, int]
    interactions: list[RecordedInteraction]


def plan_batch(known: Mapping[str, ContactState], events: Sequence[ContactEvent]) -> BatchPlan:
    """Fold ``events`` into the ``known`` states, per contact in version order; unknown contacts start
    blank."""
    state = dict(known)
    canonicals: dict[str, Canonical] = {}
    changed_views: set[tuple[str, str]] = set()
    snapshots: dict[str, int] = {}
    interactions: list[RecordedInteraction] = []
    for index in sorted(range(len(events)), key=lambda i: events[i].version):  # stable among equals
        event = events[index]
        before = state.get(event.contact_id) or ContactState(Canonical(event.contact_id))
        after = evolve(before, event)
        if after is before:
            continue
        state[event.contact_id] = after
        canonicals[event.contact_id] = after.canonical
        if after.canonical.profile_version != before.canonical.profile_version:
            snapshots[event.contact_id] = index
        changed_views.update(
            (organizer_id, event.contact_id)
            for organizer_id, view in after.views.items()
            if before.views.get(organizer_id) != view
        )
        if isinstance(event, InteractionRecordedV1):
            interactions.append(RecordedInteraction.of(event))
    views = [(state[contact].views[organizer], state[contact].shown(organizer))
             for organizer, contact in sorted(changed_views)]
    return BatchPlan(canonicals=canonicals, views=views, snapshots=snapshots, interactions=interactions)


def snapshot(canonical: Canonical) -> ContactProfileUpdatedV1:
    """The public full snapshot of an existing canonical profile: only what the person stated, plus the
    email, ids and times; of each value's source only its kind and time."""
    shown = canonical.shown()
    if shown.email is None or shown.email_original is None or canonical.created_at is None:
        raise ValueError(f"contact {canonical.contact_id} does not exist yet")
    return ContactProfileUpdatedV1(
        contact_id=canonical.contact_id,
        profile_version=canonical.profile_version,
        email=shown.email,
        email_original=shown.email_original,
        **{name: shown.value(name) for name in CONTACT_FIELDS},
        display_name=shown.display_name,
        created_at=canonical.created_at,
        updated_at=canonical.updated_at or canonical.created_at,
        bio=shown.value("bio"),
        social_links=shown.social_links,
        user_account_id=shown.value("user_account_id"),
        field_sources={name: FieldSourceV1(kind=s.kind, at=s.at) for name, s in shown.sources.items()},
    )

