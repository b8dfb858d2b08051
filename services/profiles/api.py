"""The contacts API: an organizer reads the profiles of the people it has a relationship with, with its own
private relationship data and insights, and changes its tags, notes, preferences and email permission. Nothing
else: an unrelated contact is "not found", never "forbidden", so ids reveal nothing, and another organizer's
private data is in no response, filter or error."""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, HTTPException, Query, Response, status
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncEngine

from services.profiles import queries, relationships
from services.profiles.queries import Filters, Position, Sort
from services.profiles.relationship import (
    ContactChange,
    Preferences,
    RelationshipPatch,
    apply,
    normalize_label,
    problems,
)
from shared.auth import CurrentCaller, OrganizerId
from shared.events import EmailPermission

NOT_FOUND = "contact not found"
MAX_TAG_FILTERS = 20


class FieldSource(BaseModel):
    """Where a field's current value came from. The organizer and the import or interaction are shown only
    when they are the caller's own (``yours``); otherwise only the kind and the time."""

    kind: str
    at: datetime | None = None
    yours: bool
    organizer_id: str | None = None
    import_id: str | None = None
    interaction_id: str | None = None


class PermissionView(BaseModel):
    """The caller's email permission for the contact: who stated it (``import``: the import id; ``api``: the
    user or organizer that set it) and when. ``source`` is null while nobody has said anything."""

    status: EmailPermission
    source: Literal["import", "api"] | None = None
    changed_at: datetime | None = None
    changed_by: str | None = None


class RelationshipView(BaseModel):
    """The caller's private relationship with the contact. ``version`` counts the API changes to it (the
    ``ETag``; send it back in ``If-Match`` to change only what you saw)."""

    email_permission: PermissionView
    tags: list[str]
    preferences: Preferences
    notes: str | None
    first_seen_at: datetime
    last_seen_at: datetime
    version: int


class InsightsView(BaseModel):
    """The contact's history with the caller's events only."""

    events_attended: int
    registrations: int
    tickets_purchased: int
    orders: int
    first_seen_at: datetime
    last_active_at: datetime | None


class Contact(BaseModel):
    """A contact as the calling organizer sees it: the canonical profile (shared by every organizer related to
    the contact), the caller's own relationship and insights (never another organizer's), and the caller's
    email permission status at the top level for convenience."""

    contact_id: str
    email: str
    email_original: str
    first_name: str | None
    last_name: str | None
    company: str | None
    title: str | None
    phone: str | None
    display_name: str | None
    bio: str | None
    social_links: dict[str, str]
    user_account_id: str | None
    email_permission: EmailPermission
    profile_version: int
    created_at: datetime
    updated_at: datetime
    relationship: RelationshipView
    insights: InsightsView


class ContactDetail(Contact):
    field_sources: dict[str, FieldSource]


class ContactPage(BaseModel):
    items: list[Contact]
    next_cursor: str | None = None


class ContactList(BaseModel):
    items: list[Contact]


def _invalid(location: str, parameter: str, message: str, value: object) -> RequestValidationError:
    """A 422 in FastAPI's own error shape, for rules a declaration cannot express."""
    return RequestValidationError([{"type": "value_error", "loc": (location, parameter), "msg": message,
                                    "input": value}])


def _encode_cursor(position: Position) -> str:
    if position.sort == "id":
        keys: list[Any] = ["id", position.contact_id]
    else:
        active = position.last_active_at.isoformat() if position.last_active_at else None
        keys = ["engagement", position.events_attended, position.tickets_purchased, active, position.contact_id]
    return base64.urlsafe_b64encode(json.dumps(keys, separators=(",", ":")).encode()).decode().rstrip("=")


