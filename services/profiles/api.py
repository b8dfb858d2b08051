"""The contacts API: an organizer reads the profiles of the people it has a relationship with, with its own
private relationship data and insights, and changes its tags, notes, preferences and email permission. Nothing
else: an unrelated contact is "not found", never "forbidden", so ids reveal nothing, and another organizer's
private data is in no response, filter or error."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Header, HTTPException, Query, Response, status
from fastapi.exceptions import RequestValidationError
from sqlalchemy.ext.asyncio import AsyncEngine

from services.profiles import organizer_feed, queries, relationships
from services.profiles.contact_lists import ContactFilters, SortParameter, contact_page
from services.profiles.organizer_feed import Feed
from services.profiles.queries import Filters
from services.profiles.relationship import (
    ContactChange,
    RelationshipPatch,
    apply,
    problems,
)
from services.profiles.views import (
    Change,
    ChangePage,
    Contact,
    ContactDetail,
    ContactList,
    ContactPage,
    contact_fields,
    detail,
)
from shared.auth import CurrentCaller, OrganizerId
from shared.outbox_batches import enqueue
from shared.pagination import decode_cursor, encode_cursor, invalid_input

NOT_FOUND = "contact not found"


CHANGES = "changes"
"""The scope of the change log's cursors (``shared.pagination``)."""


def _encode_change_cursor(sequence: int) -> str:
    return encode_cursor(CHANGES, sequence)


def _decode_change_cursor(cursor: str) -> int:
    (sequence,) = decode_cursor(cursor, CHANGES, (int,))
    assert isinstance(sequence, int)
    return sequence


def _expected_version(if_match: str | None) -> int | None:
    """The relationship version an ``If-Match`` header names (``"3"``, ``W/"3"`` or ``3``); None for ``*`` or
    no header."""
    if if_match is None or if_match.strip() == "*":
        return None
    tag = if_match.strip().removeprefix("W/").strip('"')
    if not tag.isdigit():
        raise invalid_input("header", "if-match", 'give the ETag of a GET, e.g. "3"', if_match)
    return int(tag)


def _etag(version: int) -> str:
    return f'"{version}"'


def contacts_router(engine: AsyncEngine, *, feed: Feed) -> APIRouter:
    router = APIRouter(tags=["contacts"])
    not_found: dict[int | str, dict[str, Any]] = {
        404: {"description": "no such contact, or the caller has no relationship with it (the same answer)"}
    }

    @router.get("/v1/contacts", response_model=ContactPage, summary="Find, filter and list the caller's contacts")
    async def list_contacts(
        organizer_id: OrganizerId,
        filters: ContactFilters,
        sort: SortParameter = "id",
        limit: Annotated[int, Query(ge=1, le=200)] = 50,
        cursor: Annotated[str | None, Query(max_length=400, description="next_cursor of the previous page")] = None,
    ) -> ContactPage:
        return await contact_page(engine, organizer_id=organizer_id, filters=filters, sort=sort, limit=limit,
                                  cursor=cursor)

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
        return ContactList(items=[Contact(**contact_fields(row)) for row in rows])

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
        return detail(row, organizer_id)

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
            if organizer_feed.shared_state_changed(locked, after):
                state = await organizer_feed.current(conn, organizer_id=organizer_id, contact_id=contact_id,
                                                     topic=feed.topic, time=change.changed_at)
                if state is not None:
                    await enqueue(conn, [state], channel=feed.channel)
            row = await queries.get_contact(conn, organizer_id=organizer_id, contact_id=contact_id)
        if row is None:  # cannot happen: the row was locked by this transaction
            raise HTTPException(status.HTTP_404_NOT_FOUND, NOT_FOUND)
        response.headers["ETag"] = _etag(after.version)
        return detail(row, organizer_id)

    @router.get(
        "/v1/contacts/{contact_id}/changes",
        response_model=ChangePage,
        summary="The caller's changes to its relationship with a contact, newest first",
        responses=not_found,
    )
    async def list_changes(
        organizer_id: OrganizerId,
        contact_id: str,
        limit: Annotated[int, Query(ge=1, le=200)] = 50,
        cursor: Annotated[str | None, Query(max_length=100, description="next_cursor of the previous page")] = None,
    ) -> ChangePage:
        before = _decode_change_cursor(cursor) if cursor is not None else None
        async with engine.connect() as conn:
            if await queries.get_contact(conn, organizer_id=organizer_id, contact_id=contact_id) is None:
                raise HTTPException(status.HTTP_404_NOT_FOUND, NOT_FOUND)
            rows = await queries.find_changes(
                conn, organizer_id=organizer_id, contact_id=contact_id, before=before, limit=limit + 1
            )
        items = [Change.model_validate(row._mapping) for row in rows[:limit]]
        next_cursor = _encode_change_cursor(rows[limit - 1].sequence) if len(rows) > limit else None
        return ChangePage(items=items, next_cursor=next_cursor)

    return router
