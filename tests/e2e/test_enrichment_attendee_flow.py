"""The attendee's side, with the four services as real processes on Tansu and PostgreSQL: an organizer imports a
CSV; enrichment suggests behind the import; the attendee, signed in with their own token, accepts a name, customizes
the company and completes their profile; identity makes those the canonical values (source kind ``attendee``),
profiles shows them to every organizer and publishes them downstream; later imports by organizers change none of
them; each kind of token is refused by the other kind's routes."""

from __future__ import annotations

from typing import Any

import httpx
import psycopg
import pytest

from ops.local_postgres import libpq_url
from shared.auth import mint_attendee_token, mint_token
from shared.events import ContactProfileUpdatedV1
from shared.topics import PROFILE_UPDATES
from tests.support.isolation import Isolation
from tests.support.kafka import consume_until
from tests.support.processes import ServiceProcess
from tests.support.waiting import wait_until

pytestmark = pytest.mark.e2e

ADA = "ada.lovelace@analytical.example"
FIRST_IMPORT = f"email,first_name,last_name,company,phone\n{ADA},,,,+44 20 7946 0958\nbob@gmail.com,,,,\n"
LATER_IMPORT = f"email,first_name,last_name,company\n{ADA},Augusta,King,Other Corp\n"


def organizer(isolation: Isolation, organizer_id: str) -> dict[str, str]:
    token = mint_token(secret=isolation.auth_secret, organizer_id=organizer_id, ttl_seconds=600)
    return {"Authorization": f"Bearer {token}"}


def attendee(isolation: Isolation, email: str) -> dict[str, str]:
    token = mint_attendee_token(secret=isolation.auth_secret, email=email, ttl_seconds=600)
    return {"Authorization": f"Bearer {token}"}


async def import_csv(client: httpx.AsyncClient, ingest: str, headers: dict[str, str], body: str) -> dict[str, Any]:
    response = await client.post(f"{ingest}/v1/imports?auto_start=true", headers=headers,
                                 files={"file": ("contacts.csv", body.encode(), "text/csv")})
    assert response.status_code == 202, response.text
    import_id = response.json()["import_id"]

    async def finished() -> dict[str, Any] | None:
        status = (await client.get(f"{ingest}/v1/imports/{import_id}", headers=headers)).json()
        return status if status["status"] in ("processed", "error") else None

    summary = await wait_until(finished, timeout=60, description=f"import {import_id}")
    assert summary["status"] == "processed", summary
    return summary


