"""ingest running in the test's process behind its HTTP API (real broker, real PostgreSQL), and helpers that
speak to it as organizers and as identity: upload, follow, read the published rows, answer them."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from services.ingest.app import create_app
from services.ingest.config import IngestSettings
from shared import topics
from shared.auth import mint_token
from shared.codec import encode
from shared.envelope import Envelope
from shared.events import ImportRowReceivedV1, ImportRowsProcessedV1, ProcessedRow, RowOutcome
from shared.producer import OutgoingMessage
from tests.support.isolation import Isolation
from tests.support.kafka import Consumed, consume_until, publish
from tests.support.waiting import wait_until


@dataclass(frozen=True)
class Answer:
    """One row event and identity's outcome for it."""

    row: Consumed
    processed: ProcessedRow


@dataclass
class Ingest:
    """The running app, its settings, and helpers that speak to it as organizers and as identity."""

    client: httpx.AsyncClient
    settings: IngestSettings
    isolation: Isolation

    def auth(self, organizer_id: str) -> dict[str, str]:
        token = mint_token(secret=self.isolation.auth_secret, organizer_id=organizer_id, ttl_seconds=600)
        return {"Authorization": f"Bearer {token}"}

    async def upload(
        self, organizer_id: str, content: str | bytes, *, filename: str = "contacts.csv", auto_start: bool = True,
        expect: str = "parsing",
    ) -> str:
        """Upload a file; by default it starts at once with the proposed mapping (``auto_start``)."""
        response = await self.client.post(
            "/v1/imports", headers=self.auth(organizer_id), files={"file": (filename, content, "text/csv")},
            params={"auto_start": "true"} if auto_start else {},
        )
        assert response.status_code == 202, response.text
        body = response.json()
        assert body["status"] == expect
        return str(body["import_id"])

    async def get(self, organizer_id: str, import_id: str) -> dict[str, Any]:
        response = await self.client.get(f"/v1/imports/{import_id}", headers=self.auth(organizer_id))
        assert response.status_code == 200, response.text
        return dict(response.json())

    async def wait_for(self, organizer_id: str, import_id: str, *statuses: str) -> dict[str, Any]:
        async def reached() -> dict[str, Any]:
            current = await self.get(organizer_id, import_id)
            return current if current["status"] in statuses else {}

        return await wait_until(reached, timeout=30, description=f"import {import_id} in {statuses}")

    async def wait_counted(self, organizer_id: str, import_id: str, processed: int) -> dict[str, Any]:
        """The import once ``processed`` of its rows have an outcome."""

        async def counted() -> dict[str, Any]:
            current = await self.get(organizer_id, import_id)
            return current if current["processed_rows"] == processed else {}

        return await wait_until(counted, timeout=30, description=f"{processed} rows of {import_id} counted")

    async def rows(self, organizer_id: str, import_id: str, **params: Any) -> list[dict[str, Any]]:
        response = await self.client.get(
            f"/v1/imports/{import_id}/rows", headers=self.auth(organizer_id), params=params
        )
        assert response.status_code == 200, response.text
        return list(response.json()["items"])

    async def published_rows(self, import_id: str, count: int) -> list[Consumed]:
        """The row events of ``import_id`` on the import-rows topic in row order, once ``count`` are there."""

        def mine(seen: list[Consumed]) -> list[Consumed]:
            return [
                c for c in seen if isinstance(c.event, ImportRowReceivedV1) and c.event.import_id == import_id
            ]

        seen = await consume_until(
            self.isolation.kafka_bootstrap,
            self.isolation.topic(topics.IMPORT_ROWS),
            lambda seen: len(mine(seen)) >= count,
        )
        return sorted(mine(seen), key=lambda c: c.event.row_number)  # type: ignore[union-attr]

    async def answer(self, messages: Sequence[OutgoingMessage]) -> None:
        await publish(self.isolation.kafka_bootstrap, messages)

    def processed(self, row: Consumed, outcome: RowOutcome, *, contact_id: str | None = None,
                  error_code: str | None = None) -> Answer:
        """What identity did with one row event."""
        assert isinstance(row.event, ImportRowReceivedV1)
        processed = ProcessedRow(
            row_number=row.event.row_number,
            outcome=outcome, contact_id=contact_id or (str(uuid.uuid4()) if outcome != "error" else None),
            error_code=error_code, error_message="refused by identity" if error_code else None,
        )
        return Answer(row, processed)

    def outcomes(self, *answers: Answer, envelope: Envelope | None = None) -> list[OutgoingMessage]:
        """Identity's answer to a batch of row events: one message per import with its rows in the order
        given, caused by its first row event (a fresh envelope unless one is given, as on redelivery)."""
        by_import: dict[str, list[Answer]] = {}
        for answer in answers:
            received = answer.row.event
            assert isinstance(received, ImportRowReceivedV1) and answer.row.envelope is not None
            by_import.setdefault(received.import_id, []).append(answer)
        messages = []
        for import_id, group in by_import.items():
            first = group[0].row
            assert isinstance(first.event, ImportRowReceivedV1) and first.envelope is not None
            event = ImportRowsProcessedV1(
                import_id=import_id, organizer_id=first.event.organizer_id, rows=[a.processed for a in group]
            )
            caused = envelope or first.envelope.caused(
                type=event.TYPE, source="kagibag-contacts/identity", subject=import_id
            )
            messages.append(encode(event, caused, topic=self.isolation.topic(topics.IMPORT_ROW_OUTCOMES),
                                   key=import_id))
        return messages


def ingest_settings(isolation: Isolation, data_dir: Path, **overrides: Any) -> IngestSettings:
    platform = isolation.platform_settings(environment="development", log_format="json")
    return IngestSettings(
        db_schema=isolation.schema("ingest"),
        consumer_group=isolation.consumer_group("ingest"),
        data_dir=data_dir,
        platform=platform,
        **overrides,
    )


@contextlib.asynccontextmanager
async def running_ingest(settings: IngestSettings, isolation: Isolation) -> AsyncIterator[Ingest]:
    """The app between its start-up and shut-down. The lifespan runs in a task of its own, as under a server:
    a module-scoped fixture is torn down in another task than it was set up in, and the MCP session manager's
    task group must be left in the task that entered it."""
    app = create_app(settings)
    started, stopping = asyncio.Event(), asyncio.Event()

    async def serve() -> None:
        async with app.router.lifespan_context(app):
            started.set()
            await stopping.wait()

    server = asyncio.create_task(serve(), name="ingest-lifespan")
    waiting = asyncio.create_task(started.wait())
    await asyncio.wait({server, waiting}, return_when=asyncio.FIRST_COMPLETED)
    if not started.is_set():
        waiting.cancel()
        await server  # start-up failed: raise its error
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://ingest") as client:
            yield Ingest(client=client, settings=settings, isolation=isolation)
    finally:
        stopping.set()
        await server


def organizer() -> str:
    return f"org-{uuid.uuid4().hex[:8]}"
