"""ingest against the real broker and PostgreSQL, run in-process behind its HTTP API; the tests play identity:
they read the row events ingest publishes and answer with row outcomes, one message per import as identity
groups them."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from ops.local_postgres import libpq_url
from services.ingest import row_pages
from services.ingest.importer import row_event_id
from shared import topics
from shared.codec import encode
from shared.db import create_engine
from shared.events import ImportRowReceivedV1, ImportRowsProcessedV1, ProcessedRow
from shared.pagination import encode_cursor
from shared.producer import OutgoingMessage
from shared.tracing import span_context_of
from tests.support.ingest_app import Answer, Ingest, ingest_settings, organizer, running_ingest
from tests.support.isolation import Isolation
from tests.support.kafka import consume_until, envelope_for
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

FOUR_ROWS = (
    "Email, First_Name ,last_name,notes\n"
    "jane@example.com,Jane,Doe,x\n"
    "  JANE@Example.COM ,Jane,Doe,y\n"
    "bob@example.com,Bob,,\n"
    "alice@example.com,Alice,Smith,\n"
)


@pytest.fixture(scope="module")
def shared_isolation(database_url: str, kafka_bootstrap: str) -> Any:
    """One app for the module (starting one costs seconds): tests keep apart by organizer and import ids."""
    isolated = Isolation(database_url=database_url, kafka_bootstrap=kafka_bootstrap)
    isolated.migrate(("ingest",))
    yield isolated
    isolated.drop_schemas()


@pytest.fixture(scope="module")
async def ingest(
    shared_isolation: Isolation, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Ingest]:
    uploads = tmp_path_factory.mktemp("uploads")
    settings = ingest_settings(shared_isolation, uploads, max_upload_bytes=64 * 1024, sweep_seconds=0.5)
    async with running_ingest(settings, shared_isolation) as running:
        yield running


# --- the status flow ----------------------------------------------------------------------------------------


async def test_an_import_is_processed_once_every_row_has_an_outcome(ingest: Ingest) -> None:
    org = organizer()
    import_id = await ingest.upload(org, FOUR_ROWS, filename="four.csv")

    read = await ingest.wait_for(org, import_id, "processing")
    assert (read["total_rows"], read["processed_rows"], read["finished_at"]) == (4, 0, None)
    assert (read["source"], read["filename"], read["error"]) == ("csv", "four.csv", None)

    rows = await ingest.published_rows(import_id, 4)
    assert [r.key for r in rows] == ["jane@example.com"] * 2 + ["bob@example.com", "alice@example.com"]
    envelopes = [r.envelope for r in rows if r.envelope is not None]
    assert [e.id for e in envelopes] == [row_event_id(import_id, n) for n in (1, 2, 3, 4)]
    assert {(e.correlation_id, e.subject, e.source) for e in envelopes} == {
        (import_id, import_id, "kagibag-contacts/ingest")
    }
    (trace,) = {r.headers.get("traceparent") for r in rows}  # one trace per import, from its upload on
    assert trace is not None and span_context_of(trace.decode()) is not None
    jane = str(uuid.uuid4())
    await ingest.answer(ingest.outcomes(
        ingest.processed(rows[0], "created", contact_id=jane),
        ingest.processed(rows[1], "matched", contact_id=jane),
        ingest.processed(rows[2], "created"),
    ))
    partial = await ingest.wait_counted(org, import_id, 3)
    assert partial["status"] == "processing"

    await ingest.answer(ingest.outcomes(ingest.processed(rows[3], "created")))

    done = await ingest.wait_for(org, import_id, "processed", "error")
    assert done["status"] == "processed"
    assert (done["processed_rows"], done["created"], done["matched"], done["errors"]) == (4, 3, 1, 0)
    assert done["finished_at"] is not None
    listed = await ingest.rows(org, import_id)
    assert [(r["row_number"], r["outcome"]) for r in listed] == [
        (1, "created"), (2, "matched"), (3, "created"), (4, "created")
    ]
    assert listed[0]["contact_id"] == listed[1]["contact_id"] == jane


async def test_redelivered_and_repeated_outcomes_are_counted_once(ingest: Ingest) -> None:
    org = organizer()
    import_id = await ingest.upload(org, "email\na@example.com\nb@example.com\nc@example.com\n")
    rows = await ingest.published_rows(import_id, 3)
    first = ingest.outcomes(ingest.processed(rows[0], "created"), ingest.processed(rows[1], "matched"))
    await ingest.answer(first)
    await ingest.wait_counted(org, import_id, 2)

    redelivered = first  # the very same message (same envelope id), as after a consumer crash
    contradicting = ingest.processed(rows[0], "error", error_code="LATE")  # a second outcome for row 1
    await ingest.answer([*redelivered, *ingest.outcomes(contradicting, ingest.processed(rows[2], "matched"))])

    done = await ingest.wait_for(org, import_id, "processed", "error")
    assert (done["status"], done["processed_rows"], done["created"], done["matched"], done["errors"]) == (
        "processed", 3, 1, 2, 0
    )
    assert (await ingest.rows(org, import_id))[0]["outcome"] == "created"  # the first outcome wins


async def test_a_message_of_several_rows_is_counted_once_and_a_repeated_row_keeps_its_first_outcome(
    ingest: Ingest,
) -> None:
    org = organizer()
    import_id = await ingest.upload(org, "email\na@example.com\nb@example.com\nc@example.com\nd@example.com\n")
    rows = await ingest.published_rows(import_id, 4)
    a, b = str(uuid.uuid4()), str(uuid.uuid4())
    (several,) = ingest.outcomes(
        ingest.processed(rows[0], "created", contact_id=a),
        ingest.processed(rows[1], "created", contact_id=b),
        ingest.processed(rows[2], "error", error_code="INVALID_EMAIL"),
    )
    await ingest.answer([several, several])  # the same message twice, as a producer retry can leave it
    counted = await ingest.wait_counted(org, import_id, 3)
    assert (counted["status"], counted["created"], counted["errors"]) == ("processing", 2, 1)

    # the first message once more (a consumer crash), then identity's later message after it processed its
    # input again: rows 2 and 3 repeated (same outcomes, row 2 under another contact id) with the new row 4
    later = ingest.outcomes(
        ingest.processed(rows[1], "created", contact_id=str(uuid.uuid4())),
        ingest.processed(rows[2], "error", error_code="INVALID_EMAIL"),
        ingest.processed(rows[3], "matched", contact_id=a),
    )
    await ingest.answer([several, *later])

    done = await ingest.wait_for(org, import_id, "processed", "error")
    assert (done["status"], done["processed_rows"], done["created"], done["matched"], done["errors"]) == (
        "error", 4, 2, 1, 1
    )
    listed = await ingest.rows(org, import_id)
    assert [(r["row_number"], r["outcome"], r["contact_id"]) for r in listed] == [
        (1, "created", a), (2, "created", b), (3, "error", None), (4, "matched", a)
    ]


async def test_rows_ingest_refuses_are_processed_errors_and_keep_their_cells(ingest: Ingest) -> None:
    org = organizer()
    content = "email,first_name\n,Nobody\na@example.com,A,extra\n\nb@example.com,B\nc@example.com,C\n"
    import_id = await ingest.upload(org, content)

    read = await ingest.wait_for(org, import_id, "processing")
    assert (read["total_rows"], read["processed_rows"], read["errors"]) == (4, 2, 2)
    refused = await ingest.rows(org, import_id, outcome="error")
    assert [(r["row_number"], r["error_code"], r["cells"]) for r in refused] == [
        (1, "MISSING_EMAIL", ["", "Nobody"]),
        (2, "COLUMN_COUNT_MISMATCH", ["a@example.com", "A", "extra"]),
    ]
    assert refused[0]["error_message"] == "the email cell is empty"

    rows = await ingest.published_rows(import_id, 2)
    assert [r.event.row_number for r in rows] == [4, 5]  # type: ignore[union-attr]
    await ingest.answer(ingest.outcomes(
        ingest.processed(rows[0], "created"), ingest.processed(rows[1], "error", error_code="INVALID_EMAIL")
    ))

    done = await ingest.wait_for(org, import_id, "processed", "error")
    assert (done["status"], done["processed_rows"], done["created"], done["errors"]) == ("error", 4, 1, 3)
    assert [r["row_number"] for r in await ingest.rows(org, import_id, outcome="error")] == [1, 2, 5]
    assert [r["row_number"] for r in await ingest.rows(org, import_id, outcome="created")] == [4]


async def test_a_file_without_an_email_column_started_at_upload_ends_in_error_with_the_reason(ingest: Ingest) -> None:
    org = organizer()
    import_id = await ingest.upload(org, "name,company\nJane,Acme\n", expect="error")

    done = await ingest.get(org, import_id)

    assert done["status"] == "error"
    assert done["error"] == "no column looks like an email address; columns found: 'name', 'company'"
    assert (done["total_rows"], done["processed_rows"], done["started_at"]) == (None, 0, None)
    assert done["finished_at"] is not None


@pytest.mark.parametrize("auto_start", [True, False])
async def test_a_file_that_cannot_be_read_is_accepted_in_error_with_the_reason(
    ingest: Ingest, auto_start: bool
) -> None:
    org = organizer()
    import_id = await ingest.upload(org, "email,first_name\n", auto_start=auto_start, expect="error")

    done = await ingest.get(org, import_id)

    assert (done["status"], done["total_rows"], done["processed_rows"]) == ("error", None, 0)
    assert "no rows" in done["error"]
    start = await ingest.client.post(f"/v1/imports/{import_id}/start", headers=ingest.auth(org))
    assert start.status_code == 409
    assert "could not be read" in start.json()["detail"]


# --- access -------------------------------------------------------------------------------------------------


async def test_without_a_valid_token_nothing_is_accepted_or_shown(ingest: Ingest) -> None:
    upload = await ingest.client.post("/v1/imports", files={"file": ("a.csv", FOUR_ROWS, "text/csv")})
    listing = await ingest.client.get("/v1/imports")
    forged = await ingest.client.get("/v1/imports", headers={"Authorization": "Bearer not-a-token"})

    assert (upload.status_code, listing.status_code, forged.status_code) == (401, 401, 401)
    assert upload.headers["www-authenticate"] == "Bearer"


async def test_another_organizers_import_is_not_found(ingest: Ingest) -> None:
    owner, stranger = organizer(), organizer()
    import_id = await ingest.upload(owner, FOUR_ROWS)

    for path in (f"/v1/imports/{import_id}", f"/v1/imports/{import_id}/rows"):
        response = await ingest.client.get(path, headers=ingest.auth(stranger))
        assert response.status_code == 404, path
    missing = await ingest.client.get(f"/v1/imports/{uuid.uuid4()}", headers=ingest.auth(owner))
    malformed = await ingest.client.get("/v1/imports/not-an-id", headers=ingest.auth(owner))
    assert (missing.status_code, malformed.status_code) == (404, 404)
    assert (await ingest.client.get("/v1/imports", headers=ingest.auth(stranger))).json()["items"] == []


async def test_an_organizer_pages_through_their_imports_newest_first(ingest: Ingest) -> None:
    org = organizer()
    uploaded = [await ingest.upload(org, "email\na@example.com\n", filename=f"{n}.csv") for n in range(5)]

    seen: list[str] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = (await ingest.client.get("/v1/imports", headers=ingest.auth(org), params=params)).json()
        seen += [item["import_id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break

    assert seen == list(reversed(uploaded))
    for bad in ("garbage", encode_cursor("contacts", "2026-01-01T00:00:00+00:00", "x"),
                encode_cursor("imports", "2026-01-01T00:00:00+00:00", "not-a-uuid")):
        refused = await ingest.client.get("/v1/imports", headers=ingest.auth(org), params={"cursor": bad})
        assert refused.status_code == 422, bad
        assert refused.json()["detail"][0]["loc"] == ["query", "cursor"]


async def test_rows_are_paged_in_file_order(ingest: Ingest) -> None:
    org = organizer()
    import_id = await ingest.upload(org, "email,first_name\n" + ",Nobody\n" * 5)
    await ingest.wait_for(org, import_id, "error")  # five rows refused by ingest: all processed, all errors

    first = (await ingest.client.get(f"/v1/imports/{import_id}/rows", headers=ingest.auth(org),
                                     params={"limit": 2})).json()
    second = (await ingest.client.get(f"/v1/imports/{import_id}/rows", headers=ingest.auth(org),
                                      params={"limit": 2, "after": first["next_after"]})).json()
    by_cursor = (await ingest.client.get(f"/v1/imports/{import_id}/rows", headers=ingest.auth(org),
                                         params={"limit": 2, "cursor": first["next_cursor"]})).json()
    not_a_cursor = await ingest.client.get(f"/v1/imports/{import_id}/rows", headers=ingest.auth(org),
                                           params={"cursor": "bm90IGEgY3Vyc29y"})

    assert [r["row_number"] for r in first["items"]] == [1, 2]
    assert [r["row_number"] for r in second["items"]] == [3, 4]
    assert by_cursor == second and by_cursor["next_cursor"] is not None
    assert not_a_cursor.status_code == 422 and not_a_cursor.json()["detail"][0]["loc"] == ["query", "cursor"]


# --- uploads ------------------------------------------------------------------------------------------------


async def test_an_upload_over_the_limit_is_refused_with_413_and_leaves_nothing(ingest: Ingest) -> None:
    org = organizer()
    too_big = "email\n" + "someone@example.com\n" * 4000  # 80 KB against the module's 64 KiB limit

    response = await ingest.client.post(
        "/v1/imports", headers=ingest.auth(org), files={"file": ("big.csv", too_big, "text/csv")}
    )

    assert response.status_code == 413
    assert "upload limit of 65,536 bytes" in response.json()["detail"]
    assert (await ingest.client.get("/v1/imports", headers=ingest.auth(org))).json()["items"] == []
    assert not list(ingest.settings.data_dir.glob("*.part"))


async def test_an_upload_must_be_a_multipart_file_field(ingest: Ingest) -> None:
    org = organizer()

    wrong_type = await ingest.client.post("/v1/imports", headers=ingest.auth(org), content=b"email\na@b.c\n")
    wrong_field = await ingest.client.post(
        "/v1/imports", headers=ingest.auth(org), files={"upload": ("a.csv", "email\n", "text/csv")}
    )

    assert wrong_type.status_code == 415
    assert wrong_field.status_code == 422
    assert "'file'" in wrong_field.json()["detail"]


def stored_file(ingest: Ingest, import_id: str) -> bytes:
    with psycopg.connect(libpq_url(ingest.isolation.database_url)) as conn:
        chunks = conn.execute(
            f'SELECT data FROM "{ingest.isolation.schema("ingest")}".import_files WHERE import_id = %s ORDER BY seq',
            (import_id,),
        ).fetchall()
    return b"".join(chunk for (chunk,) in chunks)


async def test_an_upload_is_kept_in_postgresql_until_it_is_deleted(ingest: Ingest) -> None:
    org = organizer()
    import_id = await ingest.upload(org, FOUR_ROWS, auto_start=False, expect="uploaded")

    assert stored_file(ingest, import_id) == FOUR_ROWS.encode()
    assert not (ingest.settings.data_dir / f"{import_id}.csv").exists(), "no copy left on this instance's disk"
    other = await ingest.client.delete(f"/v1/imports/{import_id}", headers=ingest.auth(organizer()))
    deleted = await ingest.client.delete(f"/v1/imports/{import_id}", headers=ingest.auth(org))
    again = await ingest.client.delete(f"/v1/imports/{import_id}", headers=ingest.auth(org))

    assert (other.status_code, deleted.status_code, again.status_code) == (404, 204, 404)
    assert stored_file(ingest, import_id) == b""
    assert (await ingest.client.get(f"/v1/imports/{import_id}", headers=ingest.auth(org))).status_code == 404


async def test_a_started_import_cannot_be_deleted_and_its_file_goes_once_it_is_finished(ingest: Ingest) -> None:
    org = organizer()
    import_id = await ingest.upload(org, "email\na@example.com\n")
    (row,) = await ingest.published_rows(import_id, 1)

    refused = await ingest.client.delete(f"/v1/imports/{import_id}", headers=ingest.auth(org))
    assert refused.status_code == 409
    assert "started" in refused.json()["detail"]
    assert stored_file(ingest, import_id) == b"email\na@example.com\n", "kept while its rows may be sent again"

    await ingest.answer(ingest.outcomes(ingest.processed(row, "created")))
    await ingest.wait_for(org, import_id, "processed")
    await wait_until(lambda: stored_file(ingest, import_id) == b"", timeout=10, description="file deleted")


async def test_an_upload_never_started_expires(isolation: Isolation, tmp_path: Path) -> None:
    isolation.migrate(("ingest",))
    org = organizer()
    settings = ingest_settings(isolation, tmp_path, upload_expiry_seconds=1, sweep_seconds=0.2)
    async with running_ingest(settings, isolation) as ingest:
        import_id = await ingest.upload(org, FOUR_ROWS, auto_start=False, expect="uploaded")

        expired = await ingest.wait_for(org, import_id, "error")
        assert "not started within" in expired["error"] and "expired" in expired["error"]
        await wait_until(lambda: stored_file(ingest, import_id) == b"", timeout=10, description="file deleted")
        start = await ingest.client.post(f"/v1/imports/{import_id}/start", headers=ingest.auth(org))
        assert start.status_code == 409
        assert (await ingest.client.delete(f"/v1/imports/{import_id}", headers=ingest.auth(org))).status_code == 204


# --- poison messages ----------------------------------------------------------------------------------------


async def test_an_undecodable_outcome_is_dead_lettered_and_the_consumer_moves_on(ingest: Ingest) -> None:
    org = organizer()
    import_id = await ingest.upload(org, "email\na@example.com\n")
    (row,) = await ingest.published_rows(import_id, 1)
    outcomes_topic = ingest.isolation.topic(topics.IMPORT_ROW_OUTCOMES)
    garbage = OutgoingMessage(topic=outcomes_topic, key=import_id.encode(), value=b"{not json",
                              headers=[("ce_id", b"x"), ("ce_type", ImportRowsProcessedV1.TYPE.encode()),
                                       ("ce_source", b"test")])

    await ingest.answer([garbage, *ingest.outcomes(ingest.processed(row, "created"))])

    done = await ingest.wait_for(org, import_id, "processed", "error")
    assert done["status"] == "processed"
    letters = await consume_until(
        ingest.isolation.kafka_bootstrap,
        ingest.isolation.topic(topics.dead_letter_topic("ingest")),
        lambda seen: any(c.record.value == b"{not json" for c in seen),
    )
    letter = next(c for c in letters if c.record.value == b"{not json")
    assert letter.headers["dlq_error_code"] == b"INVALID_PAYLOAD"
    assert letter.headers["dlq_original_topic"] == outcomes_topic.encode()


async def test_a_message_with_a_row_number_out_of_range_is_dead_lettered_whole(ingest: Ingest) -> None:
    org = organizer()
    import_id = await ingest.upload(org, "email\na@example.com\nb@example.com\n")
    rows = await ingest.published_rows(import_id, 2)
    out_of_range = Answer(rows[1], ProcessedRow(row_number=0, outcome="created", contact_id="c-0"))
    (poisoned,) = ingest.outcomes(ingest.processed(rows[0], "error", error_code="POISONED"), out_of_range)

    await ingest.answer([
        poisoned, *ingest.outcomes(ingest.processed(rows[0], "created"), ingest.processed(rows[1], "matched"))
    ])

    done = await ingest.wait_for(org, import_id, "processed", "error")
    # none of the poisoned message's rows was stored, not even its valid row 1
    assert (done["status"], done["processed_rows"], done["created"], done["matched"], done["errors"]) == (
        "processed", 2, 1, 1, 0
    )
    letters = await consume_until(
        ingest.isolation.kafka_bootstrap,
        ingest.isolation.topic(topics.dead_letter_topic("ingest")),
        lambda seen: any(c.record.value == poisoned.value for c in seen),
    )
    letter = next(c for c in letters if c.record.value == poisoned.value)
    assert letter.headers["dlq_error_code"] == b"INVALID_PAYLOAD"
    assert b"row_number 0 is out of range" in letter.headers["dlq_error"]


# --- crash recovery -----------------------------------------------------------------------------------------


def store_file(conn: psycopg.Connection[Any], isolation: Isolation, import_id: str, content: bytes) -> None:
    """The import's file as ingest keeps it: in PostgreSQL (one chunk here)."""
    conn.execute(
        f'INSERT INTO "{isolation.schema("ingest")}".import_files (import_id, seq, data) VALUES (%s, 0, %s)',
        (import_id, content),
    )


