"""``contacts.organizer-contacts.v1``: each organizer contact's shared state (email, email permission with source
and time, tags, preferences; never notes or imported values) as ``OrganizerContactChangedV1`` messages, staged in
the caller's transaction for the outbox relay. Two writers of the state stage them: a merged batch (a contact new to
the organizer, or a permission an import changed: ``batch_changes``) and an API change (``current``)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from services.profiles.permission import effective
from services.profiles.relationship import Relationship
from services.profiles.relationships import Locked
from shared.envelope import HeaderTemplate, derived_id
from shared.events import OrganizerContactChangedV1
from shared.producer import OutgoingMessage

SOURCE = "kagibag-contacts/profiles"
_headers = HeaderTemplate(type=OrganizerContactChangedV1.TYPE, source=SOURCE)

_PAYLOAD = (
    "CAST(jsonb_build_object('organizer_id', o.organizer_id, 'contact_id', o.contact_id, 'email', o.email, "
    "'email_permission', jsonb_build_object('status', o.email_permission, 'source', o.permission_source, "
    "'changed_at', o.permission_changed_at), 'tags', to_jsonb(o.tags), 'preferences', o.preferences, "
    "'changed_at', statement_timestamp()) AS text) AS payload"
)
"""One state as published (times in UTC: both callers set the transaction's time zone)."""


@dataclass(frozen=True)
class Feed:
    """Where API changes stage their messages: the qualified topic and the relay's channel."""

    topic: str
    channel: str


def shared_state_changed(locked: Locked, after: Relationship) -> bool:
    """Whether an API change changed what the topic carries (tags, preferences, the email permission that
    applies); a change of notes alone is not published."""
    before = locked.relationship
    return (
        before.tags != after.tags
        or dict(before.preferences) != dict(after.preferences)
        or effective(locked.imported, before.explicit) != effective(locked.imported, after.explicit)
    )


def key(organizer_id: str, contact_id: str) -> str:
    return f"{organizer_id}:{contact_id}"


def message(organizer_id: str, contact_id: str, payload: str, *, topic: str, time: datetime) -> OutgoingMessage:
    """A state as a message keyed ``organizer_id:contact_id``; its id derived from the key and the state."""
    subject = key(organizer_id, contact_id)
    digest = hashlib.sha256(payload.encode()).hexdigest()
    headers = _headers.build(id=derived_id("organizer-contact", subject, digest), time=time, subject=subject)
    return OutgoingMessage(topic, subject.encode(), payload.encode(), headers)


async def batch_changes(conn: AsyncConnection, *, topic: str, time: datetime) -> list[OutgoingMessage]:
    """After ``store.merge`` in the same transaction: the states of the rows the batch made the organizer's (its
    profile applied) or whose email permission it changed."""
    result = await conn.execute(text(
        f"SELECT o.organizer_id, o.contact_id, {_PAYLOAD} FROM feed_before b "
        "JOIN organizer_contacts o USING (organizer_id, contact_id) "
        "WHERE o.email IS NOT NULL AND (b.email IS NULL OR (o.email_permission, o.permission_source, "
        "o.permission_changed_at) IS DISTINCT FROM (b.status, b.source, b.changed_at)) "
        'ORDER BY o.organizer_id COLLATE "C", o.contact_id COLLATE "C"'
    ))
    return [message(row.organizer_id, row.contact_id, row.payload, topic=topic, time=time) for row in result]


async def current(
    conn: AsyncConnection, *, organizer_id: str, contact_id: str, topic: str, time: datetime
) -> OutgoingMessage | None:
    """The state of one organizer contact as it is now in the caller's transaction (None without a profile)."""
    await conn.execute(text("SET LOCAL TimeZone = 'UTC'"))
    params: dict[str, Any] = {"organizer_id": organizer_id, "contact_id": contact_id}
    row = (await conn.execute(text(
        f"SELECT o.organizer_id, o.contact_id, {_PAYLOAD} FROM organizer_contacts o "
        "WHERE o.organizer_id = :organizer_id AND o.contact_id = :contact_id AND o.email IS NOT NULL"
    ), params)).first()
    return message(row.organizer_id, row.contact_id, row.payload, topic=topic, time=time) if row else None
