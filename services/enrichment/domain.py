"""enrichment's rules, free of I/O.

- ``plan_batch``: fold contact events into what enrichment keeps per contact (``Person``): the email, the values
  the person stated themself (events whose source kind is ``interaction`` or ``attendee``: the canonical profile)
  and the organizers with a relationship (an event of theirs is on the contact's log). An organizer's imported
  values are never kept: they are that organizer's, and suggestions are compared with the person's own values.
  A contact is *due* for the providers when it is created or the person's own standard fields change.
- ``reconcile``: a provider run's candidates against the contact's earlier suggestions: at most one pending
  suggestion per field; never one equal to the person's current value; never again a value the person already
  decided on (accepted, customized or rejected) from the same source."""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Literal

from shared.events import CONTACT_FIELDS, PERSON_STATED, ContactField
from shared.wire import ContactCreated, ContactMatched, ContactUpdated, InteractionRecorded

ContactEvent = ContactCreated | ContactUpdated | ContactMatched | InteractionRecorded
Status = Literal["pending", "accepted", "customized", "rejected", "withdrawn"]
DECIDED: frozenset[Status] = frozenset({"accepted", "customized", "rejected"})


@dataclass(frozen=True, slots=True)
class Person:
    """What enrichment keeps per contact. ``fields``: the person's own standard fields; ``sources``: field (or
    ``social_links.<network>``) -> (kind, when). ``version`` is the contact version of the last change applied:
    an event at or below it changes nothing (redeliveries, replays)."""

    contact_id: str
    version: int
    email: str | None = None
    fields: Mapping[str, str] = field(default_factory=dict)
    bio: str | None = None
    social_links: Mapping[str, str] = field(default_factory=dict)
    sources: Mapping[str, tuple[str, datetime]] = field(default_factory=dict)
    organizers: frozenset[str] = frozenset()
    updated_at: datetime | None = None

    def current(self, name: str) -> str | None:
        return self.fields.get(name)


@dataclass(frozen=True)
class BatchPlan:
    changed: dict[str, Person]
    """The contacts whose kept state changed (to be written), by id."""
    due: set[str]
    """The contacts whose providers should run: created, or the person's own standard fields changed."""


def _stated(person: Person, event: ContactCreated | ContactUpdated) -> tuple[Person, bool]:
    """``person`` with the event's person-stated values, and whether a standard field changed (``person`` itself
    when nothing changed)."""
    values = event.fields if isinstance(event, ContactCreated) else event.changes
    kind, at = event.source.kind, event.occurred_at
    fields = dict(person.fields)
    sources = dict(person.sources)
    for name, value in values.items():
        if value and fields.get(name) != value:
            fields[name] = value
            sources[name] = (kind, at)
    standard_changed = fields != person.fields
    bio = person.bio
    if event.bio and event.bio != bio:
        bio = event.bio
        sources["bio"] = (kind, at)
    links = dict(person.social_links)
    for network, link in event.social_links.items():
        if link and links.get(network) != link:
            links[network] = link
            sources[f"social_links.{network}"] = (kind, at)
    if sources == person.sources:
        return person, False
    return replace(person, fields=fields, bio=bio, social_links=links, sources=sources), standard_changed


def inert(event: ContactEvent, organizers: Collection[str]) -> bool:
    """Whether ``event`` changes nothing kept for a known contact whose organizers are ``organizers``: no creation,
    nothing the person stated, and an organizer already related (a re-import is all such events)."""
    organizer = event.source.organizer_id
    return (not isinstance(event, ContactCreated) and event.source.kind not in PERSON_STATED
            and (not organizer or organizer in organizers))


def evolve(person: Person | None, event: ContactEvent) -> tuple[Person | None, bool]:
    """The kept state after ``event`` (``person`` itself when nothing changed) and whether the providers should
    run. Stale events change nothing."""
    if person is not None and event.version <= person.version:
        return person, False
    organizer = event.source.organizer_id
    person_stated = event.source.kind in PERSON_STATED
    if person is None and isinstance(event, ContactCreated) and not person_stated:  # the bulk import's case
        return Person(contact_id=event.contact_id, version=event.version, email=event.email,
                      organizers=frozenset((organizer,)) if organizer else frozenset(),
                      updated_at=event.occurred_at), True
    before = person or Person(contact_id=event.contact_id, version=0)
    after = before
    due = False
    if isinstance(event, ContactCreated):
        after, due = replace(after, email=event.email), True
    if person_stated and isinstance(event, ContactCreated | ContactUpdated):
        after, standard_changed = _stated(after, event)
        due = due or standard_changed
    if organizer and organizer not in after.organizers:
        after = replace(after, organizers=after.organizers | {organizer})
    if after is before:
        return person, False
    return replace(after, version=event.version, updated_at=event.occurred_at), due