async def test_an_import_interrupted_while_parsing_is_resumed_at_start_up(
    isolation: Isolation, tmp_path: Path
) -> None:
    """A crash left an import in ``parsing`` with rows 1-2 handed on (its checkpoint); the next start (of any
    instance: the file is in PostgreSQL, none is on this one's disk) reads the rest and counts every row."""
    isolation.migrate(("ingest",))
    org, import_id = organizer(), str(uuid.uuid4())
    with psycopg.connect(libpq_url(isolation.database_url)) as conn:
        conn.execute(
            f'INSERT INTO "{isolation.schema("ingest")}".imports '
            "(import_id, organizer_id, source, filename, status, parsed_rows, processed_rows, errors) "
            "VALUES (%s, %s, 'csv', 'x.csv', 'parsing', 2, 1, 1)",
            (import_id, org),
        )
        store_file(conn, isolation, import_id, b"email,first_name\n,Nobody\nb@example.com,B\nc@example.com,C\n"
                   b"d@example.com,D\n")
        conn.execute(
            f'INSERT INTO "{isolation.schema("ingest")}".import_row_blocks '
            "(import_id, block, outcomes, contact_ids, created, matched, errors) "
            "VALUES (%s, 0, '\\x03', '{NULL}', 0, 0, 1)",
            (import_id,),
        )
        conn.execute(
            f'INSERT INTO "{isolation.schema("ingest")}".import_row_errors '
            "(import_id, row_number, error_code, error_message, cells) "
            "VALUES (%s, 1, 'MISSING_EMAIL', 'the email cell is empty', '[\"\", \"Nobody\"]')",
            (import_id,),
        )

    async with running_ingest(ingest_settings(isolation, tmp_path), isolation) as ingest:
        read = await ingest.wait_for(org, import_id, "processing")
        assert (read["total_rows"], read["processed_rows"], read["errors"]) == (4, 1, 1)

        rows = await ingest.published_rows(import_id, 2)
        assert [r.event.row_number for r in rows] == [3, 4]  # type: ignore[union-attr]
        # identity's answer to row 2, which the crashed attempt had published
        before_crash = ImportRowsProcessedV1(
            import_id=import_id, organizer_id=org,
            rows=[ProcessedRow(row_number=2, outcome="created", contact_id="c-2")],
        )
        outcomes_topic = isolation.topic(topics.IMPORT_ROW_OUTCOMES)
        await ingest.answer([
            encode(before_crash, envelope_for(before_crash), topic=outcomes_topic, key=import_id),
            *ingest.outcomes(ingest.processed(rows[0], "created"), ingest.processed(rows[1], "matched")),
        ])

        done = await ingest.wait_for(org, import_id, "processed", "error")
        assert (done["status"], done["processed_rows"], done["created"], done["matched"], done["errors"]) == (
            "error", 4, 2, 1, 1
        )


