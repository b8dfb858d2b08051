"""profiles' audience features through its subscriber (FastStream's in-memory test broker) and its HTTP routes
(in-process), against the real PostgreSQL: two organizers share contacts and each has interactions with its own
events. Each sees only its own interactions, newest first and paged; a segment evaluates over its own rows only
(AND / OR / NOT, attended, registered, tags, permission, imports), counts them, exports them as neutralized CSV; and
the organizer contacts topic gets each contact's state when it becomes the organizer's and when an import or a PATCH
changes it (never the notes)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest
from fastapi import FastAPI
from faststream.kafka import KafkaBroker

from ops.local_postgres import libpq_url
from services.profiles.api import contacts_router
from services.profiles.handlers import register
from services.profiles.history import history_router
from services.profiles.organizer_feed import Feed
from services.profiles.segments_api import segments_router
from services.profiles.service import ProfilesTopics
from shared.auth import mint_token
from shared.consumer import Delivery
from shared.csv_cells import neutralized
from shared.db import create_engine
from shared.events import (
    ContactCreatedV1,
    ContactEvent,
    ContactMatchedV1,
    ContactSource,
    InteractionKind,
    InteractionRecordedV1,
    OrganizerContactChangedV1,
)
from shared.lifecycle import relay_channel
from shared.outbox_batches import unpack
from tests.support.enrichment import as_identity
from tests.support.isolation import Isolation
from tests.support.memory_broker import MemoryLog, deliver, in_memory

pytestmark = pytest.mark.integration

T0 = datetime(2026, 5, 1, tzinfo=UTC)


@dataclass
class Profiles:
    isolation: Isolation
    broker: KafkaBroker
    api: httpx.AsyncClient
    topics: ProfilesTopics
    log: MemoryLog

    def auth(self, organizer: str) -> dict[str, str]:
        token = mint_token(secret=self.isolation.auth_secret, organizer_id=organizer, ttl_seconds=600)
        return {"Authorization": f"Bearer {token}"}

    async def apply(self, events: list[ContactEvent]) -> None:
        await deliver(self.broker, self.log.append([as_identity(self.isolation, e) for e in events]))

    def rows(self, sql: str) -> list[tuple[Any, ...]]:
        with psycopg.connect(libpq_url(self.isolation.database_url)) as conn:
            conn.execute(f'SET search_path TO "{self.isolation.schema("profiles")}"')
            return conn.execute(sql).fetchall()

    def published(self) -> list[OrganizerContactChangedV1]:
        """The organizer contact states staged in the outbox so far, in order."""
        return [OrganizerContactChangedV1.model_validate_json(m.value)
                for (packed,) in self.rows("SELECT messages FROM outbox_batches ORDER BY position")
                for m in unpack(packed) if m.topic == self.topics.organizer_contacts]


@pytest.fixture
async def profiles(isolation: Isolation) -> AsyncIterator[Profiles]:
    isolation.migrate(("profiles",))
    schema = isolation.schema("profiles")
    engine = create_engine(isolation.database_url, schema=schema)
    topics = ProfilesTopics.qualified(isolation.topic_prefix)
    delivery = Delivery(service="profiles", group=isolation.consumer_group("profiles"),
                        bootstrap_servers=isolation.kafka_bootstrap, channel=relay_channel(schema))
    broker = KafkaBroker(isolation.kafka_bootstrap)
    register(broker, engine=engine, topics=topics, delivery=delivery, batch_size=5000)
    app = FastAPI()
    app.state.auth_secret = isolation.auth_secret
    app.include_router(segments_router(engine))
    app.include_router(contacts_router(engine, feed=Feed(topic=topics.organizer_contacts, channel=delivery.channel)))
    app.include_router(history_router(engine))
    try:
        async with in_memory(broker) as started, httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://profiles"
        ) as api:
            yield Profiles(isolation, started, api, topics, MemoryLog(partitions=2))
    finally:
        await engine.dispose()


def imported(organizer: str, import_id: str, permission: str | None = None) -> ContactSource:
    return ContactSource(kind="import", organizer_id=organizer, import_id=import_id, row_number=1,
                         email_permission=permission)  # type: ignore[arg-type]


def created(contact: str, source: ContactSource, **fields: str) -> ContactCreatedV1:
    return ContactCreatedV1(contact_id=contact, version=1, occurred_at=T0, source=source,
                            email=f"{contact}@example.com", email_original=f"{contact}@example.com",
                            fields=fields)  # type: ignore[arg-type]


def matched(contact: str, version: int, source: ContactSource) -> ContactMatchedV1:
    return ContactMatchedV1(contact_id=contact, version=version, occurred_at=T0 + timedelta(minutes=version),
                            source=source)


def interaction(contact: str, version: int, organizer: str, kind: InteractionKind, event: str, *, hours: int,
                order: str | None = None, tickets: int | None = None) -> InteractionRecordedV1:
    interaction_id = f"{contact}-{version}"
    return InteractionRecordedV1(
        contact_id=contact, version=version, occurred_at=T0 + timedelta(hours=hours),
        source=ContactSource(kind="interaction", organizer_id=organizer, interaction_id=interaction_id),
        kind=kind, interaction_id=interaction_id, kagibag_event_id=event, order_id=order, ticket_count=tickets,
    )


async def two_organizers(profiles: Profiles) -> None:
    """ann, bob, cy are A's (bob unsubscribed by A's import); ann and bob are also B's. ann bought tickets for and
    attended A's event ev-a1, then attended ev-a2; she attended B's ev-b; bob attended ev-a1; cy is on ev-a1's
    waitlist."""
    a, b = imported("org-a", "imp-a"), imported("org-b", "imp-b")
    await profiles.apply([
        created("ann", a, first_name="=HYPERLINK(\"http://x\")"),
        created("bob", imported("org-a", "imp-a", "unsubscribed"), first_name="@bob", last_name="-1\tx"),
        created("cy", a, first_name='Cy, "the\r\nGreat"'),
    ])
    await profiles.apply([
        matched("ann", 2, b), matched("bob", 2, b),
        interaction("ann", 3, "org-a", "ticket_purchased", "ev-a1", hours=1, order="o-1", tickets=2),
        interaction("ann", 4, "org-a", "event_checked_in", "ev-a1", hours=2),
        interaction("ann", 5, "org-b", "event_checked_in", "ev-b", hours=3),
        interaction("ann", 6, "org-a", "event_checked_in", "ev-a2", hours=4),
        interaction("bob", 3, "org-a", "event_checked_in", "ev-a1", hours=2),
        interaction("cy", 2, "org-a", "waitlist_registered", "ev-a1", hours=1),
    ])


async def test_each_organizer_sees_only_its_own_interactions_newest_first(profiles: Profiles) -> None:
    await two_organizers(profiles)
    api, a, b = profiles.api, profiles.auth("org-a"), profiles.auth("org-b")

    first = (await api.get("/v1/contacts/ann/interactions?limit=2", headers=a)).json()
    rest = (await api.get(f"/v1/contacts/ann/interactions?cursor={first['next_cursor']}", headers=a)).json()
    seen = [(i["kind"], i["event_id"], i["order_id"], i["tickets"]) for i in first["items"] + rest["items"]]
    assert seen == [("checked_in", "ev-a2", None, None), ("checked_in", "ev-a1", None, None),
                    ("ticketed", "ev-a1", "o-1", 2)]
    assert rest["next_cursor"] is None
    only_b = (await api.get("/v1/contacts/ann/interactions", headers=b)).json()["items"]
    assert [(i["kind"], i["event_id"]) for i in only_b] == [("checked_in", "ev-b")]
    assert (await api.get("/v1/contacts/cy/interactions", headers=b)).status_code == 404
    bad = await api.get("/v1/contacts/ann/interactions?cursor=nope", headers=a)
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["query", "cursor"]

    insights = (await api.get("/v1/contacts/ann", headers=a)).json()["insights"]
    assert (insights["events_attended"], insights["attended_events"]) == (2, ["ev-a2", "ev-a1"])
    assert (await api.get("/v1/contacts/ann", headers=b)).json()["insights"]["attended_events"] == ["ev-b"]


async def test_a_segment_is_evaluated_over_the_organizers_own_rows_counted_and_exported(profiles: Profiles) -> None:
    await two_organizers(profiles)
    api, a, b = profiles.api, profiles.auth("org-a"), profiles.auth("org-b")
    for contact, organizer in (("ann", a), ("bob", a), ("cy", a), ("ann", b), ("bob", b)):
        tagged = await api.patch(f"/v1/contacts/{contact}", json={"tags": {"add": ["VIP"]}}, headers=organizer)
        assert tagged.status_code == 200

    vip = {"and": [{"tag": "vip"}, {"attended": "ev-a1"}, {"not": {"permission": "unsubscribed"}}]}
    created = await api.post("/v1/segments", json={"name": "VIP attendees", "filter": vip}, headers=a)
    assert created.status_code == 201, created.text
    segment = created.json()
    members = (await api.get(f"/v1/segments/{segment['id']}/contacts", headers=a)).json()
    assert [c["contact_id"] for c in members["items"]] == ["ann"]
    assert (await api.get(f"/v1/segments/{segment['id']}/count", headers=a)).json() == {"count": 1}
    assert (await api.get(f"/v1/segments/{segment['id']}", headers=b)).status_code == 404

    async def count(organizer: dict[str, str], filter: dict[str, Any]) -> int:
        made = (await api.post("/v1/segments", json={"name": "s", "filter": filter}, headers=organizer)).json()
        return int((await api.get(f"/v1/segments/{made['id']}/count", headers=organizer)).json()["count"])

    assert await count(a, {"or": [{"registered": "ev-a1"}, {"attended_at_least": 2}]}) == 3
    assert await count(b, {"registered": "ev-a1"}) == 0  # A's interactions are not B's
    assert await count(b, {"attended": "ev-b"}) == 1
    assert await count(a, {"not": {"company": "Acme"}}) == 3  # no company is "not Acme"
    assert await count(b, {"import_id": "imp-b"}) == 2
    assert await count(a, {"last_active": {"from": "2026-05-01T03:30:00Z"}}) == 1

    renamed = await api.patch(f"/v1/segments/{segment['id']}", json={"filter": {"tag": "vip"}}, headers=a)
    assert renamed.json()["filter"] == {"tag": "vip"}
    assert (await api.get(f"/v1/segments/{segment['id']}/count", headers=a)).json() == {"count": 3}

    invalid = await api.post("/v1/segments", json={"name": "x", "filter": {"and": [{"tag": "vip"}, {"atended": 1}]}},
                             headers=a)
    assert invalid.status_code == 422
    assert invalid.json()["detail"][0]["loc"] == ["body", "filter", "and", 1, "atended"]

    exported = await api.get(f"/v1/segments/{segment['id']}/export.csv", headers=a)
    table = list(csv.DictReader(io.StringIO(exported.content.decode("utf-8-sig"))))
    assert [row["contact_id"] for row in table] == ["ann", "bob", "cy"]
    assert table[0]["first_name"] == "'=HYPERLINK(\"http://x\")"
    assert table[1]["email_permission"] == "unsubscribed"
    listed = (await api.get(f"/v1/segments/{segment['id']}/contacts", headers=a)).json()["items"]
    for row, contact in zip(table, listed, strict=True):  # PostgreSQL formats the cells as csv_cells says
        assert {name: row[name] for name in ("first_name", "last_name", "email", "tags", "updated_at")} == {
            "first_name": neutralized(contact["first_name"] or ""),
            "last_name": neutralized(contact["last_name"] or ""),
            "email": contact["email"], "tags": "; ".join(contact["relationship"]["tags"]),
            "updated_at": datetime.fromisoformat(contact["updated_at"].replace("Z", "+00:00")).isoformat()}
    by_filter = await api.get("/v1/contacts/export.csv?permission=unsubscribed", headers=b)
    assert [row["contact_id"] for row in csv.DictReader(io.StringIO(by_filter.content.decode("utf-8-sig")))] == []

    assert (await api.delete(f"/v1/segments/{segment['id']}", headers=b)).status_code == 404
    assert (await api.delete(f"/v1/segments/{segment['id']}", headers=a)).status_code == 204
    assert (await api.get(f"/v1/segments/{segment['id']}", headers=a)).status_code == 404


async def test_the_organizer_contacts_topic_gets_each_change_of_the_shared_state(profiles: Profiles) -> None:
    await two_organizers(profiles)
    api, a = profiles.api, profiles.auth("org-a")
    appeared = {(m.organizer_id, m.contact_id): m for m in profiles.published()}
    assert set(appeared) == {("org-a", "ann"), ("org-a", "bob"), ("org-a", "cy"), ("org-b", "ann"),
                             ("org-b", "bob")}
    assert appeared[("org-a", "bob")].email_permission.status == "unsubscribed"
    assert appeared[("org-a", "bob")].email_permission.source == "import"
    assert appeared[("org-b", "bob")].email_permission.status == "unknown"
    before = len(profiles.published())

    await api.patch("/v1/contacts/ann", json={"notes": "secret"}, headers=a)
    assert len(profiles.published()) == before  # notes are not on the topic
    await api.patch("/v1/contacts/ann", json={"email_permission": "unsubscribed", "tags": {"add": ["vip"]}},
                    headers=a)
    latest = profiles.published()[-1]
    assert (latest.organizer_id, latest.contact_id, latest.email, latest.tags) == (
        "org-a", "ann", "ann@example.com", ["vip"])
    assert (latest.email_permission.status, latest.email_permission.source) == ("unsubscribed", "api")
    assert "secret" not in json.dumps([m.model_dump(mode="json") for m in profiles.published()])

    await profiles.apply([matched("cy", 3, imported("org-a", "imp-3", "unsubscribed"))])  # a later consent column
    latest = profiles.published()[-1]
    assert (latest.contact_id, latest.email_permission.status, latest.email_permission.source) == (
        "cy", "unsubscribed", "import")
    published = len(profiles.published())
    await profiles.apply([matched("cy", 4, imported("org-a", "imp-4"))])  # says nothing new: nothing published
    assert len(profiles.published()) == published