def enrichment_due(isolation: Isolation, email: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(libpq_url(isolation.database_url)) as conn:
        return conn.execute(f'SELECT due_at FROM "{isolation.schema("enrichment")}".contacts WHERE email = %s',
                            (email,)).fetchall()


async def test_the_attendee_reviews_enrichment_and_their_statements_win_over_every_import(
    running_services: dict[str, ServiceProcess], migrated: Isolation
) -> None:
    ingest, profiles = running_services["ingest"].base_url, running_services["profiles"].base_url
    enrichment = running_services["enrichment"].base_url
    org_a, org_b = organizer(migrated, "org-a"), organizer(migrated, "org-b")
    ada, bob = attendee(migrated, ADA), attendee(migrated, "bob@gmail.com")

    async with httpx.AsyncClient(timeout=10) as client:
        await import_csv(client, ingest, org_a, FIRST_IMPORT)

        async def three_suggestions() -> list[dict[str, Any]] | None:
            items: list[dict[str, Any]] = (await client.get(f"{enrichment}/v1/me/suggestions", headers=ada)).json()[
                "items"]
            return items if len(items) == 3 else None

        items = await wait_until(three_suggestions, timeout=60, description="Ada's suggestions")
        await wait_until(lambda: enrichment_due(migrated, "bob@gmail.com") == [(None,)], timeout=30,
                         description="Bob's provider run")
        bobs = (await client.get(f"{enrichment}/v1/me/suggestions", headers=bob)).json()["items"]
        by_field = {item["field"]: item for item in items}
        assert {(i["field"], i["current"], i["suggested"], i["source"]) for i in items} == {
            ("company", None, "Analytical", "email_domain"), ("first_name", None, "Ada", "email_name"),
            ("last_name", None, "Lovelace", "email_name"),
        }  # no phone suggestion: the phone is organizer A's, not Ada's own
        assert bobs == []  # free mail: no company

        for field in ("first_name", "last_name"):
            accepted = await client.post(f"{enrichment}/v1/me/suggestions/{by_field[field]['id']}/accept",
                                         headers=ada)
            assert accepted.status_code == 200, accepted.text
        customized = await client.post(f"{enrichment}/v1/me/suggestions/{by_field['company']['id']}/accept",
                                       headers=ada, json={"fields": {"company": "Analytical Engines"}})
        assert customized.json()["suggestion"]["status"] == "customized", customized.text
        edited = await client.patch(f"{enrichment}/v1/me/profile", headers=ada, json={"bio": "Poetical scientist."})
        assert edited.status_code == 202, edited.text

        async def adas_view(headers: dict[str, str]) -> dict[str, Any] | None:
            listed = (await client.get(f"{profiles}/v1/contacts", params={"email": ADA}, headers=headers)).json()
            if len(listed["items"]) != 1:
                return None
            detail: dict[str, Any] = (await client.get(f"{profiles}/v1/contacts/{listed['items'][0]['contact_id']}",
                                                       headers=headers)).json()
            return detail if detail["company"] == "Analytical Engines" and detail["bio"] else None

        view_a = await wait_until(lambda: adas_view(org_a), timeout=60, description="Ada's statements in profiles")
        contact_id = view_a["contact_id"]
        assert (view_a["first_name"], view_a["last_name"], view_a["display_name"]) == ("Ada", "Lovelace",
                                                                                      "Ada Lovelace")
        assert view_a["phone"] == "+44 20 7946 0958"  # organizer A's own import, in A's view only
        assert {name: view_a["field_sources"][name]["kind"] for name in ("first_name", "last_name", "company",
                                                                         "bio")} == dict.fromkeys(
            ("first_name", "last_name", "company", "bio"), "attendee")

        async def own_profile() -> dict[str, Any] | None:
            mine: dict[str, Any] = (await client.get(f"{enrichment}/v1/me/profile", headers=ada)).json()
            return mine if mine.get("company") == "Analytical Engines" and mine.get("bio") else None

        mine = await wait_until(own_profile, timeout=30, description="Ada's own profile in enrichment")
        assert (mine["first_name"], mine["last_name"], mine["phone"], mine["pending_suggestions"]) == (
            "Ada", "Lovelace", None, 0)
        assert mine["field_sources"]["company"]["kind"] == "attendee"

        # later imports by organizers: A's own values change only A's layer under Ada's statements; B never sees
        # A's phone
        await import_csv(client, ingest, org_a, LATER_IMPORT)
        await import_csv(client, ingest, org_b, LATER_IMPORT)
        # B's view exists once profiles applied B's import, which follows A's on Ada's partition of the log
        view_b = await wait_until(lambda: adas_view(org_b), timeout=60, description="B's view of Ada")
        view_a_later = await adas_view(org_a)
        assert view_a_later is not None
        for view in (view_a_later, view_b):
            assert (view["first_name"], view["last_name"], view["company"]) == ("Ada", "Lovelace",
                                                                                "Analytical Engines")
        assert view_b["phone"] is None
        after = (await client.get(f"{enrichment}/v1/me/suggestions", headers=ada)).json()["items"]
        assert after == []  # nothing decided is suggested again

        review = f"{enrichment}/v1/contacts/{contact_id}/enrichment-review"
        assert (await client.get(review, headers=org_b)).json() == {
            "contact_id": contact_id, "pending": 0, "reviewed": 3, "status": "reviewed"}
        stranger = await client.get(review, headers=organizer(migrated, "org-z"))
        assert (stranger.status_code, stranger.json()) == (404, {"detail": "contact not found"})

        # each kind of token only opens its own kind of route, on every service
        refused = {
            "ingest": await client.get(f"{ingest}/v1/imports", headers=ada),
            "profiles": await client.get(f"{profiles}/v1/contacts", headers=ada),
            "enrichment organizer route": await client.get(review, headers=ada),
            "enrichment attendee route": await client.get(f"{enrichment}/v1/me/profile", headers=org_a),
        }
        assert {name: (r.status_code, r.json()["detail"]) for name, r in refused.items()} == {
            "ingest": (403, "an attendee token cannot call organizer routes"),
            "profiles": (403, "an attendee token cannot call organizer routes"),
            "enrichment organizer route": (403, "an attendee token cannot call organizer routes"),
            "enrichment attendee route": (403, "an organizer token cannot call attendee routes"),
        }

    def snapshot_with_statements(seen: list[Any]) -> bool:
        return any(c.event and c.event.contact_id == contact_id and c.event.company == "Analytical Engines"
                   and c.event.bio for c in seen)

    snapshots = await consume_until(migrated.kafka_bootstrap, migrated.topic(PROFILE_UPDATES),
                                    snapshot_with_statements, accepted=(ContactProfileUpdatedV1,), timeout=30)
    adas = [c.event for c in snapshots if isinstance(c.event, ContactProfileUpdatedV1) and c.event.contact_id ==
            contact_id]
    last = max(adas, key=lambda snapshot: snapshot.profile_version)
    assert (last.first_name, last.last_name, last.company, last.phone, last.display_name) == (
        "Ada", "Lovelace", "Analytical Engines", None, "Ada Lovelace")
    assert {name: last.field_sources[name].kind for name in ("first_name", "company")} == {
        "first_name": "attendee", "company": "attendee"}
    assert all(snapshot.company in (None, "Analytical Engines") for snapshot in adas)  # never an import's
