"""Fuzzing ingest as a running process (real broker and PostgreSQL): Hypothesis generates hostile uploads, JSON
bodies, mapping bodies and query strings; none may get a 500, and the service must stay healthy and keep
importing. ``EXAMPLES`` examples per endpoint family."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.auth import mint_token
from tests.support.isolation import Isolation
from tests.support.processes import ServiceProcess

pytestmark = pytest.mark.integration

EXAMPLES = 150
FUZZ = settings(
    max_examples=EXAMPLES, deadline=None, derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
ORGANIZER = "org-fuzz"

texts = st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=60)
hostile_texts = st.one_of(
    texts,
    st.sampled_from(["\x00", "%00", "\u202e", "../..", "'; DROP TABLE imports; --", "\ufeff", "A" * 5000, "-1", "1e9",
                     "9" * 40, "NaN", "null", "🙂", "\r\n", "\t"]),
)
json_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), hostile_texts)
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(hostile_texts, children, max_size=4),
    max_leaves=20,
)
contact_keys = st.sampled_from(["email", "first_name", "last_name", "company", "title", "phone", "external_id",
                                "email_permission", "x"])
contacts = st.lists(
    st.one_of(st.dictionaries(contact_keys, json_scalars, max_size=8), json_values), min_size=0, max_size=20
)


@pytest.fixture(scope="module")
def fuzz_isolation(database_url: str, kafka_bootstrap: str) -> Iterator[Isolation]:
    isolated = Isolation(database_url=database_url, kafka_bootstrap=kafka_bootstrap)
    isolated.migrate(("ingest",))
    yield isolated
    isolated.drop_schemas()


@pytest.fixture(scope="module")
async def ingest_url(fuzz_isolation: Isolation, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    env = {**fuzz_isolation.env(), "CONTACTS_INGEST_MAX_UPLOAD_BYTES": str(256 * 1024),
           "CONTACTS_INGEST_MAX_JSON_BYTES": str(256 * 1024), "CONTACTS_INGEST_MAX_JSON_CONTACTS": "50"}
    process = ServiceProcess("ingest", env=env, base_url=fuzz_isolation.base_url("ingest"),
                             log_path=tmp_path_factory.mktemp("logs") / "ingest.log")
    await process.start()
    try:
        yield process.base_url
        assert process.running, f"ingest died during the fuzzing:\n{process.log_tail()}"
    finally:
        await process.stop()


@pytest.fixture(scope="module")
def client(ingest_url: str, fuzz_isolation: Isolation) -> Iterator[httpx.Client]:
    token = mint_token(secret=fuzz_isolation.auth_secret, organizer_id=ORGANIZER, ttl_seconds=3600)
    with httpx.Client(base_url=ingest_url, headers={"Authorization": f"Bearer {token}"}, timeout=30) as http:
        yield http


def no_server_error(response: httpx.Response) -> None:
    assert response.status_code < 500, f"{response.status_code}: {response.text[:300]}"
    assert len(response.content) < 64 * 1024 or response.request.method == "GET"


@pytest.fixture(scope="module")
def uploaded(client: httpx.Client) -> str:
    """An import waiting for its mapping, for the mapping and rows endpoints."""
    response = client.post("/v1/imports", files={"file": ("a.csv", b"email,name\na@example.com,A\n", "text/csv")})
    assert response.status_code == 202, response.text
    return str(response.json()["import_id"])


csv_files = st.one_of(
    st.binary(max_size=3000),
    st.builds(
        lambda rows, delimiter, encoding: "\n".join(delimiter.join(row) for row in rows).encode(encoding, "replace"),
        st.lists(st.lists(hostile_texts, max_size=6), max_size=10),
        st.sampled_from([",", ";", "\t", "|", '"']),
        st.sampled_from(["utf-8", "utf-16", "utf-16-le", "cp1252", "utf-32"]),
    ),
)


@FUZZ
@given(
    content=csv_files, filename=hostile_texts, auto_start=st.booleans(),
    fields=st.dictionaries(hostile_texts.filter(bool), hostile_texts, max_size=3),
)
def test_uploads_never_get_a_500(
    client: httpx.Client, content: bytes, filename: str, auto_start: bool, fields: dict[str, str]
) -> None:
    response = client.post(
        "/v1/imports", params={"auto_start": str(auto_start).lower()}, data=fields or None,
        files={"file": (filename or "x.csv", content, "text/csv")},
    )
    no_server_error(response)
    if response.status_code == 202:
        assert client.get(f"/v1/imports/{response.json()['import_id']}").status_code == 200


@FUZZ
@given(raw=st.binary(max_size=3000), boundary=st.text(alphabet="abcXYZ019-_", min_size=1, max_size=70))
def test_raw_multipart_bodies_never_get_a_500(client: httpx.Client, raw: bytes, boundary: str) -> None:
    body = b"--" + boundary.encode() + b"\r\n" + raw
    response = client.post(
        "/v1/imports", content=body, headers={"Content-Type": f"multipart/form-data; boundary={boundary}"}
    )
    no_server_error(response)


hostile_json = st.one_of(
    st.integers(min_value=0, max_value=100_000).map(lambda depth: b"[" * depth + b"]" * depth),
    st.integers(min_value=1, max_value=20_000).map(
        lambda digits: b'[{"email": "a@b.io", "phone": %s}]' % (b"9" * digits)
    ),
    st.sampled_from([b"[NaN]", b'[{"email": "a@b.io", "phone": -Infinity}]', b'[{"email": "\\ud800"}]',
                     b'[{"email": "a\x00@b.io"}]', b'[{"email": "a@b.io", "title": "\\u0000"}]', b"\xff\xfe[]"]),
)


@FUZZ
@given(body=st.one_of(contacts.map(lambda value: json.dumps(value).encode()), st.binary(max_size=2000),
                      json_values.map(lambda value: json.dumps(value).encode()), hostile_json),
       key=st.one_of(st.none(), st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=300)
                     .filter(lambda key: key == key.strip())))  # what HTTP lets a client send
def test_json_imports_never_get_a_500(client: httpx.Client, body: bytes, key: str | None) -> None:
    headers = {"Content-Type": "application/json"} | ({"Idempotency-Key": key} if key is not None else {})
    response = client.post("/v1/imports", content=body, headers=headers)
    no_server_error(response)


@FUZZ
@given(
    path=st.sampled_from(["", "/{id}", "/{id}/rows", "/{id}/mapping", "/{junk}", "/{junk}/rows", "/{junk}/mapping"]),
    junk=hostile_texts,
    params=st.dictionaries(st.sampled_from(["cursor", "limit", "after", "outcome", "auto_start", "x"]), hostile_texts,
                           max_size=4),
    method=st.sampled_from(["GET", "DELETE", "POST"]),
)
def test_queries_never_get_a_500(
    client: httpx.Client, uploaded: str, path: str, junk: str, params: dict[str, str], method: str
) -> None:
    url = "/v1/imports" + path.format(id=uploaded if "{id}" in path else "", junk=quote(junk, safe=""))
    if method == "DELETE" and "{id}" in path:
        url = url.replace(uploaded, str(uuid.uuid4()))  # keep the import the other examples use
    response = client.request(method if path.count("/") <= 1 else "GET", url, params=params)
    no_server_error(response)


@FUZZ
@given(body=st.one_of(json_values, st.fixed_dictionaries({"columns": json_values}),
                      st.fixed_dictionaries({"columns": st.lists(st.fixed_dictionaries(
                          {"index": st.one_of(st.integers(), json_values), "field": json_values}), max_size=5)})))
def test_mapping_bodies_never_get_a_500(client: httpx.Client, uploaded: str, body: Any) -> None:
    response = client.put(f"/v1/imports/{uploaded}/mapping", content=json.dumps(body).encode(),
                          headers={"Content-Type": "application/json"})
    no_server_error(response)


async def test_after_the_fuzzing_the_service_is_healthy_and_still_imports(
    client: httpx.Client, ingest_url: str, tmp_path: Path
) -> None:
    assert (await asyncio.to_thread(client.get, "/health/live")).status_code == 200
    response = await asyncio.to_thread(
        client.post, "/v1/imports", params={"auto_start": "true"},
        files={"file": ("ok.csv", b"email\nfine@example.com\n", "text/csv")},
    )
    assert response.status_code == 202 and response.json()["status"] == "parsing", response.text