async def test_at_start_up_only_started_imports_are_read_and_with_their_stored_mapping(
    isolation: Isolation, tmp_path: Path
) -> None:
    """An import started before a restart is read with the mapping it was started with (here the second email
    column); an import still waiting for its mapping stays ``uploaded``."""
    isolation.migrate(("ingest",))
    org, started_id, waiting_id = organizer(), str(uuid.uuid4()), str(uuid.uuid4())
    content = "Email,Work email,Name\njane@home.example,jane@work.example,Jane\n"
    inspection = {"encoding": "utf-8", "delimiter": ",", "quotechar": '"', "header": ["Email", "Work email", "Name"],
                  "samples": [["jane@home.example", "jane@work.example", "Jane"]]}
    mapping = {"fields": {"email": 1, "first_name": 2}, "width": 3}
    with psycopg.connect(libpq_url(isolation.database_url)) as conn:
        for import_id, status, stored in ((started_id, "parsing", mapping), (waiting_id, "uploaded", None)):
            conn.execute(
                f'INSERT INTO "{isolation.schema("ingest")}".imports '
                "(import_id, organizer_id, source, filename, status, inspection, mapping) "
                "VALUES (%s, %s, 'csv', 'x.csv', %s, %s, %s)",
                (import_id, org, status, json.dumps(inspection), json.dumps(stored) if stored else None),
            )
            store_file(conn, isolation, import_id, content.encode())

    async with running_ingest(ingest_settings(isolation, tmp_path), isolation) as ingest:
        (row,) = await ingest.published_rows(started_id, 1)
        assert isinstance(row.event, ImportRowReceivedV1)
        assert (row.event.email, row.event.first_name) == ("jane@work.example", "Jane")
        await ingest.wait_for(org, started_id, "processing")
        assert (await ingest.get(org, waiting_id))["status"] == "uploaded"


