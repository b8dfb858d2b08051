"""The contacts list's query: its filters (``GET /v1/contacts`` and its CSV export), its sort orders and cursors,
and a page of contacts for any filters (the list's, a segment's)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import Depends, Query
from sqlalchemy.ext.asyncio import AsyncEngine

from services.profiles import queries
from services.profiles.queries import Filters, Position, Sort
from services.profiles.relationship import normalize_label
from services.profiles.views import Contact, ContactPage, contact_fields
from shared.events import EmailPermission
from shared.pagination import decode_cursor, encode_cursor, invalid_query

MAX_TAG_FILTERS = 20


def encode_position(position: Position) -> str:
    """The cursor after ``position``: ``shared.pagination``'s format, its scope the sort order."""
    if position.sort == "id":
        return encode_cursor("contacts:id", position.contact_id)
    return encode_cursor("contacts:engagement", position.events_attended, position.tickets_purchased,
                         position.last_active_at, position.contact_id)


def decode_position(cursor: str, sort: Sort) -> Position:
    """The position a cursor of this API names; 422 for anything else, or a cursor of another sort order."""
    if sort == "id":
        (contact_id,) = decode_cursor(cursor, "contacts:id", (str,))
        return Position(sort="id", contact_id=str(contact_id))
    events, tickets, active, contact_id = decode_cursor(
        cursor, "contacts:engagement", (int, int, (datetime, type(None)), str))
    assert isinstance(events, int) and isinstance(tickets, int) and isinstance(contact_id, str)
    return Position("engagement", contact_id, events, tickets, active if isinstance(active, datetime) else None)


def _aware(parameter: str, value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        raise invalid_query(parameter, "give a time zone (e.g. 2026-03-01T00:00:00Z)", value.isoformat())
    return value


def _tag_filters(tags: list[str]) -> list[str]:
    if len(tags) > MAX_TAG_FILTERS:
        raise invalid_query("tag", f"at most {MAX_TAG_FILTERS} tags", tags)
    normalized = []
    for tag in tags:
        try:
            normalized.append(normalize_label(tag))
        except ValueError as error:
            raise invalid_query("tag", str(error), tag) from error
    return normalized


def contact_filters(
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
) -> Filters:
    """The filters of ``GET /v1/contacts`` (and its CSV export), validated."""
    if email is not None and q is not None:
        raise invalid_query("q", "use either email or q, not both", q)
    normalized = email.strip().lower() if email is not None else None
    if normalized == "":
        raise invalid_query("email", "must not be blank", email)
    prefix = q.strip() if q is not None else None
    if prefix == "":
        raise invalid_query("q", "must not be blank", q)
    if company is not None and not company.strip():
        raise invalid_query("company", "must not be blank", company)
    after, before = _aware("last_active_after", last_active_after), _aware("last_active_before", last_active_before)
    if after is not None and before is not None and after >= before:
        raise invalid_query("last_active_before", "must be later than last_active_after", str(before))
    return Filters(
        email=normalized,
        prefix=prefix,
        tags=_tag_filters(tag),
        permission=permission,
        company=company.strip() if company is not None else None,
        last_active_after=after,
        last_active_before=before,
        min_events_attended=min_events_attended,
    )


ContactFilters = Annotated[Filters, Depends(contact_filters)]
SortParameter = Annotated[
    Sort,
    Query(description="id: contact id order; engagement: the most engaged first (events attended, "
                      "then tickets purchased, then last active)"),
]


async def contact_page(
    engine: AsyncEngine, *, organizer_id: str, filters: Filters, sort: Sort, limit: int, cursor: str | None
) -> ContactPage:
    """A page of the organizer's contacts matching ``filters`` (``/v1/contacts``, a segment's contacts)."""
    position = decode_position(cursor, sort) if cursor is not None else None
    async with engine.connect() as conn:
        rows = await queries.find_contacts(
            conn, organizer_id=organizer_id, filters=filters, sort=sort, after=position, limit=limit + 1
        )
    items = [Contact(**contact_fields(row)) for row in rows[:limit]]
    next_cursor = encode_position(queries.position_of(rows[limit - 1], sort)) if len(rows) > limit else None
    return ContactPage(items=items, next_cursor=next_cursor)
