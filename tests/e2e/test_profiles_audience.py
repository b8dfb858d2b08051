"""Organizers use their audience, through the four services as processes: organizers A and B import overlapping
people, who then interact with both organizers' events. Each organizer sees only its own events in the interaction
history, segments and exports; the segment "tag vip AND attended A's event AND NOT unsubscribed" has exactly the
expected members and count; a cell that would run as a formula comes back neutralized; and A's unsubscribe through
the API is on contacts.organizer-contacts.v1 within seconds."""

from __future__ import annotations

import csv
import io
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from shared.auth import mint_token
from shared.codec import encode
from shared.envelope import Envelope
from shared.events import EventCheckedInV1, InteractionEvent, OrganizerContactChangedV1, TicketPurchasedV1
from shared.topics import INTERACTIONS, ORGANIZER_CONTACTS
from tests.support.isolation import Isolation
from tests.support.kafka import consume_until, publish
from tests.support.processes import ServiceProcess
from tests.support.waiting import wait_until

pytestmark = pytest.mark.e2e

T0 = datetime(2026, 6, 1, 18, tzinfo=UTC)
FORMULA = '=HYPERLINK("http://evil.example","click")'


def table(response: httpx.Response) -> list[dict[str, str]]:
    assert response.status_code == 200, response.text
    return list(csv.DictReader(io.StringIO(response.content.decode("utf-8-sig"))))


