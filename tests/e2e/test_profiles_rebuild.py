"""The profiles read model end to end, with the four services as processes: imports by two organizers (one
stating consent), interactions published to the interactions topic counted as insights, an explicit
unsubscribe through the API that a later import saying "subscribed" does not lift, and ``contacts rebuild
profiles`` replaying the logs into a fresh schema that equals the live one row for row, column for column."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest

from ops.local_postgres import libpq_url
from shared.auth import mint_token
from shared.codec import encode
from shared.envelope import Envelope
from shared.events import EmailPermission, EventCheckedInV1, ImportRowReceivedV1, InteractionEvent, TicketPurchasedV1
from shared.lag import consumer_lag
from shared.producer import OutgoingMessage
from shared.topics import CONTACT_EVENTS, IMPORT_ROWS, INTERACTIONS
from tests.support.isolation import Isolation
from tests.support.kafka import consume_quiet, publish
from tests.support.processes import CHECKOUT, ServiceProcess
from tests.support.waiting import wait_until

pytestmark = pytest.mark.e2e

AT = datetime(2026, 5, 1, 18, 0, tzinfo=UTC)
TABLES = {
    "contact_profiles": "contact_id",
    "organizer_contacts": "organizer_id, contact_id",
    "organizer_interactions": "organizer_id, contact_id, interaction_id",
}


def import_rows(
    isolation: Isolation, organizer: str, rows: list[tuple[str, str, EmailPermission | None]]
) -> list[OutgoingMessage]:
    """What ingest publishes for an import of ``(email, first name, permission)`` rows."""
    import_id = f"imp-{uuid.uuid4().hex[:8]}"
    messages = []
    for number, (email, first_name, permission) in enumerate(rows, start=1):
        row = ImportRowReceivedV1(import_id=import_id, organizer_id=organizer, row_number=number, email=email,
                                  first_name=first_name, email_permission=permission)
        envelope = Envelope(type=row.TYPE, source="kagibag-contacts/ingest", correlation_id=import_id)
        messages.append(encode(row, envelope, topic=isolation.topic(IMPORT_ROWS), key=email.strip().lower()))
    return messages


def interaction(isolation: Isolation, event: InteractionEvent, *, id: str | None = None) -> OutgoingMessage:
    envelope = Envelope(id=id or str(uuid.uuid4()), type=event.TYPE, source="kagibag-platform/tickets")
    return encode(event, envelope, topic=isolation.topic(INTERACTIONS), key=event.email.strip().lower())


def table(isolation: Isolation, schema: str, name: str) -> tuple[list[str], list[tuple[Any, ...]]]:
    with psycopg.connect(libpq_url(isolation.database_url)) as conn:
        cursor = conn.execute(f'SELECT * FROM "{schema}".{name} ORDER BY {TABLES[name]}')
        rows = cursor.fetchall()
        return [column.name for column in cursor.description or ()], rows


def relationship(isolation: Isolation, organizer: str, email: str) -> dict[str, Any] | None:
    with psycopg.connect(libpq_url(isolation.database_url)) as conn:
        cursor = conn.execute(
            f'SELECT o.* FROM "{isolation.schema("profiles")}".organizer_contacts o '
            f'JOIN "{isolation.schema("profiles")}".contact_profiles p USING (contact_id) '
            "WHERE o.organizer_id = %s AND p.email = %s",
            (organizer, email),
        )
        row = cursor.fetchone()
        names = [column.name for column in cursor.description or ()]
        return dict(zip(names, row, strict=True)) if row else None


async def profiles_consumed_everything(isolation: Isolation) -> None:
    """Wait until profiles has committed past the last record of the contact log (read from the records:
    Tansu's reported end offsets can fall short)."""
    for topic in (isolation.topic(CONTACT_EVENTS),):
        ends: dict[int, int] = {}
        for consumed in await consume_quiet(isolation.kafka_bootstrap, topic, quiet_seconds=2.0):
            partition = consumed.record.partition
            ends[partition] = max(ends.get(partition, 0), consumed.record.offset + 1)

        async def caught_up(topic: str = topic, ends: dict[int, int] = ends) -> bool:
            lags = await consumer_lag(isolation.kafka_bootstrap, group=isolation.consumer_group("profiles"),
                                      topics=[topic])
            committed = {lag.partition: lag.committed for lag in lags}
            return all(committed.get(partition, 0) >= end for partition, end in ends.items())

        await wait_until(caught_up, timeout=60, description=f"profiles to commit past {ends} on {topic}")


async def run_rebuild(isolation: Isolation, target: str) -> str:
    env = {key: value for key, value in os.environ.items() if not key.startswith("CONTACTS_")}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "ops.cli", "rebuild", "profiles", "--target-schema", target,
        env={**env, **isolation.env(), "CONTACTS_LOG_LEVEL": "WARNING"}, cwd=CHECKOUT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), timeout=180)
    assert process.returncode == 0, output.decode()
    return output.decode()