# --- a million rows -----------------------------------------------------------------------------------------


async def test_rows_of_a_million_row_import_are_paged_fast_by_outcome(ingest: Ingest) -> None:
    """Outcomes of 1,000,000 rows as the counting stores them (every 10th row matched, every 100th an error),
    written straight into the tables; any page, deep or filtered, reads a block or two."""
    org, import_id, total = organizer(), str(uuid.uuid4()), 1_000_000
    schema = ingest.isolation.schema("ingest")
    code = "CASE WHEN mod(n, 100) = 0 THEN '03' WHEN mod(n, 10) = 0 THEN '02' ELSE '01' END"
    with psycopg.connect(libpq_url(ingest.isolation.database_url)) as conn:
        conn.execute(
            f'INSERT INTO "{schema}".imports (import_id, organizer_id, source, status, total_rows, processed_rows, '
            "created, matched, errors) VALUES (%s, %s, 'csv', 'error', %s, %s, 891000, 99000, 10000)",
            (import_id, org, total, total),
        )
        conn.execute(
            f'INSERT INTO "{schema}".import_row_blocks '
            "(import_id, block, outcomes, contact_ids, created, matched, errors) "
            f"SELECT %s, b, decode(string_agg({code}, '' ORDER BY n), 'hex'), "
            "array_agg(CASE WHEN mod(n, 100) = 0 THEN NULL ELSE 'c-' || n END ORDER BY n), "
            "count(*) FILTER (WHERE mod(n, 10) <> 0), count(*) FILTER (WHERE mod(n, 10) = 0 AND mod(n, 100) <> 0), "
            "count(*) FILTER (WHERE mod(n, 100) = 0) "
            "FROM (SELECT n, (n - 1) / 1024 AS b FROM generate_series(1, %s) AS n) AS r GROUP BY b",
            (import_id, total),
        )
        conn.execute(
            f'INSERT INTO "{schema}".import_row_errors (import_id, row_number, error_code, error_message, cells) '
            "SELECT %s, n, 'INVALID_EMAIL', 'bad', jsonb_build_array('row ' || n) "
            "FROM generate_series(100, %s, 100) AS n",
            (import_id, total),
        )

    async def page(**params: Any) -> tuple[dict[str, Any], float]:
        began = asyncio.get_running_loop().time()
        response = await ingest.client.get(
            f"/v1/imports/{import_id}/rows", headers=ingest.auth(org), params=params
        )
        assert response.status_code == 200, response.text
        return response.json(), asyncio.get_running_loop().time() - began

    first, _ = await page(limit=3)
    assert [(r["row_number"], r["outcome"], r["contact_id"]) for r in first["items"]] == [
        (1, "created", "c-1"), (2, "created", "c-2"), (3, "created", "c-3")
    ]
    deep, deep_seconds = await page(after=899_998, limit=1000)
    assert [r["row_number"] for r in deep["items"]] == list(range(899_999, 900_999))
    failed = next(r for r in deep["items"] if r["row_number"] == 900_000)
    assert (failed["outcome"], failed["error_code"], failed["cells"]) == ("error", "INVALID_EMAIL", ["row 900000"])
    assert deep["next_after"] == 900_998
    matched, matched_seconds = await page(outcome="matched", after=500_000, limit=1000)
    assert [r["row_number"] for r in matched["items"]][:3] == [500_010, 500_020, 500_030]
    assert len(matched["items"]) == 1000 and all(r["row_number"] % 100 for r in matched["items"])
    errors, errors_seconds = await page(outcome="error", after=990_000, limit=1000)
    assert [r["row_number"] for r in errors["items"]] == list(range(990_100, 1_000_001, 100))
    assert errors["next_after"] is None
    last, _ = await page(outcome="created", after=999_998)
    assert [r["row_number"] for r in last["items"]] == [999_999] and last["next_after"] is None
    assert max(deep_seconds, matched_seconds, errors_seconds) < 0.5, (deep_seconds, matched_seconds, errors_seconds)


