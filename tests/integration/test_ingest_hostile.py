"""Hostile input never crashes ingest: each case is a clear 4xx or an error row, nothing else is lost, and no
answer echoes megabytes of what was sent (real broker and PostgreSQL, the app in-process)."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import jwt
import pytest

from shared.auth import ALGORITHM, ISSUER
from tests.support.ingest_app import Ingest, ingest_settings, organizer, running_ingest
from tests.support.isolation import Isolation

pytestmark = pytest.mark.integration

SHORT = 4096
"""Bytes an error answer may have: enough to say what is wrong, never the input sent back."""


@pytest.fixture(scope="module")
def hostile_isolation(database_url: str, kafka_bootstrap: str) -> Iterator[Isolation]:
    isolated = Isolation(database_url=database_url, kafka_bootstrap=kafka_bootstrap)
    isolated.migrate(("ingest",))
    yield isolated
    isolated.drop_schemas()


@pytest.fixture(scope="module")
async def ingest(hostile_isolation: Isolation, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Ingest]:
    settings = ingest_settings(
        hostile_isolation, tmp_path_factory.mktemp("uploads"), max_upload_bytes=64 * 1024 * 1024,
        max_json_bytes=8 * 1024 * 1024,
    )
    async with running_ingest(settings, hostile_isolation) as running:
        yield running


def refused(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text[:500]
    assert len(response.content) < SHORT, f"{len(response.content)} bytes answered"
    return dict(response.json())


def forged_token(ingest: Ingest, organizer_id: str) -> dict[str, str]:
    claims = {"organizer_id": organizer_id, "iss": ISSUER, "iat": 1_700_000_000, "exp": 4_000_000_000}
    return {"Authorization": f"Bearer {jwt.encode(claims, ingest.isolation.auth_secret, algorithm=ALGORITHM)}"}


# --- NUL and junk in query parameters, paths, cursors, token claims ----------------------------------------------


async def test_nul_anywhere_in_a_request_is_a_clear_4xx(ingest: Ingest) -> None:
    org = organizer()
    import_id = await ingest.upload(org, "email\na@example.com\n", auto_start=False, expect="uploaded")
    auth = ingest.auth(org)
    get = ingest.client.get

    refused(await get("/v1/imports", headers=auth, params={"cursor": "\x00"}), 422)
    refused(await get("/v1/imports", headers=auth, params={"cursor": "WyJcdTAwMDAiLCAiXHUwMDAwIl0="}), 422)
    refused(await get("/v1/imports", headers=auth, params={"limit": "\x00"}), 422)
    refused(await get("/v1/imports/%00", headers=auth), 404)
    refused(await get(f"/v1/imports/{import_id}%00/rows", headers=auth), 404)
    refused(await get(f"/v1/imports/{import_id}/rows", headers=auth, params={"outcome": "\x00"}), 422)
    refused(await get(f"/v1/imports/{import_id}/rows", headers=auth, params={"after": "1\x00"}), 422)
    refused(await get(f"/v1/imports/{import_id}/rows", headers=auth, params={"after": str(2**80)}), 422)
    refused(await get(f"/v1/imports/{import_id}/mapping%00", headers=auth), 404)
    upload = await ingest.client.post(
        "/v1/imports", headers=auth, params={"auto_start": "\x00"}, files={"file": ("a.csv", b"email\n", "text/csv")}
    )
    refused(upload, 422)
    for claim in ("org\x00x", "\x00", "org\x1bx"):
        refused(await get("/v1/imports", headers=forged_token(ingest, claim)), 401)
        refused(await ingest.client.post("/mcp/", headers=forged_token(ingest, claim), json={}), 401)
    assert (await get(f"/v1/imports/{import_id}", headers=auth)).status_code == 200


# --- JSON imports -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 200_000 + b"]" * 200_000,
        b'[{"email": "a@example.com", "phone": NaN}]',
        b'[{"email": "a@example.com", "phone": -Infinity}]',
        b'[{"email": "a@example.com", "phone": ' + b"7" * 100_000 + b"}]",
        b'[{"email": "a@example.com", "first_name": "\\udc00"}]',
        b'[{"email": "a@example.com", "first_name": "a\x07b"}]',
        b'[{"email": "a@example.com", "first_name": "' + b"\xc3\x28" * 10 + b'"}]',
        b'[{"email": "' + b"x" * 3_000_000 + b'",]',
    ],
    ids=["deep", "nan", "infinity", "huge-integer", "lone-surrogate", "raw-control", "not-utf8", "malformed-3mb"],
)
async def test_json_that_cannot_be_imported_is_a_short_422_and_creates_nothing(ingest: Ingest, body: bytes) -> None:
    org = organizer()
    response = await ingest.client.post(
        "/v1/imports", headers={**ingest.auth(org), "Content-Type": "application/json"}, content=body
    )

    assert "not valid JSON" in refused(response, 422)["detail"] or "UTF-8" in response.json()["detail"]
    assert (await ingest.client.get("/v1/imports", headers=ingest.auth(org))).json()["items"] == []


async def test_bad_values_in_json_are_error_rows_and_the_other_contacts_are_imported(ingest: Ingest) -> None:
    org = organizer()
    contacts: list[Any] = [
        {"email": "good1@example.com", "first_name": "Good"},
        {"email": "long@example.com", "title": "t" * 200_000},
        {"email": "nul@example.com", "first_name": "Ma\x00x"},
        {"email": "bell@example.com", "last_name": "Be\x07ll"},
        {"email": "good2@example.com", "company": "Ok\tLtd"},
        [[[[[[[[[[["nested"]]]]]]]]]]],
    ]
    response = await ingest.client.post(
        "/v1/imports", headers={**ingest.auth(org), "Content-Type": "application/json"},
        content=json.dumps(contacts).encode(),
    )
    assert response.status_code == 202, response.text
    import_id = response.json()["import_id"]

    published = await ingest.published_rows(import_id, 2)
    assert [row.event.email for row in published] == ["good1@example.com", "good2@example.com"]  # type: ignore[union-attr]
    read = await ingest.wait_counted(org, import_id, 4)
    assert (read["total_rows"], read["errors"]) == (6, 4)
    errors = await ingest.client.get(f"/v1/imports/{import_id}/rows", headers=ingest.auth(org),
                                     params={"outcome": "error"})
    assert len(errors.content) < 20_000
    by_row = {row["row_number"]: row for row in errors.json()["items"]}
    assert {n: row["error_code"] for n, row in by_row.items()} == {
        2: "VALUE_TOO_LONG", 3: "NUL_CHARACTER", 4: "INVALID_VALUE", 6: "NOT_AN_OBJECT"
    }
    assert "title is 200000 characters long" in by_row[2]["error_message"]
    assert max(len(cell) for cell in by_row[2]["cells"]) <= 1001


# --- CSV uploads -----------------------------------------------------------------------------------------------


async def upload_error(ingest: Ingest, content: bytes) -> str:
    org = organizer()
    import_id = await ingest.upload(org, content, expect="error")
    done = await ingest.get(org, import_id)
    assert done["status"] == "error"
    return str(done["error"])


async def test_a_utf16_csv_with_a_nul_in_its_header_is_refused_with_the_reason(ingest: Ingest) -> None:
    error = await upload_error(ingest, "email,fi\x00rst\na@example.com,A\n".encode("utf-16"))

    assert "NUL character in column 2" in error


async def test_a_single_line_of_50_mb_is_a_row_too_large(ingest: Ingest) -> None:
    content = b"email,first_name\na@example.com,A\nb@example.com," + b"z" * (50 * 1024 * 1024) + b"\n"

    error = await upload_error(ingest, content)

    assert "record 3 (line 3): the row is too large" in error and "never closed" not in error
    assert len(error) < 500


async def test_a_line_of_a_million_cells_is_a_row_too_large(ingest: Ingest) -> None:
    error = await upload_error(ingest, b"email,first_name\na@example.com,A\n" + b"," * 1_000_000 + b"\n")

    assert "the row is too large (1,000,001 cells" in error


def multipart(*parts: bytes, boundary: bytes = b"XyZ", close: bool = True) -> tuple[bytes, dict[str, str]]:
    body = b"".join(b"--" + boundary + b"\r\n" + part + b"\r\n" for part in parts)
    if close:
        body += b"--" + boundary + b"--\r\n"
    return body, {"Content-Type": f"multipart/form-data; boundary={boundary.decode()}"}


FILE_PART = b'Content-Disposition: form-data; name="file"; filename="a.csv"\r\n\r\nemail\r\na@example.com'


@pytest.mark.parametrize(
    ("parts", "close", "status", "reason"),
    [
        ((FILE_PART,), False, 400, "closing boundary"),
        ((FILE_PART, *(b'Content-Disposition: form-data; name="f%d"\r\n\r\nx' % n for n in range(9))), True, 400,
         "more than 8 parts"),
        ((b'Content-Disposition: form-data; name="notes"\r\n\r\n' + b"n" * 40_000, FILE_PART), True, 413,
         "form field"),
        ((b"X-Junk: " + b"j" * 20_000 + b'\r\nContent-Disposition: form-data; name="file"\r\n\r\nemail',), True, 400,
         "header"),
        ((b"garbage without headers",), True, 400, "malformed"),
    ],
    ids=["no-closing-boundary", "too-many-parts", "large-field", "large-headers", "malformed"],
)
async def test_a_multipart_body_no_client_would_send_is_refused(
    ingest: Ingest, parts: tuple[bytes, ...], close: bool, status: int, reason: str
) -> None:
    org = organizer()
    body, headers = multipart(*parts, close=close)

    response = await ingest.client.post("/v1/imports", headers={**ingest.auth(org), **headers}, content=body)

    assert reason in refused(response, status)["detail"]
    assert (await ingest.client.get("/v1/imports", headers=ingest.auth(org))).json()["items"] == []


# --- other bodies --------------------------------------------------------------------------------------------


async def test_a_large_body_on_a_route_that_takes_a_small_one_is_refused_unread(ingest: Ingest) -> None:
    org = organizer()
    import_id = await ingest.upload(org, "email\na@example.com\n", auto_start=False, expect="uploaded")
    url = f"/v1/imports/{import_id}/mapping"

    too_large = await ingest.client.put(url, headers=ingest.auth(org), content=b"[" * (3 * 1024 * 1024))
    invalid = await ingest.client.put(url, headers=ingest.auth(org), json={"columns": "c" * 500_000})
    wrong_types = await ingest.client.put(
        url, headers=ingest.auth(org), json={"columns": [{"index": "i" * 10_000, "field": ["x"] * 1000}] * 50}
    )

    assert "larger than the limit" in refused(too_large, 413)["detail"]
    detail = refused(invalid, 422)["detail"]
    assert detail[0]["loc"] == ["body", "columns"] and len(detail[0]["input"]) <= 101
    assert len(refused(wrong_types, 422)["detail"]) <= 20
    assert (await ingest.get(org, import_id))["status"] == "uploaded"


async def test_an_unknown_import_is_not_found_whatever_its_id_looks_like(ingest: Ingest) -> None:
    org = organizer()
    for import_id in (str(uuid.uuid4()), "x" * 5000, "../../etc/passwd", "%ff%fe"):
        response = await ingest.client.get(f"/v1/imports/{import_id}", headers=ingest.auth(org))
        refused(response, 404)
