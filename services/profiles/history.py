"""A contact's interaction history with the calling organizer's events: what it registered for, waitlisted,
bought tickets for and checked in at, newest first. Only the caller's own ``organizer_interactions`` rows are read
(each interaction is recorded under the organizer whose event it was), and a contact that is not the caller's is
"not found" like everywhere in the contacts API."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any, Literal, cast

from fastapi import APIRouter, HTTPException, Query, status
from pydantic import BaseModel
from sqlalchemy import Row, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.profiles import queries
from shared.auth import OrganizerId
from shared.pagination import Page, decode_cursor, encode_cursor

HistoryKind = Literal["registered", "waitlisted", "ticketed", "checked_in"]
KINDS: dict[str, HistoryKind] = {
    "waitlist_registered": "waitlisted",
    "ticket_purchased": "ticketed",
    "event_checked_in": "checked_in",
}
"""The recorded interaction kinds that are about one of the organizer's events, as the history names them. (The
platform reports no registration apart from a ticket or a waitlist place yet: ``registered`` is reserved for it.
Completed attendee profiles and linked accounts are statements about the person, not about an event.)"""
SCOPE = "interactions"
NOT_FOUND = "contact not found"


class Interaction(BaseModel):
    """One interaction with one of the caller's events. ``order_id`` and ``tickets`` (the tickets of that report
    of the order) only for ``ticketed``."""

    interaction_id: str
    event_id: str | None
    kind: HistoryKind
    occurred_at: datetime
    order_id: str | None
    tickets: int | None


async def find_interactions(
    conn: AsyncConnection, *, organizer_id: str, contact_id: str, before: tuple[datetime, str] | None, limit: int
) -> Sequence[Row[Any]]:
    """The organizer's interactions with the contact, newest first (then by id), after the keyset ``before``."""
    sql = (
        "SELECT interaction_id, kagibag_event_id, kind, occurred_at, order_id, ticket_count "
        "FROM organizer_interactions "
        "WHERE organizer_id = :organizer_id AND contact_id = :contact_id AND kind = ANY(:kinds)"
    )
    params: dict[str, Any] = {"organizer_id": organizer_id, "contact_id": contact_id, "kinds": list(KINDS),
                              "limit": limit}
    if before is not None:
        sql += " AND (occurred_at, interaction_id) < (:before_at, :before_id)"
        params.update(before_at=before[0], before_id=before[1])
    sql += " ORDER BY occurred_at DESC, interaction_id DESC LIMIT :limit"
    return (await conn.execute(text(sql), params)).all()


def interaction(row: Any) -> Interaction:
    return Interaction(interaction_id=row.interaction_id, event_id=row.kagibag_event_id, kind=KINDS[row.kind],
                       occurred_at=row.occurred_at, order_id=row.order_id, tickets=row.ticket_count)


def history_router(engine: AsyncEngine) -> APIRouter:
    router = APIRouter(tags=["contacts"])

    @router.get(
        "/v1/contacts/{contact_id}/interactions",
        response_model=Page[Interaction],
        summary="The contact's interactions with the caller's events, newest first",
        responses={404: {"description": "no such contact, or the caller has no relationship with it"}},
    )
    async def list_interactions(
        organizer_id: OrganizerId,
        contact_id: str,
        limit: Annotated[int, Query(ge=1, le=200)] = 50,
        cursor: Annotated[str | None, Query(max_length=400, description="next_cursor of the previous page")] = None,
    ) -> Page[Interaction]:
        before = None
        if cursor is not None:
            at, interaction_id = decode_cursor(cursor, SCOPE, (datetime, str))
            before = (cast(datetime, at), cast(str, interaction_id))
        async with engine.connect() as conn:
            if await queries.get_contact(conn, organizer_id=organizer_id, contact_id=contact_id) is None:
                raise HTTPException(status.HTTP_404_NOT_FOUND, NOT_FOUND)
            rows = await find_interactions(conn, organizer_id=organizer_id, contact_id=contact_id, before=before,
                                           limit=limit + 1)
        items = [interaction(row) for row in rows[:limit]]
        more = len(rows) > limit
        next_cursor = encode_cursor(SCOPE, items[-1].occurred_at, items[-1].interaction_id) if more else None
        return Page[Interaction](items=items, next_cursor=next_cursor)

    return router
