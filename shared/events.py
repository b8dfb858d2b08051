"""Versioned integration events: the public contract between services and with other teams.

Rules: names are past tense and versioned; ``TYPE`` is stable and independent of the class name; models evolve
additively (new optional fields only); unknown fields are ignored so old consumers survive new producers.
"""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

ContactField = Literal["first_name", "last_name", "company", "title", "phone"]
SourceKind = Literal["import", "interaction", "attendee"]
PERSON_STATED: tuple[SourceKind, ...] = ("interaction", "attendee")
"""Source kinds whose values the person stated themself: they form the canonical profile."""
CONTACT_FIELDS: tuple[ContactField, ...] = ("first_name", "last_name", "company", "title", "phone")
EmailPermission = Literal["subscribed", "unsubscribed", "unknown"]
RowOutcome = Literal["created", "matched", "error"]
InteractionKind = Literal[
    "ticket_purchased", "waitlist_registered", "event_checked_in", "attendee_profile_completed", "user_account_linked"
]


class Event(BaseModel):
    """Base of every event payload. ``TYPE`` is the CloudEvents ``type`` attribute."""

    model_config = ConfigDict(frozen=True, extra="ignore")
    TYPE: ClassVar[str]


# --- ingest -> identity: contacts.import-rows.v1 -------------------------------------------------------------


class ImportRowReceivedV1(Event):
    """One row of an organizer's import, as mapped to the standard fields (values as received)."""

    TYPE: ClassVar[str] = "com.kagibag.contacts.import-row.received.v1"

    import_id: str
    organizer_id: str
    row_number: int = Field(ge=1)
    email: str
    first_name: str | None = None
    last_name: str | None = None
    company: str | None = None
    title: str | None = None
    phone: str | None = None
    external_id: str | None = None
    email_permission: EmailPermission | None = None


# --- platform teams -> identity: contacts.interactions.v1 -------------------------------------------------------


class InteractionEvent(Event):
    """Common shape of what other platform teams report about a person's interaction with an organizer's event.
    ``email`` is as received (identity normalizes it); ``kagibag_event_id`` is the Kagibag event (the
    happening people buy tickets for), not a message id."""

    KIND: ClassVar[InteractionKind]

    organizer_id: str = Field(min_length=1)
    email: str = Field(min_length=1)
    occurred_at: datetime
    kagibag_event_id: str | None = None
    first_name: str | None = None
    last_name: str | None = None


class TicketPurchasedV1(InteractionEvent):
    """A person bought tickets for a Kagibag event."""

    TYPE: ClassVar[str] = "com.kagibag.platform.ticket.purchased.v1"
    KIND: ClassVar[InteractionKind] = "ticket_purchased"

    kagibag_event_id: str = Field(min_length=1)
    order_id: str = Field(min_length=1)
    ticket_count: int = Field(ge=1)


class WaitlistRegisteredV1(InteractionEvent):
    """A person joined the waitlist of a Kagibag event."""

    TYPE: ClassVar[str] = "com.kagibag.platform.waitlist.registered.v1"
    KIND: ClassVar[InteractionKind] = "waitlist_registered"

    kagibag_event_id: str = Field(min_length=1)


class EventCheckedInV1(InteractionEvent):
    """A person was checked in at a Kagibag event (they attended)."""

    TYPE: ClassVar[str] = "com.kagibag.platform.event.checked-in.v1"
    KIND: ClassVar[InteractionKind] = "event_checked_in"

    kagibag_event_id: str = Field(min_length=1)


class AttendeeProfileCompletedV1(InteractionEvent):
    """An attendee completed their profile. Blank values mean "not given", never "erase"."""

    TYPE: ClassVar[str] = "com.kagibag.platform.attendee-profile.completed.v1"
    KIND: ClassVar[InteractionKind] = "attendee_profile_completed"

    company: str | None = None
    title: str | None = None
    phone: str | None = None
    bio: str | None = None
    social_links: dict[str, str] = Field(
        default_factory=dict, description='Network name -> URL or handle, e.g. {"linkedin": "https://..."}.'
    )


