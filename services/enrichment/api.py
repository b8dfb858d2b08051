"""enrichment's HTTP API.

The attendee (an attendee token, ``/v1/me/...``) reads their own profile as the contact log states it (only what
they stated themself, with where each value came from) and their suggestions, accepts (possibly customized) or
rejects each, and completes their profile. Organizers (an organizer token) see per contact only whether the
attendee has reviewed enrichment: counts, never values; a contact they have no relationship with is "not found",
exactly like an unknown one."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Literal

import phonenumbers
from fastapi import APIRouter, Body, Depends, HTTPException, Query, Request, status
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.ext.asyncio import AsyncEngine

from services.enrichment import review, store
from services.enrichment.domain import (
    DECIDED,
    MAX_BIO_CHARS,
    MAX_SOCIAL_LINKS,
    Person,
    RefusedValue,
    Status,
    Suggestion,
    checked_value,
)
from services.enrichment.service import EnrichmentTopics
from shared.auth import CurrentAttendee, OrganizerId
from shared.events import CONTACT_FIELDS, ContactField, SourceKind

NO_PROFILE = "no profile yet: nothing is known about this email address"
SUGGESTION_NOT_FOUND = "suggestion not found"
CONTACT_NOT_FOUND = "contact not found"
_NETWORK = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,49}$")


@dataclass(frozen=True)
class EnrichmentApi:
    """What the routes need, built once in ``create_app``."""

    engine: AsyncEngine
    topics: EnrichmentTopics
    channel: str
    phone_region: str | None


def _enrichment_api(request: Request) -> EnrichmentApi:
    api: EnrichmentApi = request.app.state.enrichment_api
    return api


Api = Annotated[EnrichmentApi, Depends(_enrichment_api)]


def _invalid(location: tuple[str, ...], message: str, value: object) -> RequestValidationError:
    """A 422 in FastAPI's own error shape, for rules a declaration cannot express."""
    return RequestValidationError([{"type": "value_error", "loc": location, "msg": message, "input": value}])


# --- views --------------------------------------------------------------------------------------------------------


class FieldSource(BaseModel):
    kind: SourceKind
    at: datetime


class MyProfile(BaseModel):
    """The person's own profile: only values they stated themself (an interaction with an event, or here as the
    attendee), never an organizer's imported values."""

    contact_id: str
    email: str | None
    first_name: str | None = None
    last_name: str | None = None
    company: str | None = None
    title: str | None = None
    phone: str | None = None
    bio: str | None = None
    social_links: dict[str, str] = Field(default_factory=dict)
    field_sources: dict[str, FieldSource] = Field(
        default_factory=dict, description='field (or "social_links.<network>") -> where its value came from')
    pending_suggestions: int


class SuggestionView(BaseModel):
    id: str
    field: ContactField
    current: str | None
    suggested: str
    source: str
    confidence: float
    created_at: datetime
    status: Status
    decided_at: datetime | None = None
    value: str | None = Field(default=None, description="what you stated: the suggested value, or your own")


class SuggestionList(BaseModel):
    items: list[SuggestionView]


class Accept(BaseModel):
    """Accept as suggested (no body, or ``{}``), or customized: ``{"fields": {"company": "Analytical Engines"}}``
    naming the suggestion's own field."""

    model_config = ConfigDict(extra="forbid")

    fields: dict[str, str] | None = None


class DecisionView(BaseModel):
    suggestion: SuggestionView
    statement_id: str | None = Field(
        description="the id of your statement sent to the profile (null for a rejection); it shows in your "
        "profile once applied, usually within a second or two")


class ProfileEdit(BaseModel):
    """Your own company, title, bio and social links (network -> URL or handle). A value replaces the one you
    stated before; nothing can be erased (blank values are refused)."""

    model_config = ConfigDict(extra="forbid")

    company: str | None = None
    title: str | None = None
    bio: str | None = None
    social_links: dict[str, str] | None = None


class StatementView(BaseModel):
    statement_id: str
    stated: dict[str, str | dict[str, str]]


