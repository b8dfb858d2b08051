"""What the attendee does with their suggestions and profile, each in one transaction: the decision recorded, a
``SuggestionDecidedV1`` for the enrichments topic and, for what they accept, customize or edit, an
``AttendeeStatedV1`` for identity (which makes it the canonical value, beating any organizer's import), both in one
outbox row with the decision."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Literal

from sqlalchemy.ext.asyncio import AsyncConnection

from services.enrichment import store
from services.enrichment.domain import Status, Suggestion
from services.enrichment.service import SOURCE, EnrichmentTopics
from shared import wire
from shared.envelope import HeaderTemplate
from shared.outbox_batches import enqueue
from shared.producer import OutgoingMessage

_decided_headers = HeaderTemplate(type=wire.TYPE_OF_STRUCT[wire.SuggestionDecided], source=SOURCE)
_stated_headers = HeaderTemplate(type=wire.TYPE_OF_STRUCT[wire.AttendeeStated], source=SOURCE)


class NotFound(LookupError):
    pass


class AlreadyDecided(Exception):
    def __init__(self, suggestion: Suggestion) -> None:
        super().__init__(
            "this suggestion was replaced by a newer one or is no longer suggested" if suggestion.status == "withdrawn"
            else f"this suggestion was already {suggestion.status}"
        )
        self.suggestion = suggestion


@dataclass(frozen=True)
class Decided:
    suggestion: Suggestion
    statement_id: str | None


def _statement(*, email: str, at: datetime, statement: Literal["suggestion_accepted", "suggestion_customized",
               "profile_edited"], values: Mapping[str, object], topic: str, statement_id: str,
               correlation_id: str, suggestion_id: str | None = None) -> OutgoingMessage:
    event = wire.AttendeeStated(email=email, occurred_at=at, statement=statement, suggestion_id=suggestion_id,
                                **values)  # type: ignore[arg-type]
    headers = _stated_headers.build(id=statement_id, time=at, subject=email, correlation_id=correlation_id)
    return OutgoingMessage(topic, email.encode(), wire.encode(event), headers)


async def pending_suggestion(conn: AsyncConnection, *, email: str, suggestion_id: str) -> Suggestion:
    """One of the attendee's pending suggestions, row-locked until the transaction ends. ``NotFound`` when it is
    none of theirs; ``AlreadyDecided`` when it is no longer pending."""
    person = await store.person_by_email(conn, email)
    if person is None:
        raise NotFound(suggestion_id)
    suggestion = await store.suggestion_for_update(conn, contact_id=person.contact_id, suggestion_id=suggestion_id)
    if suggestion is None:
        raise NotFound(suggestion_id)
    if suggestion.status != "pending":
        raise AlreadyDecided(suggestion)
    return suggestion


async def decide(
    conn: AsyncConnection,
    *,
    email: str,
    suggestion: Suggestion,
    decision: Literal["accept", "reject"],
    value: str | None,
    topics: EnrichmentTopics,
    channel: str,
) -> Decided:
    """Record the attendee's decision on ``suggestion`` (locked by ``pending_suggestion``): accepted (``value``
    None: as suggested), customized (their own ``value``) or rejected."""
    now = datetime.now(UTC)
    status: Status
    if decision == "reject":
        status, stated = "rejected", None
    else:
        stated = suggestion.suggested if value is None else value
        status = "accepted" if stated == suggestion.suggested else "customized"
    await store.record_decision(conn, suggestion_id=suggestion.id, status=status, value=stated, at=now)
    decided = wire.SuggestionDecided(contact_id=suggestion.contact_id, suggestion_id=suggestion.id,
                                     field=suggestion.field, source=suggestion.source,  # type: ignore[arg-type]
                                     decision=status, value=stated, occurred_at=now)  # type: ignore[arg-type]
    correlation_id = f"decision:{suggestion.id}"
    messages = [OutgoingMessage(
        topics.enrichments, suggestion.contact_id.encode(), wire.encode(decided),
        _decided_headers.build(id=correlation_id, time=now, subject=suggestion.contact_id,
                               correlation_id=correlation_id),
    )]
    statement_id = None
    if stated is not None:
        statement_id = f"statement:{suggestion.id}"
        messages.append(_statement(
            email=email, at=now, statement="suggestion_accepted" if status == "accepted" else "suggestion_customized",
            values={suggestion.field: stated}, topic=topics.attendee_statements, statement_id=statement_id,
            correlation_id=correlation_id, suggestion_id=suggestion.id,
        ))
    await enqueue(conn, messages, channel=channel)
    return Decided(suggestion=replace(suggestion, status=status, value=stated, decided_at=now),
                   statement_id=statement_id)


async def state_profile(conn: AsyncConnection, *, email: str, values: Mapping[str, object],
                        topics: EnrichmentTopics, channel: str) -> str:
    """The attendee's own profile edit, as an ``AttendeeStatedV1`` for identity; returns its id."""
    now = datetime.now(UTC)
    statement_id = f"profile-edit:{uuid.uuid4()}"
    await enqueue(conn, [_statement(email=email, at=now, statement="profile_edited", values=values,
                                    topic=topics.attendee_statements, statement_id=statement_id,
                                    correlation_id=statement_id)], channel=channel)
    return statement_id