class UserAccountLinkedV1(InteractionEvent):
    """A Kagibag user account was linked to this email address."""

    TYPE: ClassVar[str] = "com.kagibag.platform.user-account.linked.v1"
    KIND: ClassVar[InteractionKind] = "user_account_linked"

    user_account_id: str = Field(min_length=1)


INTERACTION_EVENTS: tuple[type[InteractionEvent], ...] = (
    TicketPurchasedV1,
    WaitlistRegisteredV1,
    EventCheckedInV1,
    AttendeeProfileCompletedV1,
    UserAccountLinkedV1,
)


# --- enrichment -> identity: contacts.attendee-statements.v1 ---------------------------------------------------


class AttendeeStatedV1(Event):
    """The person stated values about themself directly (signed in as the attendee): accepted or customized an
    enrichment suggestion, or edited their own profile. identity applies it to the canonical profile, where it
    beats whatever an organizer imported. Blank values state nothing."""

    TYPE: ClassVar[str] = "com.kagibag.contacts.attendee.stated.v1"

    email: str = Field(min_length=1, description="the attendee's verified email (from their token)")
    occurred_at: datetime
    statement: Literal["suggestion_accepted", "suggestion_customized", "profile_edited"]
    suggestion_id: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    company: str | None = None
    title: str | None = None
    phone: str | None = None
    bio: str | None = None
    social_links: dict[str, str] = Field(default_factory=dict, description="Network name -> URL or handle.")


# --- identity -> ingest: contacts.import-row-outcomes.v1 ------------------------------------------------------


