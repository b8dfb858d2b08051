"""The contacts API's request rules, answered before any query runs (reads are covered by the integration
tests against PostgreSQL)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import create_async_engine

from services.profiles.api import _decode_cursor, _encode_cursor, contacts_router
from shared.auth import mint_token

SECRET = "unit-test-secret-0123456789abcdef0123456789"


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    engine = create_async_engine("postgresql+psycopg://nobody@127.0.0.1:1/none")  # never connected to
    app = FastAPI()
    app.state.auth_secret = SECRET
    app.include_router(contacts_router(engine))
    token = mint_token(secret=SECRET, organizer_id="org-a", ttl_seconds=60)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://profiles",
        headers={"Authorization": f"Bearer {token}"},
    ) as client:
        yield client
    await engine.dispose()


@pytest.mark.parametrize("path", ["/v1/contacts?email=a@x.io", "/v1/contacts/c1"])
async def test_a_request_without_a_valid_token_is_unauthorized(client: httpx.AsyncClient, path: str) -> None:
    assert (await client.get(path, headers={"Authorization": ""})).status_code == 401
    assert (await client.get(path, headers={"Authorization": "Bearer nonsense"})).status_code == 401
    other = mint_token(secret="another-secret-0123456789abcdef012345", organizer_id="org-a", ttl_seconds=60)
    assert (await client.get(path, headers={"Authorization": f"Bearer {other}"})).status_code == 401


@pytest.mark.parametrize(
    ("query", "parameter"),
    [("email=a@x.io&q=an", "q"), ("email=%20%20", "email"), ("q=%20", "q"), ("limit=0", "limit"),
     ("limit=201", "limit"), ("limit=ten", "limit"), ("cursor=%%%", "cursor"), ("cursor=_w", "cursor")],
)
async def test_bad_parameters_are_a_422_naming_the_parameter(
    client: httpx.AsyncClient, query: str, parameter: str
) -> None:
    response = await client.get(f"/v1/contacts?{query}")

    assert response.status_code == 422, response.text
    assert [error["loc"] for error in response.json()["detail"]] == [["query", parameter]]


@pytest.mark.parametrize("contact_id", ["0b9d4c1e-6f0a-4a43-9d55-1f0c2b3a4d5e", "c1", "zoë/…"])
def test_a_cursor_is_opaque_and_round_trips(contact_id: str) -> None:
    cursor = _encode_cursor(contact_id)

    assert contact_id not in cursor and "=" not in cursor
    assert _decode_cursor(cursor) == contact_id