# --- the error file -----------------------------------------------------------------------------------------


async def download(ingest: Ingest, org: str, import_id: str, **params: Any) -> list[list[str]]:
    response = await ingest.client.get(f"/v1/imports/{import_id}/rows.csv", headers=ingest.auth(org), params=params)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert response.headers["content-disposition"] == f'attachment; filename="import-{import_id}-errors.csv"'
    text = response.content.decode("utf-8")
    assert text.startswith("\ufeff")
    rows = list(csv.reader(io.StringIO(text[1:], newline="")))
    quoted = "\r\n".join(",".join('"' + cell.replace('"', '""') + '"' for cell in row) for row in rows) + "\r\n"
    assert text[1:] == quoted, "every cell is quoted"
    return rows


async def test_the_failed_rows_download_as_a_csv_safe_in_a_spreadsheet(ingest: Ingest) -> None:
    org = organizer()
    content = (
        "email,=cmd|' /C calc'!A0,phone\n"
        ',"=HYPERLINK(""http://evil.example"",""click"")",+1 555 0100\n'
        "not-an-email,@SUM(A1),-2+3\n"
        'bad,"\tTabbed","\rReturned"\n'
        "ok@example.com,Fine,1\n"
        "fine@example.com,Fine,1\n"
    )
    import_id = await ingest.upload(org, content)
    rows = await ingest.published_rows(import_id, 2)
    await ingest.answer(ingest.outcomes(
        ingest.processed(rows[0], "error", error_code="IDENTITY_REFUSED"), ingest.processed(rows[1], "created"),
    ))
    await ingest.wait_for(org, import_id, "error")

    header, *failed = await download(ingest, org, import_id)

    assert header == ["Row", "email", "'=cmd|' /C calc'!A0", "phone", "Error code", "Error message"]
    assert [row[0] for row in failed] == ["1", "2", "3", "4"]
    assert failed[0][:4] == ["1", "", '\'=HYPERLINK("http://evil.example","click")', "'+1 555 0100"]
    assert failed[0][4:] == ["MISSING_EMAIL", "the email cell is empty"]
    assert failed[1][:4] == ["2", "not-an-email", "'@SUM(A1)", "'-2+3"]
    assert failed[1][4] == "INVALID_EMAIL"
    assert failed[2][:4] == ["3", "bad", "'\tTabbed", "'\rReturned"]
    assert failed[3] == ["4", "", "", "", "IDENTITY_REFUSED", "refused by identity"]
    originals = [[cell[1:] if cell.startswith("'") else cell for cell in row[1:4]] for row in failed[:2]]
    assert originals == [["", '=HYPERLINK("http://evil.example","click")', "+1 555 0100"],
                         ["not-an-email", "@SUM(A1)", "-2+3"]]
    other = await ingest.client.get(f"/v1/imports/{import_id}/rows.csv", headers=ingest.auth(organizer()))
    created = await ingest.client.get(f"/v1/imports/{import_id}/rows.csv", headers=ingest.auth(org),
                                      params={"outcome": "created"})
    assert (other.status_code, created.status_code) == (404, 422)


