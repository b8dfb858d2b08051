"""The issue's example as a new user meets it, through the four services as processes: organizer B imports a
person with a name, company and phone; organizer A imports the bare email (created, for A), then other values;
each sees only its own values. The person then buys a ticket for one of B's events giving their name: both see
that name, the profile-updates topic carries only what the person stated, the operations endpoints name nobody,
and ``contacts rebuild profiles`` reproduces every view row for row."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import psycopg
import pytest

from ops.local_postgres import libpq_url
from shared.auth import mint_token
from shared.codec import encode
from shared.envelope import Envelope
from shared.events import ContactProfileUpdatedV1, TicketPurchasedV1
from shared.topics import INTERACTIONS, PROFILE_UPDATES
from tests.e2e.test_profiles_rebuild import profiles_consumed_everything, run_rebuild
from tests.support.isolation import Isolation
from tests.support.kafka import consume_until, publish
from tests.support.processes import ServiceProcess
from tests.support.waiting import wait_until

pytestmark = pytest.mark.e2e

SHOWN = ("email", "email_original", "first_name", "last_name", "company", "title", "phone", "display_name")


def table(isolation: Isolation, schema: str, name: str, order: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(libpq_url(isolation.database_url)) as conn:
        return conn.execute(f'SELECT * FROM "{schema}".{name} ORDER BY {order}').fetchall()


async def test_each_organizer_sees_its_own_values_and_both_see_the_person_s_own(
    running_services: dict[str, ServiceProcess], migrated: Isolation
) -> None:
    ingest, profiles = running_services["ingest"].base_url, running_services["profiles"].base_url

    def auth(organizer: str) -> dict[str, str]:
        token = mint_token(secret=migrated.auth_secret, organizer_id=organizer, ttl_seconds=600)
        return {"Authorization": f"Bearer {token}"}

    async with httpx.AsyncClient(timeout=10) as client:

        async def imported(organizer: str, csv: str) -> dict[str, Any]:
            files = {"file": ("people.csv", csv.encode(), "text/csv")}
            response = await client.post(f"{ingest}/v1/imports", params={"auto_start": "true"},
                                         headers=auth(organizer), files=files)
            assert response.status_code == 202, response.text
            import_id = response.json()["import_id"]

            async def processed() -> dict[str, Any] | None:
                status = (await client.get(f"{ingest}/v1/imports/{import_id}", headers=auth(organizer))).json()
                return status if status["status"] == "processed" else None

            return await wait_until(processed, timeout=60, description=f"{organizer}'s import")

        async def view(organizer: str, **expected: Any) -> dict[str, Any]:
            async def shown() -> dict[str, Any] | None:
                found = (await client.get(f"{profiles}/v1/contacts", params={"email": "ann@example.com"},
                                          headers=auth(organizer))).json()["items"]
                return found[0] if found and all(found[0][k] == v for k, v in expected.items()) else None

            return await wait_until(shown, timeout=60, description=f"{organizer}'s view with {expected}")

        b_import = await imported("org-b", "email,first_name,last_name,company,phone\n"
                                           "Ann@Example.com,Annabel,Lee,Bcorp,+1 555 0100\n")
        assert (b_import["created"], b_import["matched"]) == (1, 0)
        as_b = await view("org-b", first_name="Annabel")

        a_import = await imported("org-a", "email\n ANN@example.com \n")
        assert (a_import["created"], a_import["matched"]) == (1, 0)  # new to org-a, whoever knew her before
        as_a = await view("org-a")
        assert {key: as_a[key] for key in SHOWN} == {
            "email": "ann@example.com", "email_original": "ANN@example.com", "first_name": None, "last_name": None,
            "company": None, "title": None, "phone": None, "display_name": "ann"}
        assert as_a["contact_id"] == as_b["contact_id"]  # one person, one contact
        detail = (await client.get(f"{profiles}/v1/contacts/{as_a['contact_id']}", headers=auth("org-a"))).json()
        assert set(detail["field_sources"]) == {"email"} and detail["field_sources"]["email"]["yours"] is True

        again = await imported("org-a", "email,company,title\nann@example.com,Acorp,CTO\n")
        assert (again["created"], again["matched"]) == (0, 1)  # already one of org-a's contacts
        as_a = await view("org-a", company="Acorp")
        as_b = await view("org-b")
        assert {key: as_a[key] for key in SHOWN} == {
            "email": "ann@example.com", "email_original": "ANN@example.com", "first_name": None, "last_name": None,
            "company": "Acorp", "title": "CTO", "phone": None, "display_name": "ann"}
        assert {key: as_b[key] for key in SHOWN} == {
            "email": "ann@example.com", "email_original": "Ann@Example.com", "first_name": "Annabel",
            "last_name": "Lee", "company": "Bcorp", "title": None, "phone": "+1 555 0100",
            "display_name": "Annabel Lee"}
        assert (as_a["view_version"], as_b["view_version"]) == (2, 1)

        # the person buys a ticket for one of org-b's events, writing their own name
        ticket = TicketPurchasedV1(organizer_id="org-b", email="ann@example.com", first_name="Ann",
                                   occurred_at=datetime(2026, 4, 7, 12, tzinfo=UTC), kagibag_event_id="ev-b",
                                   order_id="o-1", ticket_count=1)
        envelope = Envelope(id=str(uuid.uuid4()), type=ticket.TYPE, source="kagibag-platform/tickets")
        await publish(migrated.kafka_bootstrap, [
            encode(ticket, envelope, topic=migrated.topic(INTERACTIONS), key="ann@example.com")])
        as_a = await view("org-a", first_name="Ann")
        as_b = await view("org-b", first_name="Ann")
        assert (as_a["display_name"], as_a["company"], as_a["email_original"]) == ("Ann", "Acorp", "ann@example.com")
        assert (as_b["display_name"], as_b["company"], as_b["email_original"]) == ("Ann Lee", "Bcorp",
                                                                                   "ann@example.com")
        assert (as_a["view_version"], as_b["view_version"]) == (3, 2)
        assert as_a["insights"]["tickets_purchased"] == 0 and as_b["insights"]["tickets_purchased"] == 1

        # the operations endpoints (internal, no token) say nothing about any organizer or person
        for process in running_services.values():
            for path in ("/metrics", "/health/ready", "/health/live"):
                text = (await client.get(f"{process.base_url}{path}")).text.lower()
                assert not [word for word in ("org-a", "org-b", "ann@example", "bcorp", "acorp", as_a["contact_id"])
                            if word in text], (process.service, path, text)

    contact_id = as_a["contact_id"]
    seen = await consume_until(
        migrated.kafka_bootstrap, migrated.topic(PROFILE_UPDATES),
        lambda seen: any(c.event.first_name == "Ann" for c in seen if c.event),  # type: ignore[attr-defined]
        accepted=(ContactProfileUpdatedV1,),
    )
    published = [c.event for c in seen if isinstance(c.event, ContactProfileUpdatedV1)]
    assert [(s.contact_id, s.first_name, s.last_name, s.company, s.phone, s.title, s.display_name)
            for s in published] == [(contact_id, None, None, None, None, None, "ann"),
                                    (contact_id, "Ann", None, None, None, None, "Ann")]
    assert published[-1].email_original == "ann@example.com"

    await profiles_consumed_everything(migrated)
    live = migrated.schema("profiles")
    target = f"{live}_rebuild"
    try:
        output = await run_rebuild(migrated, target)
        assert "profiles: 1" in output and "organizer contacts: 2" in output, output
        for name, order in (("contact_profiles", "contact_id"), ("organizer_contacts", "organizer_id, contact_id")):
            assert table(migrated, target, name, order) == table(migrated, live, name, order), name
    finally:
        with psycopg.connect(libpq_url(migrated.database_url), autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{target}" CASCADE')
