"""Identity resolution rules, free of I/O: normalize, decide what an incoming record does to a contact
(``decide``: one event per import row; ``decide_all``: an interaction's contact change and its record), and
apply the resulting events to the contact's state (``evolve``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime

from shared.events import (
    CONTACT_FIELDS,
    ContactCreatedV1,
    ContactEvent,
    ContactField,
    ContactMatchedV1,
    ContactSource,
    ContactUpdatedV1,
    InteractionKind,
    InteractionRecordedV1,
)


class InvalidEmail(ValueError):
    """The address cannot identify a person: blank, or not of the form local@domain."""


def normalize_email(raw: str) -> str:
    """The matching key: surrounding whitespace stripped, lowercased. Raises ``InvalidEmail``."""
    normalized = raw.strip().lower()
    local, at, domain = normalized.rpartition("@")
    if not at or not local or not domain or any(ch.isspace() for ch in normalized):
        raise InvalidEmail(f"{raw.strip()!r} is not an email address")
    return normalized


def _known(value: str | None) -> str | None:
    return value.strip() if value is not None and value.strip() else None


def clean_fields(values: dict[ContactField, str | None]) -> dict[ContactField, str]:
    """Incoming field values with blanks dropped: a blank never erases what is known."""
    cleaned: dict[ContactField, str] = {}
    for name in CONTACT_FIELDS:
        value = values.get(name)
        if value is not None and value.strip():
            cleaned[name] = value.strip()
    return cleaned


@dataclass(frozen=True)
class FieldOrigin:
    """Where a field's current value came from, and when."""

    kind: str
    organizer_id: str
    reference: str | None
    at: datetime


@dataclass(frozen=True)
class Contact:
    """``origins`` is keyed by field name, ``bio``, ``user_account_id`` and ``social_links.<network>``."""

    contact_id: str
    email: str
    email_original: str
    version: int
    fields: dict[ContactField, str] = field(default_factory=dict)
    origins: dict[str, FieldOrigin] = field(default_factory=dict)
    created_at: datetime | None = None
    updated_at: datetime | None = None
    bio: str | None = None
    social_links: dict[str, str] = field(default_factory=dict)
    user_account_id: str | None = None


@dataclass(frozen=True)
class Interaction:
    """What an interaction was, beyond what it says about the person: becomes an ``InteractionRecordedV1``."""

    kind: InteractionKind
    interaction_id: str
    kagibag_event_id: str | None = None
    order_id: str | None = None
    ticket_count: int | None = None
    user_account_id: str | None = None


@dataclass(frozen=True)
class IncomingRecord:
    """A record from any source that speaks about a person identified by email. ``interaction`` is set when
    the record is an interaction (it is then recorded on the contact's stream after any change)."""

    email: str
    fields: dict[ContactField, str | None]
    source: ContactSource
    occurred_at: datetime
    bio: str | None = None
    social_links: dict[str, str | None] = field(default_factory=dict)
    user_account_id: str | None = None
    interaction: Interaction | None = None


@dataclass(frozen=True)
class Changes:
    """What a record brings that the contact does not hold yet (blanks dropped)."""

    fields: dict[ContactField, str]
    bio: str | None
    social_links: dict[str, str]
    user_account_id: str | None

    def __bool__(self) -> bool:
        return bool(self.fields or self.bio or self.social_links or self.user_account_id)


def _changes(contact: Contact | None, record: IncomingRecord) -> Changes:
    fields = clean_fields(record.fields)
    links = {
        name.strip(): value
        for name, raw in record.social_links.items()
        if name.strip() and (value := _known(raw)) is not None
    }
    bio, account = _known(record.bio), _known(record.user_account_id)
    if contact is None:
        return Changes(fields, bio, links, account)
    return Changes(
        fields={name: value for name, value in fields.items() if contact.fields.get(name) != value},
        bio=bio if bio != contact.bio else None,
        social_links={name: value for name, value in links.items() if contact.social_links.get(name) != value},
        user_account_id=account if account != contact.user_account_id else None,
    )


def decide(contact: Contact | None, record: IncomingRecord, *, new_contact_id: str) -> ContactEvent:
    """The one event an incoming record produces: created, updated with what changed, or matched.
    ``new_contact_id`` is used only when the record creates a contact (ids are random, never derived from
    the email, so they reveal nothing about it)."""
    email = normalize_email(record.email)
    changes = _changes(contact, record)
    if contact is None:
        return ContactCreatedV1(
            contact_id=new_contact_id,
            version=1,
            occurred_at=record.occurred_at,
            source=record.source,
            email=email,
            email_original=record.email.strip(),
            fields=changes.fields,
            bio=changes.bio,
            social_links=changes.social_links,
            user_account_id=changes.user_account_id,
        )
    if contact.email != email:
        raise ValueError(f"record for {email} decided against contact {contact.email}")
    common = {
        "contact_id": contact.contact_id,
        "version": contact.version + 1,
        "occurred_at": record.occurred_at,
        "source": record.source,
    }
    if changes:
        return ContactUpdatedV1(
            changes=changes.fields,
            bio=changes.bio,
            social_links=changes.social_links,
            user_account_id=changes.user_account_id,
            **common,
        )
    return ContactMatchedV1(**common)


