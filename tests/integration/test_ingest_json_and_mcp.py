"""JSON imports and the MCP tools against the real ingest and identity services (processes on Tansu and
PostgreSQL): rows go through exactly as from a CSV, bad elements become error rows, limits and Idempotency-Key
hold, and the SDK's own clients reach the tools over streamable HTTP and over stdio (``contacts mcp``)."""

from __future__ import annotations

import asyncio
import json
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import httpx2
import pytest
from fastapi import HTTPException
from mcp import ClientSession, StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from starlette.requests import Request

from services.ingest.intake.json_imports import read_body
from shared import topics
from shared.auth import mint_token
from shared.events import ImportRowReceivedV1
from tests.support.isolation import Isolation
from tests.support.kafka import import_row_events
from tests.support.processes import CHECKOUT, ServiceProcess
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

MAX_CONTACTS = 50
MAX_BYTES = 64 * 1024
CONTACTS_CLI = str(Path(sys.executable).parent / "contacts")


class Stack:
    """ingest and identity running as processes in one isolation; tests keep apart by organizer and email."""

    def __init__(self, isolation: Isolation, ingest: ServiceProcess) -> None:
        self.isolation = isolation
        self.url = ingest.base_url

    def token(self, organizer: str) -> str:
        return mint_token(secret=self.isolation.auth_secret, organizer_id=organizer, ttl_seconds=600)

    def auth(self, organizer: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(organizer)}"}

    async def post_json(
        self, organizer: str, body: Any, *, key: str | None = None, raw: bytes | None = None
    ) -> httpx.Response:
        headers = {**self.auth(organizer), "Content-Type": "application/json"}
        if key is not None:
            headers["Idempotency-Key"] = key
        content = raw if raw is not None else json.dumps(body).encode()
        async with httpx.AsyncClient(base_url=self.url, timeout=30) as client:
            return await client.post("/v1/imports", headers=headers, content=content)

    async def get(self, organizer: str, path: str, **params: Any) -> httpx.Response:
        async with httpx.AsyncClient(base_url=self.url, timeout=30) as client:
            return await client.get(path, headers=self.auth(organizer), params=params)

    async def finished(self, organizer: str, import_id: str) -> dict[str, Any]:
        async def done() -> dict[str, Any] | None:
            view = (await self.get(organizer, f"/v1/imports/{import_id}")).json()
            return view if view["status"] in ("processed", "error") else None

        return await wait_until(done, timeout=90, description=f"import {import_id} to finish")

    async def imports_of(self, organizer: str) -> list[dict[str, Any]]:
        response = await self.get(organizer, "/v1/imports")
        assert response.status_code == 200, response.text
        return list(response.json()["items"])

    async def row_events(self, import_id: str, count: int) -> list[ImportRowReceivedV1]:
        topic = self.isolation.topic(topics.IMPORT_ROWS)
        return await import_row_events(self.isolation.kafka_bootstrap, topic, import_id, count)


@pytest.fixture(scope="module")
def stack_isolation(database_url: str, kafka_bootstrap: str) -> Iterator[Isolation]:
    isolated = Isolation(database_url=database_url, kafka_bootstrap=kafka_bootstrap)
    isolated.migrate(("ingest", "identity"))
    yield isolated
    isolated.drop_schemas()