async def test_the_error_file_of_a_hundred_thousand_failed_rows_streams_in_pages(ingest: Ingest) -> None:
    org, import_id, total = organizer(), str(uuid.uuid4()), 100_000
    schema = ingest.isolation.schema("ingest")
    with psycopg.connect(libpq_url(ingest.isolation.database_url)) as conn:
        conn.execute(
            f'INSERT INTO "{schema}".imports (import_id, organizer_id, source, status, total_rows, processed_rows, '
            "errors, inspection) VALUES (%s, %s, 'csv', 'error', %s, %s, %s, %s)",
            (import_id, org, total, total, total, json.dumps({
                "encoding": "utf-8", "delimiter": ",", "quotechar": '"', "header": ["email", "name"], "samples": []
            })),
        )
        conn.execute(
            f'INSERT INTO "{schema}".import_row_errors (import_id, row_number, error_code, error_message, cells) '
            "SELECT %s, n, 'INVALID_EMAIL', 'bad ' || n, jsonb_build_array('x' || n, '=n' || n) "
            "FROM generate_series(1, %s) AS n",
            (import_id, total),
        )

    engine = create_engine(ingest.isolation.database_url, schema=schema)
    try:
        chunks = [chunk async for chunk in row_pages.error_file(engine, import_id=import_id, header=["email", "name"])]
    finally:
        await engine.dispose()
    whole = await ingest.client.get(f"/v1/imports/{import_id}/rows.csv", headers=ingest.auth(org))
    lines = whole.content.splitlines()

    assert len(chunks) == 1 + total // row_pages.PAGE_ROWS, "read and sent a page at a time"
    assert max(len(chunk) for chunk in chunks) < 100_000
    assert len(lines) == total + 1
    assert lines[-1] == b'"100000","x100000","\'=n100000","INVALID_EMAIL","bad 100000"'


