"""Identity resolution rules, free of I/O: normalize, decide what an incoming record does to a contact
(``decide``), and apply the resulting event to the contact's state (``evolve``)."""

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
    contact_id: str
    email: str
    email_original: str
    version: int
    fields: dict[ContactField, str] = field(default_factory=dict)
    origins: dict[ContactField, FieldOrigin] = field(default_factory=dict)
    created_at: datetime | None = None
    updated_at: datetime | None = None


@dataclass(frozen=True)
class IncomingRecord:
    """A record from any source that speaks about a person identified by email."""

    email: str
    fields: dict[ContactField, str | None]
    source: ContactSource
    occurred_at: datetime


def decide(contact: Contact | None, record: IncomingRecord, *, new_contact_id: str) -> ContactEvent:
    """The one event an incoming record produces: created, updated with the changed fields, or matched.
    ``new_contact_id`` is used only when the record creates a contact (ids are random, never derived from
    the email, so they reveal nothing about it)."""
    email = normalize_email(record.email)
    incoming = clean_fields(record.fields)
    if contact is None:
        return ContactCreatedV1(
            contact_id=new_contact_id,
            version=1,
            occurred_at=record.occurred_at,
            source=record.source,
            email=email,
            email_original=record.email.strip(),
            fields=incoming,
        )
    if contact.email != email:
        raise ValueError(f"record for {email} decided against contact {contact.email}")
    changes = {name: value for name, value in incoming.items() if contact.fields.get(name) != value}
    common = {
        "contact_id": contact.contact_id,
        "version": contact.version + 1,
        "occurred_at": record.occurred_at,
        "source": record.source,
    }
    if changes:
        return ContactUpdatedV1(changes=changes, **common)
    return ContactMatchedV1(**common)


def _origin(event: ContactEvent) -> FieldOrigin:
    source = event.source
    reference = f"{source.import_id}#{source.row_number}" if source.import_id else source.external_id
    return FieldOrigin(kind=source.kind, organizer_id=source.organizer_id, reference=reference, at=event.occurred_at)


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
            origins={name: origin for name in event.fields},
            created_at=event.occurred_at,
            updated_at=event.occurred_at,
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
            origins={**contact.origins, **{name: origin for name in event.changes}},
            updated_at=event.occurred_at,
        )
    if isinstance(event, ContactMatchedV1):
        return replace(contact, version=event.version)
    raise TypeError(f"unknown contact event {type(event).__name__}")


def rebuild(events: list[ContactEvent]) -> Contact | None:
    contact: Contact | None = None
    for event in events:
        contact = evolve(contact, event)
    return contact


@dataclass(frozen=True)
class Resolution:
    """What one record did: the event it produced, or why it was refused."""

    record: IncomingRecord
    event: ContactEvent | None = None
    error_code: str | None = None
    error_message: str | None = None


@dataclass(frozen=True)
class BatchPlan:
    resolutions: list[Resolution]
    created: dict[str, Contact]
    changed: dict[str, Contact]

    @property
    def events(self) -> list[ContactEvent]:
        return [r.event for r in self.resolutions if r.event is not None]


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
        event = decide(state.get(email), record, new_contact_id=new_contact_id())
        contact = evolve(state.get(email), event)
        state[email] = contact
        (created if email in created or email not in known else changed)[email] = contact
        resolutions.append(Resolution(record, event=event))
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
