"""The contacts API's request rules, answered before any query runs (reads and changes are covered by the
integration tests against PostgreSQL), and the token's optional actor claim."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import jwt
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import create_async_engine

from services.profiles.api import contacts_router
from services.profiles.contact_lists import decode_position, encode_position
from services.profiles.organizer_feed import Feed
from services.profiles.queries import Position
from shared.auth import ALGORITHM, ISSUER, Caller, InvalidToken, caller_of, mint_token, organizer_of

SECRET = "unit-test-secret-0123456789abcdef0123456789"


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    engine = create_async_engine("postgresql+psycopg://nobody@127.0.0.1:1/none")  # never connected to
    app = FastAPI()
    app.state.auth_secret = SECRET
    app.include_router(contacts_router(engine, feed=Feed(topic="contacts.organizer-contacts.v1", channel="unused")))
    token = mint_token(secret=SECRET, organizer_id="org-a", ttl_seconds=60)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://profiles",
        headers={"Authorization": f"Bearer {token}"},
    ) as client:
        yield client
    await engine.dispose()


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/v1/contacts?email=a@x.io"), ("GET", "/v1/contacts/c1"), ("PATCH", "/v1/contacts/c1"),
     ("GET", "/v1/insights/most-engaged"), ("GET", "/v1/contacts/c1/changes")],
)
async def test_a_request_without_a_valid_token_is_unauthorized(
    client: httpx.AsyncClient, method: str, path: str
) -> None:
    body = {"notes": "x"} if method == "PATCH" else None
    assert (await client.request(method, path, json=body, headers={"Authorization": ""})).status_code == 401
    assert (await client.request(method, path, json=body, headers={"Authorization": "Bearer x"})).status_code == 401
    other = mint_token(secret="another-secret-0123456789abcdef012345", organizer_id="org-a", ttl_seconds=60)
    response = await client.request(method, path, json=body, headers={"Authorization": f"Bearer {other}"})
    assert response.status_code == 401


ID_CURSOR = encode_position(Position("id", "c1"))
ENGAGEMENT_CURSOR = encode_position(Position("engagement", "c1", 2, 3, None))


@pytest.mark.parametrize(
    ("query", "parameter"),
    [("email=a@x.io&q=an", "q"), ("email=%20%20", "email"), ("q=%20", "q"), ("limit=0", "limit"),
     ("limit=201", "limit"), ("limit=ten", "limit"), ("cursor=%%%", "cursor"), ("cursor=_w", "cursor"),
     ("cursor=WyJpZCJd", "cursor"),  # ["id"]: decodes, but names no position
     (f"cursor={ENGAGEMENT_CURSOR}", "cursor"),  # a cursor of another sort order
     (f"sort=engagement&cursor={ID_CURSOR}", "cursor"),
     ("sort=newest", "sort"), ("permission=maybe", "permission"), ("tag=vip&tag=%20", "tag"),
     ("tag=" + "x" * 51, "tag"), ("company=%20", "company"), ("min_events_attended=-1", "min_events_attended"),
     ("min_events_attended=many", "min_events_attended"), ("last_active_after=yesterday", "last_active_after"),
     ("last_active_after=2026-03-01T00:00:00", "last_active_after"),  # no time zone
     ("last_active_after=2026-03-02T00:00:00Z&last_active_before=2026-03-01T00:00:00Z", "last_active_before")],
)
async def test_bad_parameters_are_a_422_naming_the_parameter(
    client: httpx.AsyncClient, query: str, parameter: str
) -> None:
    response = await client.get(f"/v1/contacts?{query}")

    assert response.status_code == 422, response.text
    assert [error["loc"] for error in response.json()["detail"]] == [["query", parameter]]


@pytest.mark.parametrize("query", ["cursor=%%%", f"cursor={ID_CURSOR}", "limit=0", "limit=201"])
async def test_bad_change_history_parameters_are_a_422(client: httpx.AsyncClient, query: str) -> None:
    response = await client.get(f"/v1/contacts/c1/changes?{query}")

    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"][0] == "query"


async def test_too_many_tag_filters_is_a_422(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/contacts", params=[("tag", f"t{i}") for i in range(21)])

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", "tag"]


@pytest.mark.parametrize(
    ("body", "location"),
    [({}, ["body"]), ({"tags": {"add": ["  "]}}, ["body", "tags", "add", 0]), ({"colour": "red"}, ["body", "colour"]),
     ({"email_permission": "maybe"}, ["body", "email_permission"]), ({"notes": 5}, ["body", "notes"])],
)
async def test_a_bad_patch_body_is_a_422_in_fastapis_shape(
    client: httpx.AsyncClient, body: dict[str, object], location: list[object]
) -> None:
    response = await client.patch("/v1/contacts/c1", json=body)

    assert response.status_code == 422, response.text
    assert [error["loc"] for error in response.json()["detail"]] == [location]


async def test_a_malformed_if_match_is_a_422(client: httpx.AsyncClient) -> None:
    response = await client.patch("/v1/contacts/c1", json={"notes": "x"}, headers={"If-Match": "yesterday"})

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["header", "if-match"]


@pytest.mark.parametrize(
    "position",
    [Position("id", "0b9d4c1e-6f0a-4a43-9d55-1f0c2b3a4d5e"), Position("id", "zoë/…"),
     Position("engagement", "c1", 3, 0, datetime(2026, 3, 1, 12, tzinfo=UTC)), Position("engagement", "c2", 0, 0)],
)
def test_a_cursor_is_opaque_and_round_trips(position: Position) -> None:
    cursor = encode_position(position)

    assert position.contact_id not in cursor and "=" not in cursor
    assert decode_position(cursor, position.sort) == position


def test_a_token_may_name_the_user_acting_for_the_organizer() -> None:
    with_user = mint_token(secret=SECRET, organizer_id="org-a", ttl_seconds=60, user="alice@org-a")
    without = mint_token(secret=SECRET, organizer_id="org-a", ttl_seconds=60)

    assert caller_of(secret=SECRET, token=with_user) == Caller("org-a", "alice@org-a")
    assert caller_of(secret=SECRET, token=with_user).actor == "alice@org-a"
    assert caller_of(secret=SECRET, token=without).actor == "org-a"
    assert organizer_of(secret=SECRET, token=with_user) == "org-a"


def test_a_blank_or_non_string_user_is_refused() -> None:
    with pytest.raises(ValueError, match="blank"):
        mint_token(secret=SECRET, organizer_id="org-a", ttl_seconds=60, user=" ")
    for sub in (" ", 42):
        token = jwt.encode({"organizer_id": "org-a", "iss": ISSUER, "exp": 9_999_999_999, "sub": sub}, SECRET,
                           ALGORITHM)
        with pytest.raises(InvalidToken):
            caller_of(secret=SECRET, token=token)
