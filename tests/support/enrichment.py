"""enrichment as tests drive it: the app in this process with its lifespan running (consumer, paced worker, relay),
contact events as identity would publish them, tokens for the attendee and organizers, and what enrichment stored."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import psycopg
from fastapi import FastAPI

from ops.local_postgres import libpq_url
from services.enrichment.app import create_app
from services.enrichment.config import EnrichmentSettings
from shared import topics
from shared.auth import mint_attendee_token, mint_token
from shared.codec import encode
from shared.envelope import Envelope
from shared.events import ContactCreatedV1, ContactEvent, ContactSource, ContactUpdatedV1, EnrichmentSuggestedV1
from shared.producer import OutgoingMessage
from tests.support.isolation import Isolation
from tests.support.kafka import Consumed, publish

NOW = datetime(2026, 3, 1, tzinfo=UTC)
IMPORT_A = ContactSource(kind="import", organizer_id="org-a", import_id="imp-1", row_number=1)
IMPORT_B = ContactSource(kind="import", organizer_id="org-b", import_id="imp-2", row_number=1)
TICKET = ContactSource(kind="interaction", organizer_id="org-c", interaction_id="ce-1")
ADA = "ada.lovelace@analytical.example"


def created(contact_id: str, email: str, source: ContactSource = IMPORT_A, **fields: str) -> ContactCreatedV1:
    return ContactCreatedV1(contact_id=contact_id, version=1, occurred_at=NOW, source=source, email=email,
                            email_original=email, fields=fields)  # type: ignore[arg-type]


def updated(contact_id: str, version: int, source: ContactSource = IMPORT_A, **changes: str) -> ContactUpdatedV1:
    return ContactUpdatedV1(contact_id=contact_id, version=version, occurred_at=NOW, source=source,
                            changes=changes)  # type: ignore[arg-type]


def as_identity(isolation: Isolation, event: ContactEvent) -> OutgoingMessage:
    envelope = Envelope(type=event.TYPE, source="kagibag-contacts/identity", subject=event.contact_id,
                        correlation_id=f"import-{uuid.uuid4().hex[:6]}")
    return encode(event, envelope, topic=isolation.topic(topics.CONTACT_EVENTS), key=event.contact_id)


@dataclass
class Running:
    isolation: Isolation
    app: FastAPI
    client: httpx.AsyncClient

    def attendee(self, email: str) -> dict[str, str]:
        token = mint_attendee_token(secret=self.isolation.auth_secret, email=email, ttl_seconds=600)
        return {"Authorization": f"Bearer {token}"}

    def organizer(self, organizer_id: str) -> dict[str, str]:
        token = mint_token(secret=self.isolation.auth_secret, organizer_id=organizer_id, ttl_seconds=600)
        return {"Authorization": f"Bearer {token}"}

    async def send(self, *events: ContactEvent) -> None:
        await publish(self.isolation.kafka_bootstrap, [as_identity(self.isolation, event) for event in events])

    def rows(self, sql: str) -> list[tuple[Any, ...]]:
        with psycopg.connect(libpq_url(self.isolation.database_url)) as conn:
            conn.execute(f'SET search_path TO "{self.isolation.schema("enrichment")}"')
            return conn.execute(sql).fetchall()

    def suggestions(self, contact_id: str) -> list[tuple[Any, ...]]:
        return self.rows(f"SELECT field, current, suggested, source, status FROM suggestions "
                         f"WHERE contact_id = '{contact_id}' ORDER BY field, created_at")


@contextlib.asynccontextmanager
async def enrichment_running(isolation: Isolation, **settings: Any) -> AsyncIterator[Running]:
    isolation.migrate(("enrichment",))
    app = create_app(EnrichmentSettings(
        db_schema=isolation.schema("enrichment"), consumer_group=isolation.consumer_group("enrichment"),
        platform=isolation.platform_settings(log_level="WARNING"), worker_poll_seconds=0.2, **settings,
    ))
    async with app.router.lifespan_context(app), httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://enrichment"
    ) as client:
        yield Running(isolation, app, client)


def suggested(seen: list[Consumed]) -> list[EnrichmentSuggestedV1]:
    return [c.event for c in seen if isinstance(c.event, EnrichmentSuggestedV1)]
