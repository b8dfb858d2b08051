"""Identity resolution rules, free of I/O: normalize the email, decide what an incoming record does to the one
contact of its person (``decide``), and apply the resulting events to the contact's state (``evolve``).

Whose value is whose: what the person stated themself (through an interaction: a ticket checkout, a waitlist
registration, a completed attendee profile, a linked account) is the contact's canonical layer, seen by every
organizer who knows the person; what an organizer brought (its imports) is that organizer's own layer, seen by
that organizer only. A record is compared with the layer it writes: an import row with its organizer's earlier
values, a person's statement with the canonical ones. An import row's outcome is in the organizer's own terms:
``created`` when the person is new to that organizer (whether or not the platform knew them), else ``matched``.

Events are the wire structs of ``shared.wire`` (cheap to build and encode on the bulk path); the pydantic
models in ``shared.events`` are the contract they are tested against."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime

import msgspec
from msgspec.structs import replace

from shared.events import CONTACT_FIELDS, PERSON_STATED, ContactField, InteractionKind
from shared.wire import ContactCreated, ContactMatched, ContactSource, ContactUpdated, InteractionRecorded

ContactEvent = ContactCreated | ContactUpdated | ContactMatched | InteractionRecorded

class InvalidEmail(ValueError):
    """The address cannot identify a person: blank, or not of the form local@domain."""


def normalize_email(raw: str) -> str:
    """The matching key: surrounding whitespace stripped, lowercased. Raises ``InvalidEmail``."""
    normalized = raw.strip().lower()
    local, at, domain = normalized.rpartition("@")
    if not at or not local or not domain or len(normalized.split()) != 1:  # split(): any inner whitespace
        raise InvalidEmail(f"{raw.strip()!r} is not an email address")
    return normalized


def _known(value: str | None) -> str | None:
    if value is None:
        return None
    stripped = value.strip()
    return stripped or None


def clean_fields(values: Mapping[ContactField, str | None]) -> dict[ContactField, str]:
    """Incoming field values with blanks dropped: a blank never erases what is known."""
    cleaned: dict[ContactField, str] = {}
    for name in CONTACT_FIELDS:
        value = values.get(name)
        if value is not None and (value := value.strip()):
            cleaned[name] = value
    return cleaned


class Value(msgspec.Struct, frozen=True, gc=False):
    """Base of the domain's values: immutable and cheap to build (a few are built per record on the bulk
    path, where frozen dataclasses cost microseconds each); trees, never cycles, so the collector skips them."""


class Layer(Value, frozen=True, gc=False):
    """What one party stated about the person: the person's own (canonical) layer, or one organizer's imported
    values. ``email_original`` is that party's first spelling of the address. Only the person states a bio,
    social links or a user account."""

    email_original: str | None = None
    fields: Mapping[ContactField, str] = {}
    bio: str | None = None
    social_links: Mapping[str, str] = {}
    user_account_id: str | None = None


EMPTY = Layer()


class Contact(Value, frozen=True, gc=False):
    """One person. ``person``: the canonical layer. ``organizers``: organizer id -> that organizer's layer; an
    organizer is present once it has any relationship with the person (an import, or an interaction with one of
    its events). A contact loaded for a batch may hold only the organizers that batch concerns."""

    contact_id: str
    email: str
    version: int
    created_at: datetime
    updated_at: datetime
    person: Layer = EMPTY
    organizers: Mapping[str, Layer] = {}


class Interaction(Value, frozen=True, gc=False):
    """What an interaction was, beyond what it says about the person: becomes an ``InteractionRecorded``."""

    kind: InteractionKind
    interaction_id: str
    kagibag_event_id: str | None = None
    order_id: str | None = None
    ticket_count: int | None = None
    user_account_id: str | None = None


class IncomingRecord(Value, frozen=True, gc=False):
    """A record from any source that speaks about a person identified by email. ``interaction`` is set when the
    record is an interaction (it is then recorded on the contact's stream after any change)."""

    email: str
    fields: Mapping[ContactField, str | None]
    source: ContactSource
    occurred_at: datetime
    bio: str | None = None
    social_links: Mapping[str, str | None] = {}
    user_account_id: str | None = None
    interaction: Interaction | None = None

    @property
    def person_stated(self) -> bool:
        return self.source.kind in PERSON_STATED


class _Statement(Value, frozen=True, gc=False):
    """What a record states (blanks dropped)."""

    fields: dict[ContactField, str]
    bio: str | None
    social_links: dict[str, str]
    user_account_id: str | None


def _stated(record: IncomingRecord) -> _Statement:
    links = {
        name.strip(): value
        for name, raw in record.social_links.items()
        if name.strip() and (value := _known(raw)) is not None
    }
    return _Statement(clean_fields(record.fields), _known(record.bio), links, _known(record.user_account_id))


def _new_against(layer: Layer, stated: _Statement) -> _Statement:
    """What ``stated`` brings that ``layer`` does not hold yet."""
    return _Statement(
        fields={name: value for name, value in stated.fields.items() if layer.fields.get(name) != value},
        bio=stated.bio if stated.bio != layer.bio else None,
        social_links={n: v for n, v in stated.social_links.items() if layer.social_links.get(n) != v},
        user_account_id=stated.user_account_id if stated.user_account_id != layer.user_account_id else None,
    )


def _layer_of(contact: Contact, record: IncomingRecord) -> Layer:
    if record.person_stated:
        return contact.person
    return contact.organizers.get(record.source.organizer_id, EMPTY)


def decide(
    contact: Contact | None, record: IncomingRecord, *, new_contact_id: str, email: str | None = None
) -> list[ContactEvent]:
    """Every event a record produces, in stream order. An import row: exactly one (created, updated with what
    changed in its organizer's layer, or matched). An interaction: the change it causes to the canonical layer
    (created, or updated when something changed; never a bare match), then its ``InteractionRecorded``. An
    attendee's own statement: the change it causes, or nothing.
    ``new_contact_id`` is used only when the record creates the contact (ids are random, never derived from the
    email, so they reveal nothing about it). ``email``: the record's normalized email, when the caller has it.
    Raises ``InvalidEmail``."""
    if email is None:
        email = normalize_email(record.email)
    email_original = record.email.strip()
    stated = _stated(record)
    # only the person states a bio, links or an account; an organizer's import carries standard fields only
    if not record.person_stated:
        stated = _Statement(stated.fields, None, {}, None)
    first: ContactEvent
    if contact is None:
        first = ContactCreated(
            contact_id=new_contact_id, version=1, occurred_at=record.occurred_at, source=record.source,
            email=email, email_original=email_original, fields=stated.fields, bio=stated.bio,
            social_links=stated.social_links, user_account_id=stated.user_account_id,
        )
        version = 1
    else:
        if contact.email != email:
            raise ValueError(f"record for {email} decided against contact {contact.email}")
        new = _new_against(_layer_of(contact, record), stated)
        version = contact.version + 1
        if new.fields or new.bio or new.social_links or new.user_account_id:
            first = ContactUpdated(
                contact_id=contact.contact_id, version=version, occurred_at=record.occurred_at,
                source=record.source, changes=new.fields, bio=new.bio, social_links=new.social_links,
                user_account_id=new.user_account_id, email_original=email_original,
            )
        else:
            first = ContactMatched(
                contact_id=contact.contact_id, version=version, occurred_at=record.occurred_at,
                source=record.source, email_original=email_original,
            )
    interaction = record.interaction
    if record.source.kind == "attendee":
        return [] if isinstance(first, ContactMatched) else [first]
    if interaction is None:
        return [first]
    events: list[ContactEvent] = [] if isinstance(first, ContactMatched) else [first]
    recorded = InteractionRecorded(
        contact_id=first.contact_id, version=version + len(events) if events else version,
        occurred_at=record.occurred_at, source=record.source, kind=interaction.kind,
        interaction_id=interaction.interaction_id, kagibag_event_id=interaction.kagibag_event_id,
        order_id=interaction.order_id, ticket_count=interaction.ticket_count,
        user_account_id=interaction.user_account_id, email_original=email_original,
    )
    return [*events, recorded]


def is_new_to_organizer(contact: Contact | None, organizer_id: str) -> bool:
    """Whether the person is new to ``organizer_id``: no import of its and no interaction with its events yet."""
    return contact is None or organizer_id not in contact.organizers


def _merged(layer: Layer, event: ContactCreated | ContactUpdated) -> Layer:
    changes = event.fields if isinstance(event, ContactCreated) else event.changes
    return Layer(
        email_original=layer.email_original or event.email_original,
        fields={**layer.fields, **changes} if changes else layer.fields,
        bio=event.bio or layer.bio,
        social_links={**layer.social_links, **event.social_links} if event.social_links else layer.social_links,
        user_account_id=event.user_account_id or layer.user_account_id,
    )


def _spelled(layer: Layer, email_original: str | None) -> Layer:
    if layer.email_original is not None or email_original is None:
        return layer
    return replace(layer, email_original=email_original)


def evolve(contact: Contact | None, event: ContactEvent) -> Contact:
    """Contact state after ``event``; folding a contact's events from version 1 rebuilds it."""
    source = event.source
    person_stated = source.kind in PERSON_STATED
    if isinstance(event, ContactCreated):
        if contact is not None:
            raise ValueError(f"contact {event.contact_id} already exists")
        stated = _merged(EMPTY, event)
        return Contact(
            contact_id=event.contact_id, email=event.email, version=1, created_at=event.occurred_at,
            updated_at=event.occurred_at,
            person=stated if person_stated else EMPTY,
            organizers={} if source.kind == "attendee" else {source.organizer_id: EMPTY if person_stated else stated},
        )
    if contact is None:
        raise ValueError(f"event for unknown contact {event.contact_id}")
    if event.version != contact.version + 1:
        raise ValueError(f"contact {contact.contact_id} is at version {contact.version}, got {event.version}")
    organizer = contact.organizers.get(source.organizer_id)
    person, organizers = contact.person, contact.organizers
    if isinstance(event, ContactUpdated):
        if person_stated:
            person = _merged(person, event)
        else:
            organizers = {**organizers, source.organizer_id: _merged(organizer or EMPTY, event)}
    elif person_stated:
        person = _spelled(person, event.email_original)
    else:
        organizers = {**organizers, source.organizer_id: _spelled(organizer or EMPTY, event.email_original)}
    if source.organizer_id not in organizers and source.kind != "attendee":  # an attendee is no organizer
        organizers = {**organizers, source.organizer_id: EMPTY}
    changed = isinstance(event, ContactUpdated)
    return replace(
        contact, version=event.version, person=person, organizers=organizers,
        updated_at=max(contact.updated_at, event.occurred_at) if changed else contact.updated_at,
    )


def rebuild(events: list[ContactEvent]) -> Contact | None:
    contact: Contact | None = None
    for event in events:
        contact = evolve(contact, event)
    return contact


class Resolution(Value, frozen=True, gc=False):
    """What one record did: the events it produced (one for an import row) and whether the person was new to the
    record's organizer, or why it was refused."""

    record: IncomingRecord
    events: tuple[ContactEvent, ...] = ()
    new_to_organizer: bool = False
    error_code: str | None = None
    error_message: str | None = None

    @property
    def contact_id(self) -> str | None:
        return self.events[0].contact_id if self.events else None

    @property
    def outcome(self) -> str:
        """An import row's outcome, in its organizer's terms."""
        if not self.events:
            return "error"
        return "created" if self.new_to_organizer else "matched"


@dataclass(frozen=True)
class BatchPlan:
    """``created``/``changed``: the contacts to insert/update, by email, in their state after the batch.
    ``new_layers``/``changed_layers``: (contact id, organizer id) -> the organizer's layer after the batch."""

    resolutions: list[Resolution]
    created: dict[str, Contact]
    changed: dict[str, Contact]
    new_layers: dict[tuple[str, str], Layer]
    changed_layers: dict[tuple[str, str], Layer]

    @property
    def events(self) -> list[ContactEvent]:
        return [event for r in self.resolutions for event in r.events]


def resolve_batch(
    known: Mapping[str, Contact], records: list[IncomingRecord], *, new_contact_id: Callable[[], str]
) -> BatchPlan:
    """Resolve records in order against the contacts known for their emails (each holding at least the layers of
    the organizers the batch concerns). Several records for one person in a batch fold into that person's state
    one after another, so a batch never creates a duplicate."""
    state = dict(known)
    created: dict[str, Contact] = {}
    changed: dict[str, Contact] = {}
    layers_before: dict[tuple[str, str], Layer | None] = {}
    resolutions: list[Resolution] = []
    for record in records:
        try:
            email = normalize_email(record.email)
        except InvalidEmail as error:
            resolutions.append(Resolution(record, error_code="INVALID_EMAIL", error_message=str(error)))
            continue
        contact = state.get(email)
        organizer_id = record.source.organizer_id
        new_to_organizer = is_new_to_organizer(contact, organizer_id)
        events = decide(contact, record, new_contact_id=new_contact_id() if contact is None else "", email=email)
        for event in events:
            contact = evolve(contact, event)
        assert contact is not None  # a record about an unknown person creates the contact
        resolutions.append(Resolution(record, events=tuple(events), new_to_organizer=new_to_organizer))
        if not events:
            continue  # an attendee's statement that changes nothing
        pair = (contact.contact_id, organizer_id)
        if pair not in layers_before and record.source.kind != "attendee":
            known_contact = known.get(email)
            layers_before[pair] = known_contact.organizers.get(organizer_id) if known_contact else None
        state[email] = contact
        (created if email in created or email not in known else changed)[email] = contact
    new_layers: dict[tuple[str, str], Layer] = {}
    changed_layers: dict[tuple[str, str], Layer] = {}
    by_id = {contact.contact_id: contact for contact in (*created.values(), *changed.values())}
    for (contact_id, organizer_id), before in layers_before.items():
        after = by_id[contact_id].organizers[organizer_id]
        if before is None:
            new_layers[(contact_id, organizer_id)] = after
        elif after != before:
            changed_layers[(contact_id, organizer_id)] = after
    return BatchPlan(resolutions, created, changed, new_layers, changed_layers)


def matching_keys(records: list[IncomingRecord]) -> list[tuple[str, str]]:
    """(normalized email, organizer id) of the records that have a valid email: the contacts a batch must lock,
    with the organizer layers it needs."""
    keys: list[tuple[str, str]] = []
    for record in records:
        try:
            keys.append((normalize_email(record.email), record.source.organizer_id))
        except InvalidEmail:
            continue
    return keys
