"""How the calling organizer sees a contact: its own view of the profile (the person's values, else its own),
its own relationship and insights, and the source of each value shown. Built from a row of ``queries``: the
caller's own ``organizer_contacts`` row, which holds nothing of any other organizer."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ValidationError

from services.profiles.relationship import Preferences
from shared.events import EmailPermission


class FieldSource(BaseModel):
    """Where a value shown came from: the caller's own import (``yours``, with the organizer and the import
    id), or the person (``interaction``, ``attendee``: only the kind and the time)."""

    kind: str
    at: datetime | None = None
    yours: bool
    organizer_id: str | None = None
    import_id: str | None = None


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
    """The contact's history with the caller's events only. ``attended_events``: the ids of the events the contact
    checked in at, the latest check-in first (its length is ``events_attended``)."""

    events_attended: int
    attended_events: list[str]
    registrations: int
    tickets_purchased: int
    orders: int
    first_seen_at: datetime
    last_active_at: datetime | None


class Contact(BaseModel):
    """A contact as the calling organizer sees it: per field the value the person stated, else the caller's
    own imported one (never another organizer's); the caller's own relationship and insights; and the
    caller's email permission status at the top level for convenience. ``view_version`` counts the changes to
    these values (1 when the contact became the caller's); ``created_at`` is when it did, ``updated_at`` the
    last change. Only the caller's own actions and the person's own statements change any of them."""

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
    view_version: int
    created_at: datetime
    updated_at: datetime
    relationship: RelationshipView
    insights: InsightsView


class ContactDetail(Contact):
    field_sources: dict[str, FieldSource]


class ContactPage(BaseModel):
    items: list[Contact]
    next_cursor: str | None = None


class Change(BaseModel):
    """One of the caller's own changes to its relationship with the contact: who, when and what (the normalized
    PATCH body)."""

    change_id: str
    changed_by: str
    changed_at: datetime
    changes: dict[str, Any]


class ChangePage(BaseModel):
    items: list[Change]
    next_cursor: str | None = None


class ContactList(BaseModel):
    items: list[Contact]


def field_sources(raw: Any, organizer_id: str) -> dict[str, FieldSource]:
    sources: dict[str, FieldSource] = {}
    for name, source in (raw or {}).items():
        if not isinstance(source, dict):
            continue
        yours = source.get("organizer_id") == organizer_id
        shown = {
            "kind": str(source.get("kind", "unknown")),
            "yours": yours,
            "organizer_id": organizer_id if yours else None,
            "import_id": source.get("import_id") if yours else None,
        }
        try:
            sources[name] = FieldSource.model_validate({**shown, "at": source.get("at")})
        except ValidationError:  # a malformed stored source costs its details, never the response
            sources[name] = FieldSource(kind=shown["kind"], yours=yours)
    return sources


def contact_fields(row: Any) -> dict[str, Any]:
    values = row._mapping
    return {
        **{name: values[name] for name in (
            "contact_id", "email", "email_original", "first_name", "last_name", "company", "title", "phone",
            "display_name", "bio", "user_account_id", "email_permission", "view_version", "created_at",
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
            attended_events=values["attended_events"],
            registrations=values["registrations"],
            tickets_purchased=values["tickets_purchased"],
            orders=values["orders"],
            first_seen_at=values["first_seen_at"],
            last_active_at=values["last_active_at"],
        ),
    }


def detail(row: Any, organizer_id: str) -> ContactDetail:
    return ContactDetail(**contact_fields(row), field_sources=field_sources(row.field_sources, organizer_id))
