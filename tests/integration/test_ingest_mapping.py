"""The mapping step through the running ingest service (real broker, real PostgreSQL): proposals for aliases and
decoys, confirming a mapping and its refusals, starting, the mapped fields on the row events, a HubSpot
all-properties export with record ids and email permissions, row validation codes, and organizer isolation."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from services.ingest.reading.checks import MAX_FIELD_LENGTH
from shared.events import ImportRowReceivedV1
from tests.support.ingest_app import Ingest, ingest_settings, organizer, running_ingest
from tests.support.isolation import Isolation

pytestmark = pytest.mark.integration

HUBSPOT_EXPORT = Path(__file__).parent.parent / "fixtures" / "hubspot-crm-exports-all-contacts-2026-11-23.csv"

DECOYS = (
    "Work email,Email Domain,Private e-mail address,Email,Given name,Surname,Organisation,Company size,"
    "Company domain name,Job title,Mobile,Phone type\n"
    "jd@work.example,acme.example,jane@home.example,jane@acme.example,Jane,Doe,Acme,51-200,acme.example,CTO,"
    "+1 555 0101,mobile\n"
    "bo@work.example,smith.example,bob@home.example,bob@smith.example,Bob,Smith,Smith & Co,1-10,smith.example,"
    "Owner,+1 555 0102,landline\n"
)


@pytest.fixture(scope="module")
def mapping_isolation(database_url: str, kafka_bootstrap: str) -> Any:
    isolated = Isolation(database_url=database_url, kafka_bootstrap=kafka_bootstrap)
    isolated.migrate(("ingest",))
    yield isolated
    isolated.drop_schemas()


@pytest.fixture(scope="module")
async def ingest(mapping_isolation: Isolation, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Ingest]:
    settings = ingest_settings(mapping_isolation, tmp_path_factory.mktemp("uploads"))
    async with running_ingest(settings, mapping_isolation) as running:
        yield running


async def get_mapping(ingest: Ingest, org: str, import_id: str) -> dict[str, Any]:
    response = await ingest.client.get(f"/v1/imports/{import_id}/mapping", headers=ingest.auth(org))
    assert response.status_code == 200, response.text
    return dict(response.json())


async def put_mapping(ingest: Ingest, org: str, import_id: str, columns: list[dict[str, Any]]) -> Any:
    return await ingest.client.put(
        f"/v1/imports/{import_id}/mapping", headers=ingest.auth(org), json={"columns": columns}
    )


async def start(ingest: Ingest, org: str, import_id: str) -> Any:
    return await ingest.client.post(f"/v1/imports/{import_id}/start", headers=ingest.auth(org))


def by_header(mapping: dict[str, Any]) -> dict[str, tuple[str | None, str | None]]:
    return {c["header"]: (c["field"], c["reason"]) for c in mapping["columns"]}


def received(rows: list[Any]) -> list[ImportRowReceivedV1]:
    events = [row.event for row in rows]
    assert all(isinstance(event, ImportRowReceivedV1) for event in events)
    return events  # type: ignore[return-value]


# --- proposals ----------------------------------------------------------------------------------------------


async def test_an_upload_waits_with_a_proposal_that_sees_through_the_decoys(ingest: Ingest) -> None:
    org = organizer()
    import_id = await ingest.upload(org, DECOYS, auto_start=False, expect="uploaded")

    mapping = await get_mapping(ingest, org, import_id)

    assert by_header(mapping) == {
        "Work email": (None, None),
        "Email Domain": (None, None),
        "Private e-mail address": (None, None),
        "Email": ("email", "exact_name"),
        "Given name": ("first_name", "known_alias"),
        "Surname": ("last_name", "known_alias"),
        "Organisation": ("company", "known_alias"),
        "Company size": (None, None),
        "Company domain name": (None, None),
        "Job title": ("title", "known_alias"),
        "Mobile": ("phone", "known_alias"),
        "Phone type": (None, None),
    }
    email = next(c for c in mapping["columns"] if c["header"] == "Email")
    assert (email["index"], email["confidence"]) == (3, 1.0)
    assert email["samples"] == ["jane@acme.example", "bob@smith.example"]
    assert (mapping["status"], mapping["hubspot"], mapping["delimiter"], mapping["confirmed"]) == (
        "uploaded", False, ",", None
    )
    assert "external_id" in mapping["fields"]
    current = await ingest.get(org, import_id)
    assert (current["status"], current["started_at"], current["total_rows"]) == ("uploaded", None, None)


async def test_a_windows_semicolon_file_shows_its_encoding_and_delimiter(ingest: Ingest) -> None:
    org = organizer()
    content = "Vorname;Nachname;E-Mail;Firma\nJürgen;Müller;jm@example.com;Bäckerei Müller\n".encode("cp1252")
    import_id = await ingest.upload(org, content, auto_start=False, expect="uploaded")

    mapping = await get_mapping(ingest, org, import_id)

    assert (mapping["encoding"], mapping["delimiter"]) == ("cp1252", ";")
    assert by_header(mapping) == {
        "Vorname": ("first_name", "known_alias"), "Nachname": ("last_name", "known_alias"),
        "E-Mail": ("email", "known_alias"), "Firma": ("company", "known_alias"),
    }
    assert mapping["columns"][0]["samples"] == ["Jürgen"]


# --- confirming and starting --------------------------------------------------------------------------------


async def test_a_mapping_that_cannot_be_used_is_refused_with_the_reason(ingest: Ingest) -> None:
    org = organizer()
    import_id = await ingest.upload(org, DECOYS, auto_start=False, expect="uploaded")

    no_email = await put_mapping(ingest, org, import_id, [{"index": 4, "field": "first_name"}])
    email = {"index": 3, "field": "email"}
    twice = await put_mapping(ingest, org, import_id, [email, {"index": 0, "field": "email"}])
    no_column = await put_mapping(ingest, org, import_id, [email, {"index": 12, "field": "phone"}])
    no_field = await put_mapping(ingest, org, import_id, [email, {"index": 1, "field": "domain"}])
    malformed = await ingest.client.put(
        f"/v1/imports/{import_id}/mapping", headers=ingest.auth(org), json={"columns": {"0": "email"}}
    )

    assert [r.status_code for r in (no_email, twice, no_column, no_field, malformed)] == [422] * 5
    assert no_email.json()["detail"] == "no column is mapped to 'email': map the column holding the email addresses"
    assert twice.json()["detail"] == (
        "the field 'email' is mapped twice: column 3 ('Email') and column 0 ('Work email'); map it to one column only"
    )
    assert no_column.json()["detail"] == "there is no column 12: the file has columns 0 to 11"
    assert no_field.json()["detail"].startswith("unknown field 'domain' for column 1: use one of email, first_name")
    assert (await get_mapping(ingest, org, import_id))["confirmed"] is None


async def test_the_confirmed_mapping_is_what_the_rows_carry(ingest: Ingest) -> None:
    org = organizer()
    import_id = await ingest.upload(org, DECOYS, auto_start=False, expect="uploaded")
    choice: list[dict[str, Any]] = [
        {"index": 0, "field": "email"}, {"index": 4, "field": "first_name"}, {"index": 5, "field": "last_name"},
        {"index": 6, "field": "company"}, {"index": 10, "field": "phone"}, {"index": 9, "field": None},
    ]

    confirmed = await put_mapping(ingest, org, import_id, choice)

    assert confirmed.status_code == 200, confirmed.text
    assert confirmed.json()["confirmed"] == sorted(
        [c for c in choice if c["field"] is not None], key=lambda c: c["index"]
    )
    assert (await get_mapping(ingest, org, import_id))["confirmed"] == confirmed.json()["confirmed"]
    started = await start(ingest, org, import_id)
    assert started.status_code == 202, started.text
    assert started.json() == {"import_id": import_id, "status": "parsing"}

    events = received(await ingest.published_rows(import_id, 2))
    assert [(e.email, e.first_name, e.last_name, e.company, e.title, e.phone) for e in events] == [
        ("jd@work.example", "Jane", "Doe", "Acme", None, "+1 555 0101"),
        ("bo@work.example", "Bob", "Smith", "Smith & Co", None, "+1 555 0102"),
    ]
    assert (await ingest.get(org, import_id))["started_at"] is not None
    again = await start(ingest, org, import_id)
    late_put = await put_mapping(ingest, org, import_id, choice)
    assert (again.status_code, late_put.status_code) == (409, 409)
    assert "only an uploaded import, not yet started" in again.json()["detail"]


async def test_starting_without_a_confirmed_mapping_uses_the_proposal_and_finishes(ingest: Ingest) -> None:
    org = organizer()
    import_id = await ingest.upload(org, DECOYS, auto_start=False, expect="uploaded")

    assert (await start(ingest, org, import_id)).status_code == 202

    rows = await ingest.published_rows(import_id, 2)
    events = received(rows)
    assert [(e.email, e.first_name, e.last_name, e.company, e.title, e.phone, e.external_id) for e in events] == [
        ("jane@acme.example", "Jane", "Doe", "Acme", "CTO", "+1 555 0101", None),
        ("bob@smith.example", "Bob", "Smith", "Smith & Co", "Owner", "+1 555 0102", None),
    ]
    await ingest.answer(ingest.outcomes(ingest.processed(rows[0], "created"), ingest.processed(rows[1], "created")))
    done = await ingest.wait_for(org, import_id, "processed", "error")
    assert (done["status"], done["created"], done["source"]) == ("processed", 2, "csv")
    mapping = await get_mapping(ingest, org, import_id)
    assert {c["field"] for c in mapping["confirmed"]} == {"email", "first_name", "last_name", "company", "title",
                                                         "phone"}


async def test_a_file_without_an_email_column_cannot_start_until_one_is_mapped(ingest: Ingest) -> None:
    org = organizer()
    import_id = await ingest.upload(org, "Name,Contact\nJane,jane@example.com\n", auto_start=False, expect="uploaded")

    refused = await start(ingest, org, import_id)

    assert refused.status_code == 422
    assert refused.json()["detail"] == (
        "no column looks like an email address; columns found: 'Name', 'Contact'; "
        f"map it with PUT /v1/imports/{import_id}/mapping"
    )
    assert (await put_mapping(ingest, org, import_id, [{"index": 1, "field": "email"}])).status_code == 200
    assert (await start(ingest, org, import_id)).status_code == 202
    (row,) = received(await ingest.published_rows(import_id, 1))
    assert (row.email, row.first_name) == ("jane@example.com", None)


async def test_a_mapping_sent_with_the_upload_starts_it_at_once(ingest: Ingest) -> None:
    org = organizer()
    mapping = json.dumps({"columns": [{"index": 2, "field": "email"}, {"index": 1, "field": "last_name"}]})

    response = await ingest.client.post(
        "/v1/imports", headers=ingest.auth(org),
        files={"file": ("a.csv", DECOYS, "text/csv")}, data={"mapping": mapping},
    )

    assert response.status_code == 202, response.text
    assert response.json()["status"] == "parsing"
    events = received(await ingest.published_rows(response.json()["import_id"], 2))
    assert [(e.email, e.last_name, e.first_name) for e in events] == [
        ("jane@home.example", "acme.example", None), ("bob@home.example", "smith.example", None)
    ]


async def test_an_unusable_mapping_sent_with_the_upload_is_refused_and_nothing_is_kept(ingest: Ingest) -> None:
    org = organizer()

    twice = await ingest.client.post(
        "/v1/imports", headers=ingest.auth(org), files={"file": ("a.csv", DECOYS, "text/csv")},
        data={"mapping": json.dumps({"columns": [{"index": 0, "field": "email"}, {"index": 3, "field": "email"}]})},
    )
    garbage = await ingest.client.post(
        "/v1/imports", headers=ingest.auth(org), files={"file": ("a.csv", DECOYS, "text/csv")},
        data={"mapping": "email=3"},
    )

    assert (twice.status_code, garbage.status_code) == (422, 422)
    assert "mapped twice" in twice.json()["detail"]
    assert "must be JSON" in garbage.json()["detail"]
    assert (await ingest.client.get("/v1/imports", headers=ingest.auth(org))).json()["items"] == []


# --- HubSpot ------------------------------------------------------------------------------------------------


async def test_a_hubspot_all_properties_export_is_mapped_and_carries_record_ids_and_permissions(
    ingest: Ingest,
) -> None:
    org = organizer()
    import_id = await ingest.upload(
        org, HUBSPOT_EXPORT.read_bytes(), filename=HUBSPOT_EXPORT.name, auto_start=False, expect="uploaded"
    )

    mapping = await get_mapping(ingest, org, import_id)
    assert mapping["hubspot"] is True
    assert len(mapping["columns"]) >= 150
    assert {h: f for h, (f, reason) in by_header(mapping).items() if f} == {
        "Record ID": "external_id", "First Name": "first_name", "Last Name": "last_name", "Email": "email",
        "Phone Number": "phone", "Company Name": "company", "Job Title": "title",
        "Marketing contact status": "marketing_contact_status",
        "Unsubscribed from all email": "unsubscribed_from_all_email",
    }
    assert {reason for field, reason in by_header(mapping).values() if field} == {"hubspot_profile"}
    assert (await ingest.get(org, import_id))["source"] == "hubspot"

    assert (await start(ingest, org, import_id)).status_code == 202
    rows = await ingest.published_rows(import_id, 6)
    events = received(rows)
    assert [(e.external_id, e.email, e.email_permission) for e in events] == [
        ("51", "jane.doe@acme.example", "subscribed"),
        ("52", "jm@beispiel.example", "unknown"),
        ("53", "amelie@exemple.example", "unsubscribed"),
        ("54", "bob@smith.example", None),
        ("55", "wei.chen@example.org", "unsubscribed"),
        ("56", "no-name@example.net", None),
    ]
    assert [(e.first_name, e.last_name, e.company, e.title, e.phone) for e in events[:2]] == [
        ("Jane", "Doe", "Acme Corp", "CTO", "+1 617 555 0101"),
        ("Jürgen", "Müller", "Beispiel GmbH", "Einkauf", None),
    ]
    await ingest.answer(ingest.outcomes(*(ingest.processed(row, "created") for row in rows)))
    done = await ingest.wait_for(org, import_id, "processed", "error")
    assert (done["status"], done["total_rows"], done["created"], done["errors"]) == ("processed", 6, 6, 0)


# --- row validation -----------------------------------------------------------------------------------------


async def test_bad_rows_are_refused_with_their_code_while_the_good_rows_go_through(ingest: Ingest) -> None:
    org = organizer()
    long_name = "x" * (MAX_FIELD_LENGTH + 1)
    content = (
        "Email,First name,Company\n"
        "good@example.com,Good,Acme\n"
        ",Nobody,Acme\n"
        "not-an-email,Broken,Acme\n"
        f"long@example.com,{long_name},Acme\n"
        "short@example.com,Short\n"
        "jane..doe@example.com,Dots,Acme\n"
        "also.good@example.com,Also,\n"
    )
    import_id = await ingest.upload(org, content)

    read = await ingest.wait_for(org, import_id, "processing")
    assert (read["total_rows"], read["errors"]) == (7, 5)
    refused = await ingest.rows(org, import_id, outcome="error")
    assert [(r["row_number"], r["error_code"]) for r in refused] == [
        (2, "MISSING_EMAIL"), (3, "INVALID_EMAIL"), (4, "VALUE_TOO_LONG"), (5, "COLUMN_COUNT_MISMATCH"),
        (6, "INVALID_EMAIL"),
    ]
    assert refused[1]["error_message"].startswith("'not-an-email' is not a valid email address: ")
    assert refused[2]["error_message"] == f"first_name is {MAX_FIELD_LENGTH + 1} characters long; the limit is 255"
    assert refused[2]["cells"] == ["long@example.com", long_name, "Acme"]
    assert refused[3]["cells"] == ["short@example.com", "Short"]

    rows = await ingest.published_rows(import_id, 2)
    assert [(e.row_number, e.email) for e in received(rows)] == [(1, "good@example.com"), (7, "also.good@example.com")]
    await ingest.answer(ingest.outcomes(ingest.processed(rows[0], "created"), ingest.processed(rows[1], "created")))
    done = await ingest.wait_for(org, import_id, "processed", "error")
    assert (done["status"], done["processed_rows"], done["created"], done["errors"]) == ("error", 7, 2, 5)


# --- isolation ----------------------------------------------------------------------------------------------


async def test_another_organizer_cannot_see_map_or_start_an_import(ingest: Ingest) -> None:
    owner, stranger = organizer(), organizer()
    import_id = await ingest.upload(owner, DECOYS, auto_start=False, expect="uploaded")
    headers = ingest.auth(stranger)

    responses = [
        await ingest.client.get(f"/v1/imports/{import_id}/mapping", headers=headers),
        await ingest.client.put(f"/v1/imports/{import_id}/mapping", headers=headers,
                                json={"columns": [{"index": 3, "field": "email"}]}),
        await ingest.client.post(f"/v1/imports/{import_id}/start", headers=headers),
        await ingest.client.get(f"/v1/imports/{import_id}/rows", headers=headers),
        await ingest.client.get(f"/v1/imports/{import_id}", headers=headers),
        await ingest.client.get(f"/v1/imports/{uuid.uuid4()}/mapping", headers=ingest.auth(owner)),
        await ingest.client.post("/v1/imports/not-an-id/start", headers=ingest.auth(owner)),
    ]

    assert [r.status_code for r in responses] == [404] * 7
    current = await ingest.get(owner, import_id)
    assert (current["status"], current["started_at"]) == ("uploaded", None)
    assert (await get_mapping(ingest, owner, import_id))["confirmed"] is None