async def test_insights_permission_and_a_rebuild_that_reproduces_the_read_model(
    running_services: dict[str, ServiceProcess], migrated: Isolation
) -> None:
    profiles = running_services["profiles"].base_url
    token = mint_token(secret=migrated.auth_secret, organizer_id="org-a", ttl_seconds=600)
    org_a = {"Authorization": f"Bearer {token}"}
    await publish(migrated.kafka_bootstrap, [
        *import_rows(migrated, "org-a", [("ada@example.com", "Ada", "subscribed"), ("bob@example.com", "Bob", None)]),
        *import_rows(migrated, "org-b", [("ADA@example.com", "Ada", "unsubscribed")]),
    ])
    ticket = TicketPurchasedV1(organizer_id="org-a", email="Ada@Example.com", occurred_at=AT, kagibag_event_id="ev-1",
                               order_id="o-1", ticket_count=2)
    check_in = EventCheckedInV1(organizer_id="org-a", email="ada@example.com", occurred_at=AT + timedelta(hours=3),
                                kagibag_event_id="ev-1")
    ticket_id = str(uuid.uuid4())
    await publish(migrated.kafka_bootstrap, [
        interaction(migrated, ticket, id=ticket_id),
        interaction(migrated, ticket, id=ticket_id),  # a redelivery: the same message again
        interaction(migrated, check_in),
        interaction(migrated, EventCheckedInV1(organizer_id="org-c", email="bob@example.com", occurred_at=AT,
                                               kagibag_event_id="ev-9")),
    ])

    def insights() -> dict[str, Any] | None:
        found = relationship(migrated, "org-a", "ada@example.com")
        return found if found and found["last_active_at"] is not None and found["events_attended"] == 1 else None

    ada = await wait_until(insights, timeout=60, description="org-a's insights about ada")
    assert (ada["tickets_purchased"], ada["orders"], ada["events_attended"], ada["registrations"]) == (2, 1, 1, 0)
    assert ada["last_active_at"] == AT + timedelta(hours=3)
    assert (ada["email_permission"], ada["permission_source"], ada["import_permission"]) == (
        "subscribed", "import", "subscribed")
    bob_c = await wait_until(lambda: relationship(migrated, "org-c", "bob@example.com"), timeout=60)
    assert (bob_c["events_attended"], bob_c["email_permission"]) == (1, "unknown")  # a relationship by interaction
    ada_b = relationship(migrated, "org-b", "ada@example.com")
    assert ada_b is not None
    assert (ada_b["email_permission"], ada_b["events_attended"], ada_b["last_active_at"]) == ("unsubscribed", 0, None)

    async with httpx.AsyncClient(base_url=profiles, timeout=10) as client:
        response = await client.patch(f"/v1/contacts/{ada['contact_id']}", headers=org_a,
                                      json={"email_permission": "unsubscribed", "tags": {"add": ["vip"]}})
        assert response.status_code == 200, response.text

    # org-a imports ada again, the file saying she is subscribed: the explicit unsubscribe stands
    await publish(migrated.kafka_bootstrap, import_rows(migrated, "org-a", [("ada@example.com", "Ada", "subscribed")]))

    def reimported() -> dict[str, Any] | None:
        found = relationship(migrated, "org-a", "ada@example.com")
        return found if found and found["import_permission_at"] != ada["import_permission_at"] else None

    after = await wait_until(reimported, timeout=60, description="the re-import's statement to be projected")
    assert (after["import_permission"], after["email_permission"], after["permission_source"]) == (
        "subscribed", "unsubscribed", "api")
    assert after["tags"] == ["vip"] and after["tickets_purchased"] == 2

    await profiles_consumed_everything(migrated)
    live = migrated.schema("profiles")
    target = f"{live}_rebuild"
    try:
        output = await run_rebuild(migrated, target)
        assert "profiles: 2" in output and "organizer contacts: 4" in output and "interactions: 3" in output, output
        assert "API changes re-applied: 1" in output, output
        for name in TABLES:
            columns, rebuilt = table(migrated, target, name)
            assert (columns, rebuilt) == table(migrated, live, name), name
            assert rebuilt
    finally:
        with psycopg.connect(libpq_url(migrated.database_url), autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{target}" CASCADE')
