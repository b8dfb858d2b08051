"""The contacts API: an organizer reads the profiles of the people it has a relationship with, and nothing
else (an unrelated contact is "not found", never "forbidden", so ids reveal nothing)."""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, status
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncEngine

from services.profiles import queries
from shared.auth import OrganizerId
from shared.events import EmailPermission


class Contact(BaseModel):
    """A contact profile as the calling organizer sees it: the canonical profile plus the caller's own
    relationship data (never another organizer's)."""

    contact_id: str
    email: str
    email_original: str
    first_name: str | None
    last_name: str | None
    company: str | None
    title: str | None
    phone: str | None
    display_name: str | None
    email_permission: EmailPermission
    profile_version: int
    created_at: datetime
    updated_at: datetime


class ContactPage(BaseModel):
    items: list[Contact]
    next_cursor: str | None = None


def _invalid(parameter: str, message: str, value: object) -> RequestValidationError:
    """A 422 in FastAPI's own error shape, for rules a ``Query`` declaration cannot express."""
    return RequestValidationError(
        [{"type": "value_error", "loc": ("query", parameter), "msg": message, "input": value}]
    )


def _encode_cursor(contact_id: str) -> str:
    return base64.urlsafe_b64encode(contact_id.encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> str:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        contact_id = base64.b64decode(padded, altchars=b"-_", validate=True).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError) as error:
        raise _invalid("cursor", "not a cursor returned by this API", cursor) from error
    if not contact_id:
        raise _invalid("cursor", "not a cursor returned by this API", cursor)
    return contact_id


def _contact(row: Any) -> Contact:
    return Contact.model_validate(row._mapping)


def contacts_router(engine: AsyncEngine) -> APIRouter:
    router = APIRouter(prefix="/v1/contacts", tags=["contacts"])

    @router.get("", response_model=ContactPage, summary="Find or list the caller's contacts")
    async def list_contacts(
        organizer_id: OrganizerId,
        email: Annotated[
            str | None, Query(max_length=320, description="exact email (case and surrounding spaces ignored)")
        ] = None,
        q: Annotated[
            str | None, Query(max_length=200, description="prefix of the email, display, first or last name")
        ] = None,
        limit: Annotated[int, Query(ge=1, le=200)] = 50,
        cursor: Annotated[
            str | None, Query(max_length=400, description="next_cursor of the previous page")
        ] = None,
    ) -> ContactPage:
        if email is not None and q is not None:
            raise _invalid("q", "use either email or q, not both", q)
        normalized = email.strip().lower() if email is not None else None
        if normalized == "":
            raise _invalid("email", "must not be blank", email)
        prefix = q.strip() if q is not None else None
        if prefix == "":
            raise _invalid("q", "must not be blank", q)
        after = _decode_cursor(cursor) if cursor is not None else None
        async with engine.connect() as conn:
            rows = await queries.find_contacts(
                conn, organizer_id=organizer_id, email=normalized, prefix=prefix, after=after, limit=limit + 1
            )
        items = [_contact(row) for row in rows[:limit]]
        next_cursor = _encode_cursor(items[-1].contact_id) if len(rows) > limit else None
        return ContactPage(items=items, next_cursor=next_cursor)

    @router.get(
        "/{contact_id}",
        response_model=Contact,
        summary="One of the caller's contacts",
        responses={404: {"description": "no such contact, or the caller has no relationship with it"}},
    )
    async def get_contact(organizer_id: OrganizerId, contact_id: str) -> Contact:
        async with engine.connect() as conn:
            row = await queries.get_contact(conn, organizer_id=organizer_id, contact_id=contact_id)
        if row is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "contact not found")
        return _contact(row)

    return router