async def test_each_organizer_segments_and_exports_only_its_own_audience(
    running_services: dict[str, ServiceProcess], migrated: Isolation
) -> None:
    ingest, profiles = running_services["ingest"].base_url, running_services["profiles"].base_url

    def auth(organizer: str) -> dict[str, str]:
        token = mint_token(secret=migrated.auth_secret, organizer_id=organizer, ttl_seconds=600)
        return {"Authorization": f"Bearer {token}"}

    a, b = auth("org-a"), auth("org-b")
    async with httpx.AsyncClient(timeout=10) as client:

        async def imported(headers: dict[str, str], csv_text: str) -> None:
            files = {"file": ("people.csv", csv_text.encode(), "text/csv")}
            response = await client.post(f"{ingest}/v1/imports", params={"auto_start": "true"}, headers=headers,
                                         files=files)
            assert response.status_code == 202, response.text
            url = f"{ingest}/v1/imports/{response.json()['import_id']}"

            async def processed() -> bool:
                return bool((await client.get(url, headers=headers)).json()["status"] == "processed")

            await wait_until(processed, timeout=60, description="import processed")

        await imported(a, f'email,first_name\nann@example.com,"{FORMULA.replace(chr(34), chr(34) * 2)}"\n'
                          "bob@example.com,Bob\ncy@example.com,Cy\n")
        await imported(b, "email,first_name\nann@example.com,Annabel\nbob@example.com,Robert\n")

        interactions: list[InteractionEvent] = [
            EventCheckedInV1(organizer_id="org-a", email="ann@example.com", occurred_at=T0, kagibag_event_id="ev-a"),
            EventCheckedInV1(organizer_id="org-a", email="bob@example.com", occurred_at=T0, kagibag_event_id="ev-a"),
            TicketPurchasedV1(organizer_id="org-a", email="cy@example.com", occurred_at=T0, kagibag_event_id="ev-a",
                              order_id="o-cy", ticket_count=3),
            EventCheckedInV1(organizer_id="org-b", email="ann@example.com", occurred_at=T0 + timedelta(days=1),
                             kagibag_event_id="ev-b"),
        ]
        await publish(migrated.kafka_bootstrap, [
            encode(event, Envelope(id=str(uuid.uuid4()), type=event.TYPE, source="kagibag-platform/tests"),
                   topic=migrated.topic(INTERACTIONS), key=event.email)
            for event in interactions])

        async def contacts(headers: dict[str, str], expected: int) -> dict[str, dict[str, Any]] | None:
            items = (await client.get(f"{profiles}/v1/contacts", headers=headers)).json()["items"]
            active = [c for c in items if c["insights"]["last_active_at"] is not None]
            return {c["email"]: c for c in items} if len(active) == expected else None

        as_a = await wait_until(lambda: contacts(a, 3), timeout=60, description="A's contacts active")
        as_b = await wait_until(lambda: contacts(b, 1), timeout=60, description="B's contact active")
        ann_a, ann_b = as_a["ann@example.com"]["contact_id"], as_b["ann@example.com"]["contact_id"]
        assert ann_a == ann_b and as_a["ann@example.com"]["insights"]["attended_events"] == ["ev-a"]
        assert as_b["ann@example.com"]["insights"]["attended_events"] == ["ev-b"]

        # the interaction history: each organizer's own events only
        history_a = (await client.get(f"{profiles}/v1/contacts/{ann_a}/interactions", headers=a)).json()["items"]
        history_b = (await client.get(f"{profiles}/v1/contacts/{ann_a}/interactions", headers=b)).json()["items"]
        assert [(i["kind"], i["event_id"]) for i in history_a] == [("checked_in", "ev-a")]
        assert [(i["kind"], i["event_id"]) for i in history_b] == [("checked_in", "ev-b")]
        cy = as_a["cy@example.com"]["contact_id"]
        cy_history = (await client.get(f"{profiles}/v1/contacts/{cy}/interactions", headers=a)).json()["items"]
        assert [(i["kind"], i["order_id"], i["tickets"]) for i in cy_history] == [("ticketed", "o-cy", 3)]
        assert (await client.get(f"{profiles}/v1/contacts/{cy}/interactions", headers=b)).status_code == 404

        # both tag everyone vip; A unsubscribes bob
        for headers, people in ((a, as_a), (b, as_b)):
            for person in people.values():
                tagged = await client.patch(f"{profiles}/v1/contacts/{person['contact_id']}", headers=headers,
                                            json={"tags": {"add": ["vip"]}})
                assert tagged.status_code == 200, tagged.text
        bob = as_a["bob@example.com"]["contact_id"]
        unsubscribed_at = time.monotonic()
        unsubscribe = await client.patch(f"{profiles}/v1/contacts/{bob}", headers=a,
                                         json={"email_permission": "unsubscribed"})
        assert unsubscribe.status_code == 200, unsubscribe.text
        seen = await consume_until(
            migrated.kafka_bootstrap, migrated.topic(ORGANIZER_CONTACTS),
            lambda seen: any(isinstance(c.event, OrganizerContactChangedV1) and c.event.contact_id == bob
                             and c.event.email_permission.status == "unsubscribed" for c in seen),
            accepted=(OrganizerContactChangedV1,), timeout=10,
        )
        assert time.monotonic() - unsubscribed_at < 10
        states = [c.event for c in seen if isinstance(c.event, OrganizerContactChangedV1)]
        latest = [s for s in states if (s.organizer_id, s.contact_id) == ("org-a", bob)][-1]
        assert (latest.email, latest.email_permission.source, latest.tags) == ("bob@example.com", "api", ["vip"])
        assert all(s.email_permission.status != "unsubscribed" for s in states if s.organizer_id == "org-b")
        assert {c.record.key for c in seen} >= {f"org-a:{bob}".encode(), f"org-b:{bob}".encode()}

        vip = {"and": [{"tag": "vip"}, {"attended": "ev-a"}, {"not": {"permission": "unsubscribed"}}]}
        segments = {}
        for name, headers in (("a", a), ("b", b)):
            made = await client.post(f"{profiles}/v1/segments", headers=headers,
                                     json={"name": "VIP attendees", "filter": vip})
            assert made.status_code == 201, made.text
            segments[name] = made.json()["id"]
        members = (await client.get(f"{profiles}/v1/segments/{segments['a']}/contacts", headers=a)).json()
        assert [c["contact_id"] for c in members["items"]] == [ann_a]
        assert (await client.get(f"{profiles}/v1/segments/{segments['a']}/count", headers=a)).json() == {"count": 1}
        assert (await client.get(f"{profiles}/v1/segments/{segments['b']}/count", headers=b)).json() == {"count": 0}
        assert (await client.get(f"{profiles}/v1/segments/{segments['a']}", headers=b)).status_code == 404

        # exports: A's segment with A's private fields, neutralized; B's contacts without anything of A's
        exported = table(await client.get(f"{profiles}/v1/segments/{segments['a']}/export.csv", headers=a))
        assert [(r["contact_id"], r["tags"], r["attended_events"]) for r in exported] == [(ann_a, "vip", "ev-a")]
        assert exported[0]["first_name"] == "'" + FORMULA
        everyone_b = table(await client.get(f"{profiles}/v1/contacts/export.csv?tag=vip", headers=b))
        assert sorted(r["first_name"] for r in everyone_b) == ["Annabel", "Robert"]
        assert "ev-a" not in str(everyone_b) and FORMULA not in str(everyone_b)