class ReviewSummary(BaseModel):
    """Whether the person reviewed what enrichment suggested: counts only, never values."""

    contact_id: str
    pending: int
    reviewed: int
    status: Literal["nothing_suggested", "pending", "reviewed"]


def _suggestion_view(suggestion: Suggestion) -> SuggestionView:
    return SuggestionView.model_validate(suggestion, from_attributes=True)


def _profile_view(person: Person, pending: int) -> MyProfile:
    return MyProfile(
        contact_id=person.contact_id, email=person.email, **{name: person.current(name) for name in CONTACT_FIELDS},
        bio=person.bio, social_links=dict(person.social_links),
        field_sources={name: FieldSource(kind=kind, at=at)  # type: ignore[arg-type]
                       for name, (kind, at) in sorted(person.sources.items())},
        pending_suggestions=pending,
    )


# --- the attendee ---------------------------------------------------------------------------------------------------

router = APIRouter()
STATUS_FILTERS: dict[str, tuple[Status, ...]] = {
    "pending": ("pending",),
    "reviewed": tuple(sorted(DECIDED)),
    "all": ("pending", *sorted(DECIDED)),
}


@router.get("/v1/me/profile", tags=["attendee"], responses={404: {"description": NO_PROFILE}})
async def my_profile(attendee: CurrentAttendee, api: Api) -> MyProfile:
    async with api.engine.connect() as conn:
        person = await store.person_by_email(conn, attendee.email)
        if person is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, NO_PROFILE)
        pending = await store.suggestions_with_status(conn, person.contact_id, ("pending",))
    return _profile_view(person, len(pending))


@router.get("/v1/me/suggestions", tags=["attendee"])
async def my_suggestions(
    attendee: CurrentAttendee, api: Api,
    status_filter: Annotated[Literal["pending", "reviewed", "all"], Query(alias="status")] = "pending",
) -> SuggestionList:
    """Your suggestions: ``pending`` (default) ones to review, ``reviewed`` ones (accepted, customized,
    rejected), or ``all`` of them (withdrawn ones, replaced or no longer suggested, are never listed)."""
    async with api.engine.connect() as conn:
        person = await store.person_by_email(conn, attendee.email)
        if person is None:
            return SuggestionList(items=[])
        found = await store.suggestions_with_status(conn, person.contact_id, STATUS_FILTERS[status_filter])
    return SuggestionList(items=[_suggestion_view(s) for s in found])


def _customized_value(suggestion_field: str, body: Accept | None, *, phone_region: str | None) -> str | None:
    if body is None or body.fields is None:
        return None
    if set(body.fields) != {suggestion_field}:
        raise _invalid(("body", "fields"), f"this suggestion is for {suggestion_field}: give fields with exactly "
                       f"that key (or no body to accept it as suggested)", body.fields)
    try:
        value = checked_value(suggestion_field, body.fields[suggestion_field])
    except RefusedValue as error:
        raise _invalid(("body", "fields", suggestion_field), str(error), body.fields[suggestion_field]) from error
    if suggestion_field == "phone" and not _possible_phone(value, phone_region):
        raise _invalid(("body", "fields", "phone"), "not a phone number (write it with +country code)", value)
    return value


def _possible_phone(value: str, region: str | None) -> bool:
    try:
        return phonenumbers.is_possible_number(phonenumbers.parse(value, region))
    except phonenumbers.NumberParseException:
        return False


async def _decide(api: EnrichmentApi, *, email: str, suggestion_id: str, decision: Literal["accept", "reject"],
                  body: Accept | None) -> DecisionView:
    async with api.engine.begin() as conn:
        try:
            pending = await review.pending_suggestion(conn, email=email, suggestion_id=suggestion_id)
        except review.NotFound as error:
            raise HTTPException(status.HTTP_404_NOT_FOUND, SUGGESTION_NOT_FOUND) from error
        except review.AlreadyDecided as error:
            raise HTTPException(status.HTTP_409_CONFLICT, str(error)) from error
        value = _customized_value(pending.field, body, phone_region=api.phone_region) if decision == "accept" else None
        decided = await review.decide(conn, email=email, suggestion=pending, decision=decision, value=value,
                                      topics=api.topics, channel=api.channel)
    return DecisionView(suggestion=_suggestion_view(decided.suggestion), statement_id=decided.statement_id)