# --- lanes --------------------------------------------------------------------------------------------------


async def test_a_big_import_goes_to_the_bulk_lane_and_a_small_one_to_the_interactive_lane(
    isolation: Isolation, tmp_path: Path
) -> None:
    isolation.migrate(("ingest",))
    org = organizer()
    async with running_ingest(ingest_settings(isolation, tmp_path, bulk_rows=2), isolation) as ingest:
        big = await ingest.upload(org, "email\na@example.com\nb@example.com\nc@example.com\n")
        small = await ingest.upload(org, "email\nd@example.com\ne@example.com\n")
        json_import = await ingest.client.post(
            "/v1/imports", headers={**ingest.auth(org), "Content-Type": "application/json"},
            content=json.dumps([{"email": "f@example.com"}, {"email": "g@example.com"}]).encode(),
        )
        assert json_import.status_code == 202

        bulk = await consume_until(
            isolation.kafka_bootstrap, isolation.topic(topics.BULK_IMPORT_ROWS), lambda seen: len(seen) >= 3
        )
        interactive = await consume_until(
            isolation.kafka_bootstrap, isolation.topic(topics.IMPORT_ROWS), lambda seen: len(seen) >= 4
        )

    assert {c.event.import_id for c in bulk} == {big}  # type: ignore[union-attr]
    assert [c.event.import_id for c in interactive].count(small) == 2  # type: ignore[union-attr]
    assert big not in {c.event.import_id for c in interactive}  # type: ignore[union-attr]