@pytest.fixture(scope="module")
async def stack(stack_isolation: Isolation, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    logs = tmp_path_factory.mktemp("logs")
    env = {
        **stack_isolation.env(),
        "CONTACTS_INGEST_MAX_JSON_CONTACTS": str(MAX_CONTACTS),
        "CONTACTS_INGEST_MAX_JSON_BYTES": str(MAX_BYTES),
    }
    processes = [
        ServiceProcess(service, env=env, base_url=stack_isolation.base_url(service), log_path=logs / f"{service}.log")
        for service in ("ingest", "identity")
    ]
    try:
        await asyncio.gather(*(process.start() for process in processes))
        yield Stack(stack_isolation, processes[0])
    finally:
        await asyncio.gather(*(process.stop() for process in processes), return_exceptions=True)


def organizer() -> str:
    return f"org-{uuid.uuid4().hex[:8]}"


def domain() -> str:
    """A fresh email domain per test: identity resolves people across the whole isolation."""
    return f"{uuid.uuid4().hex[:8]}.example.com"


# --- the REST API -------------------------------------------------------------------------------------------


async def test_a_json_import_is_processed_like_a_csv_and_bad_elements_become_error_rows(stack: Stack) -> None:
    org, at = organizer(), domain()
    contacts: list[Any] = [
        {"email": f"ada@{at}", "first_name": "Ada", "last_name": "Lovelace", "company": "Analytical Engines",
         "title": "Countess", "phone": 4930123456, "external_id": 17, "email_permission": "subscribed",
         "shoe_size": 38},
        "grace@example.com",
        {"email": "not-an-email", "first_name": "Nobody"},
        {"email": f"  ADA@{at.upper()} ", "title": "Analyst"},
        {"email": f"grace@{at}", "phone": {"home": "1"}},
        {"email": f"grace@{at}", "first_name": "Grace", "email_permission": "unsubscribed"},
        {"first_name": "No email"},
    ]
    response = await stack.post_json(org, contacts)
    assert response.status_code == 202, response.text
    assert "Idempotent-Replayed" not in response.headers
    import_id = response.json()["import_id"]
    assert response.json()["status"] == "parsing"

    summary = await stack.finished(org, import_id)
    assert (summary["status"], summary["source"], summary["total_rows"], summary["processed_rows"]) == (
        "error", "json", 7, 7,
    )
    assert (summary["created"], summary["matched"], summary["errors"]) == (2, 1, 4)

    events = await stack.row_events(import_id, 3)
    assert [e.row_number for e in events] == [1, 4, 6]
    ada = events[0]
    assert (ada.email, ada.first_name, ada.last_name, ada.company, ada.title) == (
        f"ada@{at}", "Ada", "Lovelace", "Analytical Engines", "Countess",
    )
    assert (ada.phone, ada.external_id, ada.email_permission) == ("4930123456", "17", "subscribed")
    assert (events[1].email, events[1].title, events[1].email_permission) == (f"  ADA@{at.upper()} ", "Analyst", None)
    assert (events[2].first_name, events[2].email_permission) == ("Grace", "unsubscribed")

    errors = (await stack.get(org, f"/v1/imports/{import_id}/rows", outcome="error")).json()["items"]
    by_row = {row["row_number"]: row for row in errors}
    assert {n: row["error_code"] for n, row in by_row.items()} == {
        2: "NOT_AN_OBJECT", 3: "INVALID_EMAIL", 5: "INVALID_VALUE", 7: "MISSING_EMAIL",
    }
    assert by_row[2]["cells"] == ['"grace@example.com"']
    assert "not a contact object" in by_row[2]["error_message"]
    assert "'phone' is an object" in by_row[5]["error_message"]
    assert by_row[3]["cells"][:2] == ["not-an-email", "Nobody"]
    done = (await stack.get(org, f"/v1/imports/{import_id}/rows")).json()["items"]
    assert [(row["row_number"], row["outcome"]) for row in done if row["outcome"] != "error"] == [
        (1, "created"), (4, "matched"), (6, "created"),
    ]


@pytest.mark.parametrize(
    ("raw", "status", "message"),
    [
        (b'{"email": "a@example.com"}', 422, "expected a JSON array of contact objects"),
        (b"[]", 422, "the array is empty"),
        (b'[{"email": ', 422, "not valid JSON"),
        (json.dumps([{"email": f"p{i}@example.com"} for i in range(MAX_CONTACTS + 1)]).encode(), 413,
         f"{MAX_CONTACTS + 1} contacts; at most {MAX_CONTACTS} per request"),
        (json.dumps([{"email": "a@example.com", "title": "x" * MAX_BYTES}]).encode(), 413,
         f"larger than the limit of {MAX_BYTES:,} bytes"),
    ],
    ids=["object", "empty", "malformed", "too-many", "too-large"],
)
async def test_a_request_that_cannot_be_imported_is_refused_and_creates_nothing(
    stack: Stack, raw: bytes, status: int, message: str
) -> None:
    org = organizer()
    response = await stack.post_json(org, None, raw=raw)
    assert response.status_code == status, response.text
    assert message in response.json()["detail"]
    assert await stack.imports_of(org) == []


async def test_an_oversized_body_without_a_length_is_refused_too(stack: Stack) -> None:
    org = organizer()

    async def chunks() -> AsyncIterator[bytes]:  # chunked: no Content-Length to refuse up front
        yield b'[{"email": "a@example.com", "title": "'
        for _ in range(MAX_BYTES // 1024 + 1):
            yield b"x" * 1024
        yield b'"}]'

    headers = {**stack.auth(org), "Content-Type": "application/json"}
    async with httpx.AsyncClient(base_url=stack.url, timeout=30) as client:
        response = await client.post("/v1/imports", headers=headers, content=chunks())
    assert response.status_code == 413, response.text
    assert "larger than the limit" in response.json()["detail"]
    assert await stack.imports_of(org) == []


async def test_the_byte_cap_stops_reading_the_body_as_soon_as_it_is_exceeded() -> None:
    delivered = 0

    async def receive() -> dict[str, Any]:
        nonlocal delivered
        delivered += 1
        return {"type": "http.request", "body": b"x" * 1024, "more_body": delivered < 10_000}

    request = Request({"type": "http", "method": "POST", "headers": []}, receive)
    with pytest.raises(HTTPException) as refused:
        await read_body(request, max_bytes=4096)
    assert refused.value.status_code == 413
    assert delivered == 5, "one chunk beyond the cap, not the 10 MB on offer"


# --- Idempotency-Key ----------------------------------------------------------------------------------------


async def test_a_retry_with_the_same_key_returns_the_same_import(stack: Stack) -> None:
    org, other, at = organizer(), organizer(), domain()
    contacts = [{"email": f"retry@{at}", "first_name": "Rita"}]

    first = await stack.post_json(org, contacts, key="order-42")
    again = await stack.post_json(org, contacts, key="order-42")
    assert first.status_code == again.status_code == 202, again.text
    assert again.json()["import_id"] == first.json()["import_id"]
    assert again.headers["Idempotent-Replayed"] == "true"
    assert len(await stack.imports_of(org)) == 1

    changed = await stack.post_json(org, [{"email": f"someone-else@{at}"}], key="order-42")
    assert changed.status_code == 422
    assert "already used for a different request" in changed.json()["detail"]
    assert first.json()["import_id"] in changed.json()["detail"]

    theirs = await stack.post_json(other, contacts, key="order-42")
    assert theirs.status_code == 202 and "Idempotent-Replayed" not in theirs.headers
    assert theirs.json()["import_id"] != first.json()["import_id"]

    summary = await stack.finished(org, first.json()["import_id"])
    assert (summary["total_rows"], summary["created"] + summary["matched"]) == (1, 1)
    replayed = await stack.post_json(org, contacts, key="order-42")
    assert replayed.json() == {"import_id": first.json()["import_id"], "status": "processed"}


async def test_concurrent_requests_with_the_same_key_create_one_import(stack: Stack) -> None:
    org, at = organizer(), domain()
    contacts = [{"email": f"racer{i}@{at}"} for i in range(MAX_CONTACTS)]
    responses = await asyncio.gather(*(stack.post_json(org, contacts, key="race") for _ in range(6)))
    assert {r.status_code for r in responses} == {202}
    assert len({r.json()["import_id"] for r in responses}) == 1
    assert sorted(r.headers.get("Idempotent-Replayed", "false") for r in responses) == ["false"] + ["true"] * 5
    imports = await stack.imports_of(org)
    assert [i["import_id"] for i in imports] == [responses[0].json()["import_id"]]
    summary = await stack.finished(org, imports[0]["import_id"])
    assert (summary["total_rows"], summary["created"]) == (MAX_CONTACTS, MAX_CONTACTS)


# --- MCP ----------------------------------------------------------------------------------------------------


@asynccontextmanager
async def http_session(stack: Stack, organizer_id: str) -> AsyncIterator[ClientSession]:
    client = httpx2.AsyncClient(headers=stack.auth(organizer_id), timeout=30)
    async with (
        client,
        streamable_http_client(f"{stack.url}/mcp/", http_client=client) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        yield session


@asynccontextmanager
async def stdio_session(stack: Stack, organizer_id: str) -> AsyncIterator[ClientSession]:
    params = StdioServerParameters(
        command=CONTACTS_CLI, args=["mcp", "--url", stack.url], env={"CONTACTS_TOKEN": stack.token(organizer_id)},
        cwd=CHECKOUT,
    )
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        yield session


async def import_and_follow(session: ClientSession, contacts: list[Any]) -> tuple[str, dict[str, Any]]:
    result = await session.call_tool("import_contacts", {"contacts": contacts})
    assert not result.is_error, result.content
    started = result.structured_content
    assert started["status"] in ("parsing", "processing", "processed"), started
    import_id = str(started["import_id"])

    async def finished() -> dict[str, Any] | None:
        status = await session.call_tool("check_import_status", {"import_id": import_id})
        assert not status.is_error, status.content
        view = dict(status.structured_content)
        return view if view["status"] in ("processed", "error") else None

    return import_id, await wait_until(finished, timeout=90, description=f"import {import_id} over MCP")


def error_text(result: Any) -> str:
    return " ".join(getattr(block, "text", "") for block in result.content)


@pytest.mark.parametrize("transport", ["streamable-http", "stdio"])
async def test_the_mcp_tools_import_and_report_scoped_to_the_token(stack: Stack, transport: str) -> None:
    org, other, at = organizer(), organizer(), domain()
    connect = http_session if transport == "streamable-http" else stdio_session
    contacts = [
        {"email": f"mia@{at}", "first_name": "Mia", "phone": 123},
        {"email": f"MIA@{at}", "title": "Engineer"},
        {"email": f"leo@{at}", "company": "Acme"},
    ]
    async with connect(stack, org) as session:
        tools = {tool.name: tool for tool in (await session.list_tools()).tools}
        assert sorted(tools) == ["check_import_status", "import_contacts"]
        assert "contacts" in tools["import_contacts"].input_schema["properties"]

        import_id, status = await import_and_follow(session, contacts)
        assert {key: status[key] for key in ("status", "total_rows", "processed_rows", "created", "matched",
                                              "errors", "error")} == {
            "status": "processed", "total_rows": 3, "processed_rows": 3, "created": 2, "matched": 1, "errors": 0,
            "error": None,
        }
        view = (await stack.get(org, f"/v1/imports/{import_id}")).json()
        assert view["source"] == "mcp"

        missing = await session.call_tool("check_import_status", {"import_id": str(uuid.uuid4())})
        assert missing.is_error and "no import" in error_text(missing)
        refused = await session.call_tool("import_contacts", {"contacts": []})
        assert refused.is_error and "the array is empty" in error_text(refused)

    async with connect(stack, other) as session:
        theirs = await session.call_tool("check_import_status", {"import_id": import_id})
        assert theirs.is_error and f"no import {import_id}" in error_text(theirs)


async def test_mcp_over_http_is_refused_without_a_valid_token(stack: Stack) -> None:
    initialize = {
        "jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                   "clientInfo": {"name": "test", "version": "0"}},
    }
    headers = {"Accept": "application/json, text/event-stream"}
    forged = mint_token(secret="another-secret-entirely-0123456789abcdef", organizer_id="x", ttl_seconds=60)
    async with httpx.AsyncClient(base_url=stack.url, timeout=30) as client:
        missing = await client.post("/mcp/", json=initialize, headers=headers)
        invalid = await client.post("/mcp/", json=initialize, headers={**headers, "Authorization": f"Bearer {forged}"})
        valid = await client.post("/mcp/", json=initialize, headers={**headers, **stack.auth(organizer())})
    assert (missing.status_code, missing.headers["WWW-Authenticate"]) == (401, "Bearer")
    assert missing.json()["detail"] == "missing bearer token"
    assert invalid.status_code == 401 and invalid.json()["detail"].startswith("invalid token")
    assert valid.status_code == 200, valid.text

    # over stdio the token travels with every call the tools make to the service
    params = StdioServerParameters(
        command=CONTACTS_CLI, args=["mcp", "--url", stack.url], env={"CONTACTS_TOKEN": forged}, cwd=CHECKOUT
    )
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        result = await session.call_tool("check_import_status", {"import_id": str(uuid.uuid4())})
    assert result.is_error and "refused the request (401)" in error_text(result)