class ProcessedRow(BaseModel):
    """What identity did with one import row."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    row_number: int
    outcome: RowOutcome
    contact_id: str | None = None
    error_code: str | None = None
    error_message: str | None = None


class ImportRowsProcessedV1(Event):
    """Outcomes of rows of one import: one message per import per identity batch (at most
    ``MAX_ROWS_PER_OUTCOME_MESSAGE`` rows), so reporting costs a message per thousand rows, not one per row.
    A row appears once per message; after a redelivery it may appear again in a later message, with the
    same outcome: consumers keep the first."""

    TYPE: ClassVar[str] = "com.kagibag.contacts.import-rows.processed.v1"

    import_id: str
    organizer_id: str
    rows: list[ProcessedRow] = Field(min_length=1)


MAX_ROWS_PER_OUTCOME_MESSAGE = 1000


# --- identity: contacts.contact-events.v1 ----------------------------------------------------------------------


class ContactSource(BaseModel):
    """Where a contact change came from, which says whose values it carries. ``import``: values an organizer
    brought (``organizer_id``'s own, shown to that organizer only); ``interaction``: values the person stated
    through an interaction with ``organizer_id``'s event (canonical, shown to every organizer who knows them);
    ``attendee``: values the person stated directly (an accepted or customized enrichment suggestion, their own
    profile edit), canonical too, with no organizer (``organizer_id`` is empty)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    kind: SourceKind
    organizer_id: str
    import_id: str | None = None
    row_number: int | None = None
    external_id: str | None = None
    email_permission: EmailPermission | None = None
    interaction_id: str | None = Field(default=None, description="The interaction message's id (``ce_id``).")


EMAIL_ORIGINAL = (
    "The address as the source of this event wrote it (surrounding whitespace removed). An organizer's first "
    "spelling belongs to that organizer's view; the person's own first spelling is the canonical one."
)


class ContactEvent(Event):
    """Common shape of the identity log: ``version`` is the contact stream's position (1, 2, ...)."""

    contact_id: str
    version: int = Field(ge=1)
    occurred_at: datetime
    source: ContactSource


class ContactCreatedV1(ContactEvent):
    TYPE: ClassVar[str] = "com.kagibag.contacts.contact.created.v1"

    email: str
    email_original: str
    fields: dict[ContactField, str] = Field(default_factory=dict)
    bio: str | None = None
    social_links: dict[str, str] = Field(default_factory=dict, description="Network name -> URL or handle.")
    user_account_id: str | None = Field(default=None, description="The linked Kagibag user account.")


class ContactUpdatedV1(ContactEvent):
    """Only what changed, with its new value: ``changes`` for the standard fields, ``bio``,
    ``social_links`` (the links added or changed) and ``user_account_id`` when they changed. A blank never
    erases anything. Changed against the layer the source writes: an import's values against that organizer's
    own earlier values, a person's statement against the canonical profile."""

    TYPE: ClassVar[str] = "com.kagibag.contacts.contact.updated.v1"

    changes: dict[ContactField, str]
    bio: str | None = None
    social_links: dict[str, str] = Field(default_factory=dict)
    user_account_id: str | None = None
    email_original: str | None = Field(default=None, description=EMAIL_ORIGINAL)


class ContactMatchedV1(ContactEvent):
    """An incoming record matched this contact and brought nothing new to its layer."""

    TYPE: ClassVar[str] = "com.kagibag.contacts.contact.matched.v1"

    email_original: str | None = Field(default=None, description=EMAIL_ORIGINAL)


class InteractionRecordedV1(ContactEvent):
    """The contact interacted with an organizer's event (``source.organizer_id``); replaying these gives
    events attended, registrations, tickets purchased and when the contact was last active (``occurred_at``).
    It follows the contact change the interaction caused, if any."""

    TYPE: ClassVar[str] = "com.kagibag.contacts.interaction.recorded.v1"

    kind: InteractionKind
    interaction_id: str = Field(description="The interaction message's id (``ce_id``).")
    kagibag_event_id: str | None = None
    order_id: str | None = None
    ticket_count: int | None = None
    user_account_id: str | None = None
    email_original: str | None = Field(default=None, description=EMAIL_ORIGINAL)


# --- enrichment -> profiles: contacts.enrichments.v1 ------------------------------------------------------------


class DisplayNameResolvedV1(Event):
    """The human-readable label of a contact: full name if known, else the email's local part."""

    TYPE: ClassVar[str] = "com.kagibag.contacts.display-name.resolved.v1"

    contact_id: str
    display_name: str
    contact_version: int


SuggestionDecision = Literal["accepted", "customized", "rejected"]


class SuggestionV1(BaseModel):
    """One value a provider suggests for one field of the person's profile. ``current`` is the person's own
    (canonical) value when it was made, never a value an organizer imported; nothing is applied until the person
    accepts it."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    id: str
    field: ContactField
    current: str | None = None
    suggested: str
    source: str = Field(description='The provider: "email_domain", "email_name", "phone_format", "external_api".')
    confidence: float = Field(ge=0, le=1)
    created_at: datetime


class EnrichmentSuggestedV1(Event):
    """What one run of the providers suggests for a contact (one event per contact per run).

    At most one suggestion per field is pending: a new one for a field lists the earlier in ``withdrawn`` (so does
    a run after the person stated that value themself). Nothing is applied until the person accepts it."""

    TYPE: ClassVar[str] = "com.kagibag.contacts.enrichment.suggested.v1"

    contact_id: str
    occurred_at: datetime
    suggestions: list[SuggestionV1] = Field(default_factory=list)
    withdrawn: list[str] = Field(default_factory=list, description="Ids of earlier suggestions no longer pending.")


class SuggestionDecidedV1(Event):
    """The person accepted, customized or rejected a suggestion, signed in as the attendee.

    ``value`` is what they stated (sent to identity as ``AttendeeStatedV1``); a rejection carries no value."""

    TYPE: ClassVar[str] = "com.kagibag.contacts.enrichment.suggestion-decided.v1"

    contact_id: str
    suggestion_id: str
    field: ContactField
    source: str
    decision: SuggestionDecision
    value: str | None = None
    occurred_at: datetime


# --- profiles -> downstream: contacts.profile-updates.v1 -------------------------------------------------------


class FieldSourceV1(BaseModel):
    """Where a profile field's current value came from, without saying which organizer or import: an
    organizer's ``import`` or an ``interaction`` with one of the platform's events, at ``at``."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    kind: SourceKind
    at: datetime


class ContactProfileUpdatedV1(Event):
    """A full snapshot of the canonical profile: what the person stated themself, plus the email, ids and times.
    Drop a snapshot whose ``profile_version`` is not greater than the last one you applied for the same
    ``contact_id`` (versions increase per contact, not always by one). Values organizers imported and their
    private data are never in it."""

    TYPE: ClassVar[str] = "com.kagibag.contacts.profile.updated.v1"

    contact_id: str
    profile_version: int
    email: str
    email_original: str
    first_name: str | None = None
    last_name: str | None = None
    company: str | None = None
    title: str | None = None
    phone: str | None = None
    display_name: str | None = Field(
        default=None, description="The full name the person stated, else the email's local part (set by profiles)."
    )
    created_at: datetime
    updated_at: datetime
    bio: str | None = None
    social_links: dict[str, str] = Field(default_factory=dict, description="Network name -> URL or handle.")
    user_account_id: str | None = Field(default=None, description="The linked Kagibag user account.")
    field_sources: dict[str, FieldSourceV1] = Field(
        default_factory=dict,
        description='Field name ("email", "first_name", ..., "bio", "user_account_id", '
        '"social_links.<network>") -> where its current value came from.',
    )


# --- profiles -> mailers, invitations, campaigns: contacts.organizer-contacts.v1 --------------------------------


class OrganizerPermissionV1(BaseModel):
    """An organizer's email permission for a contact: ``status``, who stated it last (``import``: one of its imports;
    ``api``: set through the contacts API; null while unknown) and when."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    status: EmailPermission
    source: Literal["import", "api"] | None = None
    changed_at: datetime | None = None


class OrganizerPreferencesV1(BaseModel):
    """The contact's communication preferences as the organizer keeps them (each optional)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    channels: dict[str, bool] = Field(default_factory=dict, description="channel (email, sms) -> wanted")
    frequency: str | None = Field(default=None, description="immediately, daily, weekly or monthly")
    topics: list[str] = Field(default_factory=list)
    language: str | None = None


class OrganizerContactChangedV1(Event):
    """The current state of one organizer's contact, as a mailer or an invitation sender needs it: the email, the
    organizer's email permission (with its source and time), tags and preferences. Published whenever one of them
    changes, and when the contact becomes the organizer's; complete: replace, never merge. Never the organizer's
    notes or imported values."""

    TYPE: ClassVar[str] = "com.kagibag.contacts.organizer-contact.changed.v1"

    organizer_id: str
    contact_id: str
    email: str = Field(description="normalized")
    email_permission: OrganizerPermissionV1
    tags: list[str] = Field(default_factory=list)
    preferences: OrganizerPreferencesV1 = Field(default_factory=OrganizerPreferencesV1)
    changed_at: datetime = Field(description="when profiles recorded this state")


ALL_EVENTS: tuple[type[Event], ...] = (
    ImportRowReceivedV1,
    ImportRowsProcessedV1,
    ContactCreatedV1,
    ContactUpdatedV1,
    ContactMatchedV1,
    InteractionRecordedV1,
    DisplayNameResolvedV1,
    ContactProfileUpdatedV1,
    OrganizerContactChangedV1,
    AttendeeStatedV1,
    *INTERACTION_EVENTS,
    EnrichmentSuggestedV1,
    SuggestionDecidedV1,
)
EVENTS_BY_TYPE: dict[str, type[Event]] = {event.TYPE: event for event in ALL_EVENTS}