def decide_all(contact: Contact | None, record: IncomingRecord, *, new_contact_id: str) -> list[ContactEvent]:
    """Every event a record produces, in stream order. An import row: exactly ``decide``'s one event. An
    interaction: the contact change it causes (created, or updated when something changed; never a bare
    match) followed by its ``InteractionRecordedV1``."""
    first = decide(contact, record, new_contact_id=new_contact_id)
    interaction = record.interaction
    if interaction is None:
        return [first]
    events: list[ContactEvent] = [] if isinstance(first, ContactMatchedV1) else [first]
    recorded = InteractionRecordedV1(
        contact_id=first.contact_id,
        version=first.version if not events else first.version + 1,
        occurred_at=record.occurred_at,
        source=record.source,
        kind=interaction.kind,
        interaction_id=interaction.interaction_id,
        kagibag_event_id=interaction.kagibag_event_id,
        order_id=interaction.order_id,
        ticket_count=interaction.ticket_count,
        user_account_id=interaction.user_account_id,
    )
    return [*events, recorded]


def _origin(event: ContactEvent) -> FieldOrigin:
    source = event.source
    if source.import_id:
        reference: str | None = f"{source.import_id}#{source.row_number}"
    else:
        reference = source.interaction_id or source.external_id
    return FieldOrigin(kind=source.kind, organizer_id=source.organizer_id, reference=reference, at=event.occurred_at)


def _changed_names(event: ContactCreatedV1 | ContactUpdatedV1) -> list[str]:
    names: list[str] = list(event.fields if isinstance(event, ContactCreatedV1) else event.changes)
    names += [name for name in ("bio", "user_account_id") if getattr(event, name)]
    return names + [f"social_links.{network}" for network in event.social_links]


def evolve(contact: Contact | None, event: ContactEvent) -> Contact:
    """Contact state after ``event``; folding a contact's events from version 1 rebuilds it."""
    if isinstance(event, ContactCreatedV1):
        if contact is not None:
            raise ValueError(f"contact {event.contact_id} already exists")
        origin = _origin(event)
        return Contact(
            contact_id=event.contact_id,
            email=event.email,
            email_original=event.email_original,
            version=1,
            fields=dict(event.fields),
            origins={name: origin for name in _changed_names(event)},
            created_at=event.occurred_at,
            updated_at=event.occurred_at,
            bio=event.bio,
            social_links=dict(event.social_links),
            user_account_id=event.user_account_id,
        )
    if contact is None:
        raise ValueError(f"event for unknown contact {event.contact_id}")
    if event.version != contact.version + 1:
        raise ValueError(f"contact {contact.contact_id} is at version {contact.version}, got {event.version}")
    if isinstance(event, ContactUpdatedV1):
        origin = _origin(event)
        return replace(
            contact,
            version=event.version,
            fields={**contact.fields, **event.changes},
            origins={**contact.origins, **{name: origin for name in _changed_names(event)}},
            updated_at=event.occurred_at,
            bio=event.bio or contact.bio,
            social_links={**contact.social_links, **event.social_links},
            user_account_id=event.user_account_id or contact.user_account_id,
        )
    if isinstance(event, ContactMatchedV1 | InteractionRecordedV1):
        return replace(contact, version=event.version)
    raise TypeError(f"unknown contact event {type(event).__name__}")


def rebuild(events: list[ContactEvent]) -> Contact | None:
    contact: Contact | None = None
    for event in events:
        contact = evolve(contact, event)
    return contact


@dataclass(frozen=True)
class Resolution:
    """What one record did: the events it produced (one for an import row), or why it was refused."""

    record: IncomingRecord
    events: tuple[ContactEvent, ...] = ()
    error_code: str | None = None
    error_message: str | None = None

    @property
    def event(self) -> ContactEvent | None:
        """The first event: for an import row, the only one."""
        return self.events[0] if self.events else None


@dataclass(frozen=True)
class BatchPlan:
    resolutions: list[Resolution]
    created: dict[str, Contact]
    changed: dict[str, Contact]

    @property
    def events(self) -> list[ContactEvent]:
        return [event for r in self.resolutions for event in r.events]


def resolve_batch(
    known: dict[str, Contact], records: list[IncomingRecord], *, new_contact_id: Callable[[], str]
) -> BatchPlan:
    """Resolve records in order against the contacts known for their emails. Several records for one person
    in a batch fold into that person's state one after another, so a batch never creates a duplicate."""
    state = dict(known)
    created: dict[str, Contact] = {}
    changed: dict[str, Contact] = {}
    resolutions: list[Resolution] = []
    for record in records:
        try:
            email = normalize_email(record.email)
        except InvalidEmail as error:
            resolutions.append(Resolution(record, error_code="INVALID_EMAIL", error_message=str(error)))
            continue
        events = decide_all(state.get(email), record, new_contact_id=new_contact_id())
        contact = state.get(email)
        for event in events:
            contact = evolve(contact, event)
        assert contact is not None  # decide_all returns at least one event
        state[email] = contact
        (created if email in created or email not in known else changed)[email] = contact
        resolutions.append(Resolution(record, events=tuple(events)))
    return BatchPlan(resolutions=resolutions, created=created, changed=changed)


def matching_keys(records: list[IncomingRecord]) -> list[str]:
    """The normalized emails of the records that have a valid one: the contacts a batch must lock."""
    keys: list[str] = []
    for record in records:
        try:
            keys.append(normalize_email(record.email))
        except InvalidEmail:
            continue
    return keys