def plan_batch(known: Mapping[str, Person], events: Iterable[ContactEvent]) -> BatchPlan:
    """Fold a batch into the known states in per-contact version order."""
    state = dict(known)
    changed: dict[str, Person] = {}
    due: set[str] = set()
    for event in sorted(events, key=lambda e: e.version):  # stable: keeps arrival order per version
        before = state.get(event.contact_id)
        after, runs = evolve(before, event)
        if after is not before and after is not None:
            state[event.contact_id] = changed[event.contact_id] = after
        if runs:
            due.add(event.contact_id)
    return BatchPlan(changed=changed, due=due)


# --- suggestions ------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Candidate:
    """A value a provider proposes for one field, with how sure it is (0..1)."""

    field: ContactField
    value: str
    confidence: float
    source: str


@dataclass(frozen=True, slots=True)
class Suggestion:
    id: str
    contact_id: str
    field: str
    current: str | None
    suggested: str
    source: str
    confidence: float
    created_at: datetime
    status: Status = "pending"
    decided_at: datetime | None = None
    value: str | None = None


@dataclass(frozen=True)
class Reconciled:
    made: list[Suggestion]
    withdrawn: list[str]

    def __bool__(self) -> bool:
        return bool(self.made or self.withdrawn)


def _best(candidates: Iterable[Candidate]) -> dict[str, Candidate]:
    """The most confident candidate per field (the first provider's on a tie)."""
    best: dict[str, Candidate] = {}
    for candidate in candidates:
        if candidate.field not in best or candidate.confidence > best[candidate.field].confidence:
            best[candidate.field] = candidate
    return best


def reconcile(
    person: Person,
    candidates: Iterable[Candidate],
    existing: Sequence[Suggestion],
    *,
    sources_run: frozenset[str],
    now: datetime,
    new_id: Callable[[], str],
) -> Reconciled:
    """What a provider run changes in a contact's suggestions. ``existing``: all its earlier suggestions (pending
    and decided); ``sources_run``: the providers that answered (a provider that is down keeps its pending
    suggestions)."""
    decided = {(s.source, s.field, s.suggested) for s in existing if s.status in DECIDED}
    usable = (
        c for c in candidates
        if c.field in CONTACT_FIELDS
        and c.value != person.current(c.field)
        and (c.source, c.field, c.value) not in decided
    )
    best = _best(usable)
    made: list[Suggestion] = []
    withdrawn: list[str] = []
    for pending in (s for s in existing if s.status == "pending"):
        current = person.current(pending.field)
        candidate = best.get(pending.field)
        if current == pending.suggested:
            withdrawn.append(pending.id)  # the person stated it themself
        elif candidate is not None:
            if candidate.value == pending.suggested and current == pending.current:
                del best[pending.field]  # still suggested: stays as it is
            else:
                withdrawn.append(pending.id)
        elif pending.source in sources_run:
            withdrawn.append(pending.id)  # its provider no longer suggests it
    for name in CONTACT_FIELDS:  # a stable order
        candidate = best.get(name)
        if candidate is not None:
            made.append(Suggestion(
                id=new_id(), contact_id=person.contact_id, field=name, current=person.current(name),
                suggested=candidate.value, source=candidate.source, confidence=candidate.confidence, created_at=now,
            ))
    return Reconciled(made=made, withdrawn=withdrawn)


# --- the attendee's decisions -----------------------------------------------------------------------------------

MAX_VALUE_CHARS = 255
MAX_BIO_CHARS = 10_000
MAX_SOCIAL_LINKS = 20


class RefusedValue(ValueError):
    """A value the attendee gave that cannot be stated (the message says why)."""


def checked_value(name: str, value: str, *, limit: int = MAX_VALUE_CHARS) -> str:
    """A stated value, surrounding whitespace removed; blank, NUL-bearing or over-long values are refused (a blank
    never erases anything on the platform, so it cannot be stated)."""
    stripped = value.strip()
    if not stripped:
        raise RefusedValue(f"{name} must not be blank (a value can be replaced, not erased)")
    if "\x00" in stripped:
        raise RefusedValue(f"{name} must not contain a NUL character")
    if len(stripped) > limit:
        raise RefusedValue(f"{name} is longer than {limit} characters")
    return stripped
