"""enrichment and profiles as real processes (``python -m services.<name>``, configured by environment) on
Tansu and PostgreSQL: identity's contact events in, each organizer's view served over HTTP with the display
name profiles resolves itself (whatever enrichment publishes), the canonical profile published out."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from shared import topics
from shared.auth import mint_token
from shared.codec import encode
from shared.envelope import Envelope
from shared.events import (
    ContactCreatedV1,
    ContactMatchedV1,
    ContactProfileUpdatedV1,
    ContactSource,
    ContactUpdatedV1,
)
from shared.producer import OutgoingMessage
from tests.support.isolation import Isolation
from tests.support.kafka import consume_until, publish
from tests.support.processes import ServiceProcess
from tests.support.waiting import wait_until

pytestmark = pytest.mark.e2e

NOW = datetime(2026, 4, 7, tzinfo=UTC)


@pytest.fixture
async def processes(isolation: Isolation, tmp_path: Path) -> AsyncIterator[dict[str, ServiceProcess]]:
    services = ("enrichment", "profiles")
    isolation.migrate(services)
    running = {
        name: ServiceProcess(
            name, env=isolation.env(), base_url=isolation.base_url(name), log_path=tmp_path / f"{name}.log"
        )
        for name in services
    }
    try:
        await asyncio.gather(*(process.start(timeout=60) for process in running.values()))
        yield running
    finally:
        await asyncio.gather(*(process.stop() for process in running.values()), return_exceptions=True)


def from_identity(
    isolation: Isolation, *events: ContactCreatedV1 | ContactUpdatedV1 | ContactMatchedV1
) -> list[OutgoingMessage]:
    correlation = str(uuid.uuid4())
    return [
        encode(
            event,
            Envelope(
                type=event.TYPE,
                source="kagibag-contacts/identity",
                subject=event.contact_id,
                correlation_id=correlation,
            ),
            topic=isolation.topic(topics.CONTACT_EVENTS),
            key=event.contact_id,
        )
        for event in events
    ]


async def test_identity_events_become_named_profiles_each_organizer_reads_on_its_own(
    isolation: Isolation, processes: dict[str, ServiceProcess]
) -> None:
    ada, linus = str(uuid.uuid4()), str(uuid.uuid4())
    a = ContactSource(kind="import", organizer_id="org-a", import_id="imp-1", row_number=1)
    b = ContactSource(
        kind="import", organizer_id="org-b", import_id="imp-2", row_number=1, email_permission="subscribed"
    )
    await publish(
        isolation.kafka_bootstrap,
        from_identity(
            isolation,
            ContactCreatedV1(
                contact_id=ada,
                version=1,
                occurred_at=NOW,
                source=a,
                email="ada@example.com",
                email_original="Ada@Example.com",
                fields={"first_name": "Ada"},
            ),
            ContactCreatedV1(
                contact_id=linus,
                version=1,
                occurred_at=NOW,
                source=a,
                email="linus@example.com",
                email_original="linus@example.com",
            ),
            ContactMatchedV1(contact_id=ada, version=2, occurred_at=NOW, source=b),
            ContactUpdatedV1(  # the person, buying a ticket for one of org-b's events
                contact_id=ada, version=3, occurred_at=NOW, changes={"last_name": "Lovelace"},
                source=ContactSource(kind="interaction", organizer_id="org-b", interaction_id="m-1"),
            ),
        ),
    )
    base = processes["profiles"].base_url

    def headers(organizer: str) -> dict[str, str]:
        token = mint_token(secret=isolation.auth_secret, organizer_id=organizer, ttl_seconds=600)
        return {"Authorization": f"Bearer {token}"}

    async with httpx.AsyncClient(base_url=base, timeout=10) as client:

        async def named(organizer: str, email: str, name: str) -> dict[str, Any] | None:
            items = (
                await client.get("/v1/contacts", params={"email": email}, headers=headers(organizer))
            ).json()
            return items["items"][0] if items["items"] and items["items"][0]["display_name"] == name else None

        ada_for_a = await wait_until(lambda: named("org-a", "ADA@example.com", "Ada Lovelace"), timeout=60)
        ada_for_b = await wait_until(lambda: named("org-b", "ada@example.com", "Lovelace"), timeout=10)
        await wait_until(lambda: named("org-a", "linus@example.com", "linus"), timeout=10)

        assert (ada_for_a["contact_id"], ada_for_a["email_permission"]) == (ada, "unknown")
        assert (ada_for_b["contact_id"], ada_for_b["email_permission"]) == (ada, "subscribed")
        assert (ada_for_a["email_original"], ada_for_b["email_original"]) == ("Ada@Example.com", "ada@example.com")
        assert ada_for_b["first_name"] is None  # org-a's import
        assert (await client.get(f"/v1/contacts/{linus}", headers=headers("org-b"))).status_code == 404
        assert (await client.get("/v1/contacts", headers=headers("org-c"))).json()["items"] == []
        assert (await client.get(f"/v1/contacts/{ada}")).status_code == 401
        for service, process in processes.items():
            metrics = (await client.get(f"{process.base_url}/metrics")).text
            assert f'contacts_outbox_backlog{{service="{service}"}}' in metrics

    seen = await consume_until(
        isolation.kafka_bootstrap,
        isolation.topic(topics.PROFILE_UPDATES),
        lambda seen: any(c.event.display_name == "Lovelace" for c in seen if c.event),  # type: ignore[attr-defined]
        accepted=(ContactProfileUpdatedV1,),
    )
    ada_versions = [c.event.profile_version for c in seen if c.event and c.event.contact_id == ada]  # type: ignore[attr-defined]
    assert ada_versions == sorted(set(ada_versions))