def _decode_cursor(cursor: str, sort: Sort) -> Position:
    """The position a cursor of this API names; 422 for anything else, or a cursor of another sort order."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        keys = json.loads(base64.b64decode(padded, altchars=b"-_", validate=True).decode())
        if keys[0] == "id" and len(keys) == 2 and isinstance(keys[1], str) and keys[1]:
            position = Position(sort="id", contact_id=keys[1])
        elif keys[0] == "engagement" and len(keys) == 5:
            _, events, tickets, active, contact_id = keys
            if not (isinstance(events, int) and isinstance(tickets, int) and isinstance(contact_id, str)):
                raise ValueError("bad keys")
            at = datetime.fromisoformat(active) if active is not None else None
            position = Position("engagement", contact_id, events, tickets, at)
        else:
            raise ValueError("unknown cursor")
    except (binascii.Error, UnicodeDecodeError, ValueError, TypeError, IndexError, KeyError) as error:
        raise _invalid("query", "cursor", "not a cursor returned by this API", cursor) from error
    if position.sort != sort:
        raise _invalid("query", "cursor", f"this cursor continues sort={position.sort}, not sort={sort}", cursor)
    return position


def _aware(parameter: str, value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        raise _invalid("query", parameter, "give a time zone (e.g. 2026-03-01T00:00:00Z)", value.isoformat())
    return value


def _tag_filters(tags: list[str]) -> list[str]:
    if len(tags) > MAX_TAG_FILTERS:
        raise _invalid("query", "tag", f"at most {MAX_TAG_FILTERS} tags", tags)
    normalized = []
    for tag in tags:
        try:
            normalized.append(normalize_label(tag))
        except ValueError as error:
            raise _invalid("query", "tag", str(error), tag) from error
    return normalized


def _field_sources(raw: Any, organizer_id: str) -> dict[str, FieldSource]:
    sources: dict[str, FieldSource] = {}
    for name, source in (raw or {}).items():
        if not isinstance(source, dict):
            continue
        yours = source.get("organizer_id") == organizer_id
        sources[name] = FieldSource(
            kind=str(source.get("kind", "unknown")),
            at=source.get("at"),
            yours=yours,
            organizer_id=organizer_id if yours else None,
            import_id=source.get("import_id") if yours else None,
            interaction_id=source.get("interaction_id") if yours else None,
        )
    return sources


def _contact(row: Any) -> dict[str, Any]:
    values = row._mapping
    return {
        **{name: values[name] for name in (
            "contact_id", "email", "email_original", "first_name", "last_name", "company", "title", "phone",
            "display_name", "bio", "user_account_id", "email_permission", "profile_version", "created_at",
            "updated_at",
        )},
        "social_links": values["social_links"] or {},
        "relationship": RelationshipView(
            email_permission=PermissionView(
                status=values["email_permission"],
                source=values["permission_source"],
                changed_at=values["permission_changed_at"],
                changed_by=values["permission_changed_by"],
            ),
            tags=values["tags"],
            preferences=Preferences.model_validate(values["preferences"] or {}),
            notes=values["notes"],
            first_seen_at=values["first_seen_at"],
            last_seen_at=values["last_seen_at"],
            version=values["relationship_version"],
        ),
        "insights": InsightsView(
            events_attended=values["events_attended"],
            registrations=values["registrations"],
            tickets_purchased=values["tickets_purchased"],
            orders=values["orders"],
            first_seen_at=values["first_seen_at"],
            last_active_at=values["last_active_at"],
        ),
    }


def _detail(row: Any, organizer_id: str) -> ContactDetail:
    return ContactDetail(**_contact(row), field_sources=_field_sources(row.field_sources, organizer_id))


def _expected_version(if_match: str | None) -> int | None:
    """The relationship version an ``If-Match`` header names (``"3"``, ``W/"3"`` or ``3``); None for ``*`` or
    no header."""
    if if_match is None or if_match.strip() == "*":
        return None
    tag = if_match.strip().removeprefix("W/").strip('"')
    if not tag.isdigit():
        raise _invalid("header", "if-match", 'give the ETag of a GET, e.g. "3"', if_match)
    return int(tag)


def _etag(version: int) -> str:
    return f'"{version}"'


def contacts_router(engine: AsyncEngine) -> APIRouter:
    router = APIRouter(tags=["contacts"])
    not_found: dict[int | str, dict[str, Any]] = {
        404: {"description": "no such contact, or the caller has no relationship with it (the same answer)"}
    }

    @router.get("/v1/contacts", response_model=ContactPage, summary="Find, filter and list the caller's contacts")
    async def list_contacts(
        organizer_id: OrganizerId,
        email: Annotated[
            str | None, Query(max_length=320, description="exact email (case and surrounding spaces ignored)")
        ] = None,
        q: Annotated[
            str | None, Query(max_length=200, description="prefix of the email, display, first or last name")
        ] = None,
        tag: Annotated[
            list[str], Query(description="your tag; repeat it to find contacts with all of them")
        ] = [],  # noqa: B006 - FastAPI copies the default per request
        permission: Annotated[EmailPermission | None, Query(description="your email permission status")] = None,
        company: Annotated[str | None, Query(max_length=200, description="company (case-insensitive)")] = None,
        last_active_after: Annotated[
            datetime | None, Query(description="last active with your events at or after this time")
        ] = None,
        last_active_before: Annotated[
            datetime | None, Query(description="last active with your events before this time")
        ] = None,
        min_events_attended: Annotated[
            int | None, Query(ge=0, description="attended (checked in at) at least this many of your events")
        ] = None,
        sort: Annotated[
            Sort,
            Query(description="id: contact id order; engagement: the most engaged first (events attended, "
                              "then tickets purchased, then last active)"),
        ] = "id",
        limit: Annotated[int, Query(ge=1, le=200)] = 50,
        cursor: Annotated[str | None, Query(max_length=400, description="next_cursor of the previous page")] = None,
    ) -> ContactPage:
        if email is not None and q is not None:
            raise _invalid("query", "q", "use either email or q, not both", q)
        normalized = email.strip().lower() if email is not None else None
        if normalized == "":
            raise _invalid("query", "email", "must not be blank", email)
        prefix = q.strip() if q is not None else None
        if prefix == "":
            raise _invalid("query", "q", "must not be blank", q)
        if company is not None and not company.strip():
            raise _invalid("query", "company", "must not be blank", company)
        after, before = _aware("last_active_after", last_active_after), _aware("last_active_before", last_active_before)
        if after is not None and before is not None and after >= before:
            raise _invalid("query", "last_active_before", "must be later than last_active_after", str(before))
        filters = Filters(
            email=normalized,
            prefix=prefix,
            tags=_tag_filters(tag),
            permission=permission,
            company=company.strip() if company is not None else None,
            last_active_after=after,
            last_active_before=before,
            min_events_attended=min_events_attended,
        )
        position = _decode_cursor(cursor, sort) if cursor is not None else None
        async with engine.connect() as conn:
            rows = await queries.find_contacts(
                conn, organizer_id=organizer_id, filters=filters, sort=sort, after=position, limit=limit + 1
            )
        items = [Contact(**_contact(row)) for row in rows[:limit]]
        next_cursor = _encode_cursor(queries.position_of(rows[limit - 1], sort)) if len(rows) > limit else None
        return ContactPage(items=items, next_cursor=next_cursor)

    @router.get(
        "/v1/insights/most-engaged",
        response_model=ContactList,
        tags=["insights"],
        summary="The caller's most engaged contacts",
        description="Contacts active with the caller's events, the most engaged first: events attended, then "
                    "tickets purchased, then last active. The same order as GET /v1/contacts?sort=engagement, "
                    "which pages through all of them.",
    )
    async def most_engaged(
        organizer_id: OrganizerId, limit: Annotated[int, Query(ge=1, le=200)] = 10
    ) -> ContactList:
        async with engine.connect() as conn:
            rows = await queries.find_contacts(
                conn, organizer_id=organizer_id, filters=Filters(active_only=True), sort="engagement", limit=limit
            )
        return ContactList(items=[Contact(**_contact(row)) for row in rows])

    @router.get(
        "/v1/contacts/{contact_id}",
        response_model=ContactDetail,
        summary="One of the caller's contacts",
        responses=not_found,
    )
    async def get_contact(organizer_id: OrganizerId, contact_id: str, response: Response) -> ContactDetail:
        async with engine.connect() as conn:
            row = await queries.get_contact(conn, organizer_id=organizer_id, contact_id=contact_id)
        if row is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, NOT_FOUND)
        response.headers["ETag"] = _etag(row.relationship_version)
        return _detail(row, organizer_id)

    @router.patch(
        "/v1/contacts/{contact_id}",
        response_model=ContactDetail,
        summary="Change the caller's tags, notes, preferences or email permission for a contact",
        description="Recorded as a change (who, when, what) in the caller's change log, then applied. "
                    "Send If-Match with the ETag of a GET to fail with 412 if the relationship changed since.",
        responses={**not_found, 412: {"description": "the relationship changed since the ETag in If-Match"}},
    )
    async def change_contact(
        caller: CurrentCaller,
        contact_id: str,
        patch: RelationshipPatch,
        response: Response,
        if_match: Annotated[str | None, Header(description='the ETag of a GET, e.g. "3"')] = None,
    ) -> ContactDetail:
        expected = _expected_version(if_match)
        organizer_id = caller.organizer_id
        async with engine.begin() as conn:
            locked = await relationships.lock(
                conn, organizer_id=organizer_id, contact_id=contact_id, profile_required=True
            )
            if locked is None:
                raise HTTPException(status.HTTP_404_NOT_FOUND, NOT_FOUND)
            if expected is not None and expected != locked.relationship.version:
                raise HTTPException(
                    status.HTTP_412_PRECONDITION_FAILED,
                    f"the relationship is at version {locked.relationship.version}, not {expected}",
                )
            change = ContactChange(
                change_id=str(uuid.uuid4()),
                organizer_id=organizer_id,
                contact_id=contact_id,
                changed_by=caller.actor,
                changed_at=datetime.now(UTC),
                patch=patch,
            )
            after = apply(locked.relationship, change)
            broken = problems(after)
            if broken:
                raise RequestValidationError(
                    [{"type": "value_error", "loc": ("body", *p.field), "msg": p.message, "input": None}
                     for p in broken]
                )
            await relationships.record(conn, change)
            await relationships.save(conn, change, locked, after)
            row = await queries.get_contact(conn, organizer_id=organizer_id, contact_id=contact_id)
        if row is None:  # cannot happen: the row was locked by this transaction
            raise HTTPException(status.HTTP_404_NOT_FOUND, NOT_FOUND)
        response.headers["ETag"] = _etag(after.version)
        return _detail(row, organizer_id)

    return router
