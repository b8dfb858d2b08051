"""The fast codec of the bulk paths: every event of ``shared.events`` mirrored as a msgspec ``Struct`` that
encodes to (and decodes from) the same JSON as the pydantic model, at a fraction of the cost and without
validating what this platform itself produced.

The pydantic models stay the contract (JSON Schemas, interactive paths, messages from other teams); a unit test
proves model and struct agree on every event type, both ways. Structs omit fields that hold their default
(``None``, an empty dict), which the models read back as the same default: records stay small."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec

from shared import events

NonEmpty = Annotated[str, msgspec.Meta(min_length=1)]
Positive = Annotated[int, msgspec.Meta(ge=1)]


class Wire(msgspec.Struct, frozen=True, omit_defaults=True, kw_only=True):
    """Base of the wire structs; ``TYPE`` is the CloudEvents type (the same as the model's)."""


# --- contacts.import-rows.v1 -------------------------------------------------------------------------------------


class ImportRowReceived(Wire, kw_only=True, frozen=True):
    import_id: str
    organizer_id: str
    row_number: Positive
    email: str
    first_name: str | None = None
    last_name: str | None = None
    company: str | None = None
    title: str | None = None
    phone: str | None = None
    external_id: str | None = None
    email_permission: events.EmailPermission | None = None


# --- contacts.interactions.v1 ------------------------------------------------------------------------------------


class _Interaction(Wire, kw_only=True, frozen=True):
    organizer_id: NonEmpty
    email: NonEmpty
    occurred_at: datetime
    kagibag_event_id: str | None = None
    first_name: str | None = None
    last_name: str | None = None


class TicketPurchased(_Interaction, kw_only=True, frozen=True):
    kagibag_event_id: NonEmpty
    order_id: NonEmpty
    ticket_count: Positive


class WaitlistRegistered(_Interaction, kw_only=True, frozen=True):
    kagibag_event_id: NonEmpty


class EventCheckedIn(_Interaction, kw_only=True, frozen=True):
    kagibag_event_id: NonEmpty


class AttendeeProfileCompleted(_Interaction, kw_only=True, frozen=True):
    company: str | None = None
    title: str | None = None
    phone: str | None = None
    bio: str | None = None
    social_links: dict[str, str] = {}


class UserAccountLinked(_Interaction, kw_only=True, frozen=True):
    user_account_id: NonEmpty


# --- contacts.attendee-statements.v1 ------------------------------------------------------------------------------


class AttendeeStated(Wire, kw_only=True, frozen=True):
    email: NonEmpty
    occurred_at: datetime
    statement: Literal["suggestion_accepted", "suggestion_customized", "profile_edited"]
    suggestion_id: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    company: str | None = None
    title: str | None = None
    phone: str | None = None
    bio: str | None = None
    social_links: dict[str, str] = {}


# --- contacts.import-row-outcomes.v1 -----------------------------------------------------------------------------


class ProcessedRow(Wire, kw_only=True, frozen=True):
    row_number: int
    outcome: events.RowOutcome
    contact_id: str | None = None
    error_code: str | None = None
    error_message: str | None = None


class ImportRowsProcessed(Wire, kw_only=True, frozen=True):
    import_id: str
    organizer_id: str
    rows: Annotated[list[ProcessedRow], msgspec.Meta(min_length=1)]


# --- contacts.contact-events.v1 ----------------------------------------------------------------------------------


class ContactSource(Wire, kw_only=True, frozen=True):
    kind: events.SourceKind
    organizer_id: str
    import_id: str | None = None
    row_number: int | None = None
    external_id: str | None = None
    email_permission: events.EmailPermission | None = None
    interaction_id: str | None = None


class _ContactEvent(Wire, kw_only=True, frozen=True):
    contact_id: str
    version: Positive
    occurred_at: datetime
    source: ContactSource


class ContactCreated(_ContactEvent, kw_only=True, frozen=True):
    email: str
    email_original: str
    fields: dict[events.ContactField, str] = {}
    bio: str | None = None
    social_links: dict[str, str] = {}
    user_account_id: str | None = None


class ContactUpdated(_ContactEvent, kw_only=True, frozen=True):
    changes: dict[events.ContactField, str]
    bio: str | None = None
    social_links: dict[str, str] = {}
    user_account_id: str | None = None
    email_original: str | None = None


class ContactMatched(_ContactEvent, kw_only=True, frozen=True):
    email_original: str | None = None


class InteractionRecorded(_ContactEvent, kw_only=True, frozen=True):
    kind: events.InteractionKind
    interaction_id: str
    kagibag_event_id: str | None = None
    order_id: str | None = None
    ticket_count: int | None = None
    user_account_id: str | None = None
    email_original: str | None = None


# --- contacts.enrichments.v1 -------------------------------------------------------------------------------------


class DisplayNameResolved(Wire, kw_only=True, frozen=True):
    contact_id: str
    display_name: str
    contact_version: int


class Suggestion(Wire, kw_only=True, frozen=True):
    id: str
    field: events.ContactField
    suggested: str
    source: str
    confidence: Annotated[float, msgspec.Meta(ge=0, le=1)]
    created_at: datetime
    current: str | None = None


class EnrichmentSuggested(Wire, kw_only=True, frozen=True):
    contact_id: str
    occurred_at: datetime
    suggestions: list[Suggestion] = []
    withdrawn: list[str] = []


class SuggestionDecided(Wire, kw_only=True, frozen=True):
    contact_id: str
    suggestion_id: str
    field: events.ContactField
    source: str
    decision: events.SuggestionDecision
    occurred_at: datetime
    value: str | None = None


# --- contacts.profile-updates.v1 ---------------------------------------------------------------------------------


class FieldSource(Wire, kw_only=True, frozen=True):
    kind: events.SourceKind
    at: datetime


class ContactProfileUpdated(Wire, kw_only=True, frozen=True):
    contact_id: str
    profile_version: int
    email: str
    email_original: str
    created_at: datetime
    updated_at: datetime
    first_name: str | None = None
    last_name: str | None = None
    company: str | None = None
    title: str | None = None
    phone: str | None = None
    display_name: str | None = None
    bio: str | None = None
    social_links: dict[str, str] = {}
    user_account_id: str | None = None
    field_sources: dict[str, FieldSource] = {}


# --- contacts.organizer-contacts.v1 ------------------------------------------------------------------------------


class OrganizerPermission(Wire, kw_only=True, frozen=True):
    status: events.EmailPermission
    source: Literal["import", "api"] | None = None
    changed_at: datetime | None = None


class OrganizerPreferences(Wire, kw_only=True, frozen=True):
    channels: dict[str, bool] = {}
    frequency: str | None = None
    topics: list[str] = []
    language: str | None = None


class OrganizerContactChanged(Wire, kw_only=True, frozen=True):
    organizer_id: str
    contact_id: str
    email: str
    email_permission: OrganizerPermission
    changed_at: datetime
    tags: list[str] = []
    preferences: OrganizerPreferences = msgspec.field(default_factory=OrganizerPreferences)


CONTACT_EVENT_STRUCTS = (ContactCreated, ContactUpdated, ContactMatched, InteractionRecorded)
INTERACTION_STRUCTS = (
    TicketPurchased, WaitlistRegistered, EventCheckedIn, AttendeeProfileCompleted, UserAccountLinked,
)

STRUCT_OF_MODEL: dict[type[events.Event], type[Wire]] = {
    events.ImportRowReceivedV1: ImportRowReceived,
    events.TicketPurchasedV1: TicketPurchased,
    events.WaitlistRegisteredV1: WaitlistRegistered,
    events.EventCheckedInV1: EventCheckedIn,
    events.AttendeeProfileCompletedV1: AttendeeProfileCompleted,
    events.UserAccountLinkedV1: UserAccountLinked,
    events.ImportRowsProcessedV1: ImportRowsProcessed,
    events.ContactCreatedV1: ContactCreated,
    events.ContactUpdatedV1: ContactUpdated,
    events.ContactMatchedV1: ContactMatched,
    events.InteractionRecordedV1: InteractionRecorded,
    events.DisplayNameResolvedV1: DisplayNameResolved,
    events.ContactProfileUpdatedV1: ContactProfileUpdated,
    events.OrganizerContactChangedV1: OrganizerContactChanged,
    events.AttendeeStatedV1: AttendeeStated,
    events.EnrichmentSuggestedV1: EnrichmentSuggested,
    events.SuggestionDecidedV1: SuggestionDecided,
}
STRUCT_OF_TYPE: dict[str, type[Wire]] = {model.TYPE: struct for model, struct in STRUCT_OF_MODEL.items()}
TYPE_OF_STRUCT: dict[type[Wire], str] = {struct: model.TYPE for model, struct in STRUCT_OF_MODEL.items()}

_encoder = msgspec.json.Encoder()
encode = _encoder.encode
"""JSON bytes of a wire struct (or of any plain value msgspec can encode)."""


class Decoder:
    """Decodes the values of one topic: the struct for each accepted ``ce_type``; ``decode`` raises
    ``msgspec.ValidationError``/``msgspec.DecodeError`` for bytes that are not such an event."""

    def __init__(self, structs: tuple[type[Wire], ...]) -> None:
        self._decoders = {TYPE_OF_STRUCT[struct]: msgspec.json.Decoder(struct) for struct in structs}

    def accepts(self, event_type: str) -> bool:
        return event_type in self._decoders

    def decode(self, event_type: str, value: bytes) -> Any:
        return self._decoders[event_type].decode(value)


def from_model(event: events.Event) -> Wire:
    """The wire struct of a pydantic event (for tests and the interactive paths that hold a model)."""
    return msgspec.convert(event.model_dump(mode="json"), STRUCT_OF_MODEL[type(event)])


def to_model(struct: Wire) -> events.Event:
    """The pydantic event of a wire struct, validated (for tests and code that needs the model)."""
    model = events.EVENTS_BY_TYPE[TYPE_OF_STRUCT[type(struct)]]
    return model.model_validate_json(encode(struct))
KIND_OF_STRUCT: dict[type[Wire], events.InteractionKind] = {
    STRUCT_OF_MODEL[model]: model.KIND for model in events.INTERACTION_EVENTS
}
