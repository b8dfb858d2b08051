"""Display names, free of I/O: the fallback chain (``display_name``), the little state kept per contact to
recompute it (``evolve``), and what one batch of contact events resolves (``plan_batch``)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime

from shared.wire import ContactCreated, ContactMatched, ContactUpdated, InteractionRecorded

ContactEvent = ContactCreated | ContactUpdated | ContactMatched | InteractionRecorded


def _known(value: str | None) -> str | None:
    """A name part with its surrounding whitespace removed; a blank part is not known."""
    stripped = value.strip() if value is not None else ""
    return stripped or None


def display_name(*, email: str | None, first_name: str | None, last_name: str | None) -> str | None:
    """The human-readable label of a contact: the full name ("first last", or the one part that is known),
    else the email's local part (everything before the last ``@``). ``None`` only when neither is known."""
    full_name = " ".join(part for part in (_known(first_name), _known(last_name)) if part)
    if full_name:
        return full_name
    if email is None or not email.strip():
        return None
    local, at, _ = email.strip().rpartition("@")
    return (local.strip() if at else email.strip()) or email.strip()


@dataclass(frozen=True)
class ContactNames:
    """What enrichment keeps per contact. ``display_name`` is the last one published; ``email`` is ``None``
    only if the contact's creation was never seen (a gap in the log). ``updated_at`` is when the last applied
    event occurred, taken from the log (not the clock), so replaying the log rebuilds the same state."""

    contact_id: str
    version: int
    email: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    display_name: str | None = None
    updated_at: datetime | None = None

    @property
    def resolved(self) -> str | None:
        return display_name(email=self.email, first_name=self.first_name, last_name=self.last_name)


def is_stale(state: ContactNames | None, event: ContactEvent) -> bool:
    """Events at or below the version already applied change nothing (redeliveries, replays)."""
    return state is not None and event.version <= state.version


def evolve(state: ContactNames | None, event: ContactEvent) -> ContactNames:
    """The state after ``event``; a stale event returns ``state`` unchanged. ``display_name`` is left alone:
    it moves only when a name is published (``plan_batch``)."""
    if state is not None and event.version <= state.version:
        return state
    current = replace(
        state or ContactNames(contact_id=event.contact_id, version=0), updated_at=event.occurred_at
    )
    if isinstance(event, ContactCreated):
        return replace(
            current,
            version=event.version,
            email=event.email,
            first_name=event.fields.get("first_name", current.first_name),
            last_name=event.fields.get("last_name", current.last_name),
        )
    if isinstance(event, ContactUpdated):
        return replace(
            current,
            version=event.version,
            first_name=event.changes.get("first_name", current.first_name),
            last_name=event.changes.get("last_name", current.last_name),
        )
    if isinstance(event, ContactMatched | InteractionRecorded):
        return replace(current, version=event.version)
    raise TypeError(f"unknown contact event {type(event).__name__}")


@dataclass(frozen=True)
class Resolution:
    """A display name to publish: ``contact_version`` is the version of the event that produced it."""

    contact_id: str
    display_name: str
    contact_version: int


@dataclass(frozen=True)
class BatchPlan:
    changed: dict[str, ContactNames] = field(default_factory=dict)
    resolutions: list[Resolution] = field(default_factory=list)


def plan_batch(known: dict[str, ContactNames], events: Iterable[ContactEvent]) -> BatchPlan:
    """Fold a batch into the known states in per-contact version order, and resolve at most one display name
    per contact: the final one, and only if it differs from the one last published (coalesced: a name that
    changes and changes back within a batch publishes nothing)."""
    state = dict(known)
    changed: dict[str, ContactNames] = {}
    changed_by: dict[str, int] = {}
    names: dict[str, str | None] = {}
    for event in sorted(events, key=lambda e: e.version):  # stable: keeps arrival order per version
        before = state.get(event.contact_id)
        if is_stale(before, event):
            continue
        after = evolve(before, event)
        if event.contact_id not in names:
            names[event.contact_id] = before.resolved if before is not None else None
        name_before, names[event.contact_id] = names[event.contact_id], after.resolved
        if names[event.contact_id] != name_before:
            changed_by[event.contact_id] = event.version
        state[event.contact_id] = changed[event.contact_id] = after
    resolutions: list[Resolution] = []
    for contact_id, after in changed.items():
        name = names[contact_id]
        if name is not None and name != after.display_name:
            # a name that differs from the published one without having changed in this batch (the rule
            # changed since it was published) is published at the contact's current version
            resolutions.append(Resolution(contact_id, name, changed_by.get(contact_id, after.version)))
            changed[contact_id] = replace(after, display_name=name)
    return BatchPlan(changed=changed, resolutions=resolutions)