@router.post("/v1/me/suggestions/{suggestion_id}/accept", tags=["attendee"],
             responses={404: {"description": SUGGESTION_NOT_FOUND}, 409: {"description": "already decided"}})
async def accept_suggestion(
    suggestion_id: str, attendee: CurrentAttendee, api: Api, body: Annotated[Accept | None, Body()] = None
) -> DecisionView:
    """Accept a suggestion: its value becomes your own statement (it beats any value an organizer imported).
    ``{"fields": {"<its field>": "your value"}}`` states your own value instead (customized)."""
    return await _decide(api, email=attendee.email, suggestion_id=suggestion_id, decision="accept", body=body)


@router.post("/v1/me/suggestions/{suggestion_id}/reject", tags=["attendee"],
             responses={404: {"description": SUGGESTION_NOT_FOUND}, 409: {"description": "already decided"}})
async def reject_suggestion(suggestion_id: str, attendee: CurrentAttendee, api: Api) -> DecisionView:
    """Reject a suggestion: nothing changes, and its source never suggests that value again."""
    return await _decide(api, email=attendee.email, suggestion_id=suggestion_id, decision="reject", body=None)


def _edited_values(edit: ProfileEdit) -> dict[str, str | dict[str, str]]:
    given = edit.model_dump(exclude_unset=True)
    if not given:
        raise _invalid(("body",), "give at least one of company, title, bio, social_links", given)
    values: dict[str, str | dict[str, str]] = {}
    for name, value in given.items():
        if value is None:
            raise _invalid(("body", name), f"{name} cannot be erased, only replaced", None)
        try:
            if name == "social_links":
                values[name] = _checked_links(value)
            else:
                values[name] = checked_value(name, value, limit=MAX_BIO_CHARS if name == "bio" else 255)
        except RefusedValue as error:
            raise _invalid(("body", name), str(error), value) from error
    return values


def _checked_links(links: dict[str, str]) -> dict[str, str]:
    if not links:
        raise RefusedValue("social_links must name at least one network")
    if len(links) > MAX_SOCIAL_LINKS:
        raise RefusedValue(f"at most {MAX_SOCIAL_LINKS} social links")
    checked = {}
    for network, link in links.items():
        name = network.strip().lower()
        if not _NETWORK.match(name):
            raise RefusedValue(f"network {network!r}: lowercase letters, digits, '.', '_' or '-', up to 50")
        checked[name] = checked_value(f"social_links.{name}", link)
    return checked


@router.patch("/v1/me/profile", tags=["attendee"], status_code=status.HTTP_202_ACCEPTED)
async def edit_my_profile(edit: ProfileEdit, attendee: CurrentAttendee, api: Api) -> StatementView:
    """Complete your profile: company, title, bio, social links. Sent as your own statement; ``GET
    /v1/me/profile`` shows it once applied (usually within a second or two)."""
    values = _edited_values(edit)
    async with api.engine.begin() as conn:
        statement_id = await review.state_profile(conn, email=attendee.email, values=values, topics=api.topics,
                                                  channel=api.channel)
    return StatementView(statement_id=statement_id, stated=values)


# --- organizers -----------------------------------------------------------------------------------------------------


@router.get("/v1/contacts/{contact_id}/enrichment-review", tags=["organizer"],
            responses={404: {"description": CONTACT_NOT_FOUND}})
async def enrichment_review(contact_id: str, organizer_id: OrganizerId, api: Api) -> ReviewSummary:
    """Whether the person has reviewed enrichment: pending and reviewed counts (never the values)."""
    async with api.engine.connect() as conn:
        counts = await store.review_counts(conn, contact_id=contact_id, organizer_id=organizer_id)
    if counts is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, CONTACT_NOT_FOUND)
    pending, reviewed = counts
    state: Literal["nothing_suggested", "pending", "reviewed"] = (
        "pending" if pending else "reviewed" if reviewed else "nothing_suggested"
    )
    return ReviewSummary(contact_id=contact_id, pending=pending, reviewed=reviewed, status=state)
