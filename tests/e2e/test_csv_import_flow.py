"""The walking skeleton's user flow, with all four services as real processes on Tansu and PostgreSQL:
upload a CSV, watch the import finish, read the profiles, upload it again, and receive the snapshots."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from shared.auth import mint_token
from shared.events import ContactEvent, ContactProfileUpdatedV1, ImportRowReceivedV1
from shared.topics import CONTACT_EVENTS, IMPORT_ROWS, PROFILE_UPDATES
from tests.support.isolation import Isolation
from tests.support.kafka import consume_until
from tests.support.processes import ServiceProcess
from tests.support.waiting import wait_until

pytestmark = pytest.mark.e2e

FOUR_ROWS = (
    "email,first_name,last_name,company,title,phone\n"
    "ada@example.com,Ada,Lovelace,Analytical Engines,Countess,+44 20 0000 0001\n"
    "  GRACE@Example.com ,Grace,Hopper,US Navy,Rear Admiral,\n"
    "linus@example.com,,,,,\n"
    "grace@example.com,,,,Computer Scientist,\n"
)


def _auth(isolation: Isolation, organizer: str) -> dict[str, str]:
    token = mint_token(secret=isolation.auth_secret, organizer_id=organizer, ttl_seconds=600)
    return {"Authorization": f"Bearer {token}"}


async def _import(client: httpx.AsyncClient, base: str, headers: dict[str, str], body: str) -> dict[str, Any]:
    response = await client.post(
        f"{base}/v1/imports", headers=headers, files={"file": ("contacts.csv", body.encode(), "text/csv")}
    )
    assert response.status_code == 202, response.text
    assert response.json()["status"] == "uploaded"  # waits for its mapping to be checked
    import_id = response.json()["import_id"]
    mapping = (await client.get(f"{base}/v1/imports/{import_id}/mapping", headers=headers)).json()
    assert [c["field"] for c in mapping["columns"] if c["field"]][:1] == ["email"]
    started = await client.post(f"{base}/v1/imports/{import_id}/start", headers=headers)
    assert started.status_code == 202, started.text

    async def finished() -> dict[str, Any] | None:
        status = (await client.get(f"{base}/v1/imports/{import_id}", headers=headers)).json()
        return status if status["status"] in ("processed", "error") else None

    return await wait_until(finished, timeout=60, description=f"import {import_id} to finish")


async def test_a_csv_flows_through_every_service_into_profiles_and_downstream(
    running_services: dict[str, ServiceProcess], migrated: Isolation
) -> None:
    ingest = running_services["ingest"].base_url
    profiles = running_services["profiles"].base_url
    organizer = _auth(migrated, "organizer-e2e")

    async with httpx.AsyncClient(timeout=10) as client:
        first = await _import(client, ingest, organizer, FOUR_ROWS)
        assert (first["status"], first["total_rows"], first["processed_rows"]) == ("processed", 4, 4)
        assert (first["created"], first["matched"], first["errors"]) == (3, 1, 0)

        async def three_profiles_with_display_names() -> dict[str, Any] | None:
            found = {}
            for email in ("ada@example.com", "grace@example.com", "linus@example.com"):
                response = await client.get(f"{profiles}/v1/contacts", params={"email": email}, headers=organizer)
                items = response.json()["items"]
                if len(items) != 1 or not items[0]["display_name"]:
                    return None
                found[email] = items[0]
            return found

        found = await wait_until(three_profiles_with_display_names, timeout=30, description="three profiles")
        assert found["ada@example.com"]["display_name"] == "Ada Lovelace"
        assert found["grace@example.com"]["display_name"] == "Grace Hopper"
        assert found["grace@example.com"]["title"] == "Computer Scientist"  # the later row's new title
        assert found["grace@example.com"]["email_original"] == "GRACE@Example.com"
        assert found["linus@example.com"]["display_name"] == "linus"  # the email's local part

        second = await _import(client, ingest, organizer, FOUR_ROWS)
        assert (second["status"], second["created"], second["matched"], second["errors"]) == ("processed", 0, 4, 0)
        ids_after = {email: (await client.get(f"{profiles}/v1/contacts", params={"email": email},
                                              headers=organizer)).json()["items"]
                     for email in found}
        assert {email: [c["contact_id"] for c in items] for email, items in ids_after.items()} == {
            email: [contact["contact_id"]] for email, contact in found.items()
        }

        stranger = _auth(migrated, "someone-else")
        response = await client.get(f"{profiles}/v1/contacts", params={"email": "ada@example.com"}, headers=stranger)
        assert response.status_code == 200 and response.json()["items"] == []
        assert (await client.get(f"{ingest}/v1/imports/{first['import_id']}", headers=stranger)).status_code == 404
        assert (await client.get(f"{ingest}/v1/imports/{first['import_id']}")).status_code == 401

    contact_ids = {contact["contact_id"] for contact in found.values()}

    def profile_updates(consumed: list[Any]) -> list[tuple[Any, ContactProfileUpdatedV1]]:
        return [(c, c.event) for c in consumed if isinstance(c.event, ContactProfileUpdatedV1)]

    def every_contact_has_its_named_snapshot(consumed: list[Any]) -> bool:
        named = {event.contact_id for _, event in profile_updates(consumed) if event.display_name}
        return contact_ids <= named

    snapshots = await consume_until(
        migrated.kafka_bootstrap, migrated.topic(PROFILE_UPDATES), every_contact_has_its_named_snapshot,
        accepted=(ContactProfileUpdatedV1,), timeout=30,
    )
    updates = profile_updates(snapshots)
    assert len(updates) == len([s for s in snapshots if s.event])
    assert all(s.key == event.contact_id for s, event in updates)
    assert {s.envelope.type for s in snapshots if s.envelope} == {ContactProfileUpdatedV1.TYPE}
    for contact_id in contact_ids:
        versions = [event.profile_version for _, event in updates if event.contact_id == contact_id]
        assert versions == sorted(versions) and len(set(versions)) == len(versions)

    # one trace per import: the traceparent ingest gave the first import's rows is on the contact events and the
    # profile snapshots they caused
    def trace_id(consumed: Any) -> str | None:
        value = consumed.headers.get("traceparent")
        return value.decode().split("-")[1] if value else None

    rows = await consume_until(
        migrated.kafka_bootstrap, migrated.topic(IMPORT_ROWS),
        lambda consumed: sum(isinstance(c.event, ImportRowReceivedV1) for c in consumed) >= 8,
        accepted=(ImportRowReceivedV1,), timeout=30,
    )
    first_rows = [c for c in rows if isinstance(c.event, ImportRowReceivedV1)
                  and c.event.import_id == first["import_id"]]
    assert len(first_rows) == 4 and len({trace_id(c) for c in first_rows}) == 1
    upload_trace = trace_id(first_rows[0])
    assert upload_trace is not None and upload_trace != "0" * 32
    contact_events = await consume_until(
        migrated.kafka_bootstrap, migrated.topic(CONTACT_EVENTS),
        lambda consumed: contact_ids <= {getattr(c.event, "contact_id", None) for c in consumed}, timeout=30,
    )
    caused = [(c, c.event) for c in contact_events if isinstance(c.event, ContactEvent)
              and c.envelope is not None and c.envelope.correlation_id == first["import_id"]]
    assert {event.contact_id for _, event in caused} == contact_ids
    assert {trace_id(c) for c, _ in caused} == {upload_trace}
    first_snapshots = {s.event.contact_id: trace_id(s) for s in snapshots
                       if isinstance(s.event, ContactProfileUpdatedV1) and s.event.contact_id in contact_ids
                       and s.event.profile_version == min(e.profile_version for _, e in updates
                                                          if e.contact_id == s.event.contact_id)}
    assert first_snapshots == dict.fromkeys(contact_ids, upload_trace)

    # every line each service printed is one JSON object (uvicorn's and aiokafka's included)
    assert {name: process.non_json_lines() for name, process in running_services.items()} == {
        name: [] for name in running_services}
