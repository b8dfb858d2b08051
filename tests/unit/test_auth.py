"""Bearer tokens: minted tokens verify; expired, foreign, tampered and claim-less ones are refused; organizer and
attendee tokens each open only their own kind of route."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import jwt
import pytest
from fastapi import FastAPI

from shared.auth import (
    ALGORITHM,
    ATTENDEE_CLAIM,
    ISSUER,
    Attendee,
    CurrentAttendee,
    InvalidToken,
    OrganizerId,
    WrongKindOfToken,
    attendee_of,
    mint_attendee_token,
    mint_token,
    organizer_of,
)

SECRET = "unit-test-secret-0123456789abcdef0123456789"


def test_a_minted_token_speaks_for_its_organizer() -> None:
    token = mint_token(secret=SECRET, organizer_id="org-1", ttl_seconds=60)

    assert organizer_of(secret=SECRET, token=token) == "org-1"


def test_an_expired_token_is_refused() -> None:
    token = mint_token(secret=SECRET, organizer_id="org-1", ttl_seconds=-1)

    with pytest.raises(InvalidToken, match="expired"):
        organizer_of(secret=SECRET, token=token)


def test_a_token_signed_with_another_secret_is_refused() -> None:
    token = mint_token(secret="another-secret-0123456789abcdef0123456", organizer_id="org-1", ttl_seconds=60)

    with pytest.raises(InvalidToken, match="Signature"):
        organizer_of(secret=SECRET, token=token)


def test_a_tampered_token_is_refused() -> None:
    header, payload, signature = mint_token(secret=SECRET, organizer_id="org-1", ttl_seconds=60).split(".")
    forged = jwt.encode({"organizer_id": "org-2", "iss": ISSUER, "exp": 9999999999}, "x" * 32, ALGORITHM)

    with pytest.raises(InvalidToken):
        organizer_of(secret=SECRET, token=f"{header}.{forged.split('.')[1]}.{signature}")


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"organizer_id": None}, "organizer_id"),
        ({"exp": None}, "exp"),
        ({"organizer_id": "   "}, "non-blank"),
        ({"organizer_id": 42}, "non-blank"),
        ({"iss": "someone-else"}, "issuer"),
    ],
    ids=["missing-organizer", "missing-exp", "blank-organizer", "non-string-organizer", "wrong-issuer"],
)
def test_a_token_without_valid_claims_is_refused(overrides: dict[str, object], reason: str) -> None:
    claims: dict[str, object] = {
        "organizer_id": "org-1", "iss": ISSUER, "exp": datetime.now(UTC) + timedelta(minutes=1), **overrides
    }
    token = jwt.encode({key: value for key, value in claims.items() if value is not None}, SECRET, ALGORITHM)

    with pytest.raises(InvalidToken, match=reason):
        organizer_of(secret=SECRET, token=token)


def test_a_blank_organizer_cannot_be_minted() -> None:
    with pytest.raises(ValueError, match="blank"):
        mint_token(secret=SECRET, organizer_id=" ", ttl_seconds=60)


async def test_the_http_dependency_answers_401_unless_the_bearer_token_is_valid() -> None:
    app = FastAPI()
    app.state.auth_secret = SECRET

    @app.get("/whoami")
    def whoami(organizer_id: OrganizerId) -> dict[str, str]:
        return {"organizer_id": organizer_id}

    token = mint_token(secret=SECRET, organizer_id="org-1", ttl_seconds=60)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
        valid = await client.get("/whoami", headers={"Authorization": f"Bearer {token}"})
        missing = await client.get("/whoami")
        invalid = await client.get("/whoami", headers={"Authorization": "Bearer nonsense"})

    assert valid.json() == {"organizer_id": "org-1"}
    assert missing.status_code == 401
    assert missing.headers["WWW-Authenticate"] == "Bearer"
    assert invalid.status_code == 401


# --- attendee tokens --------------------------------------------------------------------------------------------


def test_an_attendee_token_speaks_for_the_normalized_verified_email() -> None:
    token = mint_attendee_token(secret=SECRET, email=" Ada.Lovelace@Analytical.EXAMPLE ", ttl_seconds=60)

    assert attendee_of(secret=SECRET, token=token) == Attendee(email="ada.lovelace@analytical.example")
    assert jwt.decode(token, SECRET, algorithms=[ALGORITHM], issuer=ISSUER)[ATTENDEE_CLAIM] == (
        "ada.lovelace@analytical.example"
    )


@pytest.mark.parametrize("email", ["", "ada", "@x.org", "ada@", "ada lovelace@x.org"])
def test_an_attendee_token_needs_an_email(email: str) -> None:
    with pytest.raises(ValueError, match="not an email"):
        mint_attendee_token(secret=SECRET, email=email, ttl_seconds=60)


def test_each_kind_of_token_is_refused_where_the_other_kind_belongs() -> None:
    attendee = mint_attendee_token(secret=SECRET, email="ada@x.org", ttl_seconds=60)
    organizer = mint_token(secret=SECRET, organizer_id="org-1", ttl_seconds=60)

    with pytest.raises(WrongKindOfToken, match="attendee token cannot call organizer routes"):
        organizer_of(secret=SECRET, token=attendee)
    with pytest.raises(WrongKindOfToken, match="organizer token cannot call attendee routes"):
        attendee_of(secret=SECRET, token=organizer)


@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        ({"organizer_id": "org-1", "attendee_email": "ada@x.org"}, "not both"),
        ({"attendee_email": "Ada@X.org"}, "normalized"),
        ({"attendee_email": 42}, "normalized"),
        ({"attendee_email": "nobody"}, "normalized"),
        ({}, "missing"),
    ],
    ids=["both-kinds", "not-normalized", "not-a-string", "not-an-email", "neither"],
)
def test_an_attendee_token_without_valid_claims_is_refused(claims: dict[str, object], reason: str) -> None:
    token = jwt.encode({**claims, "iss": ISSUER, "exp": datetime.now(UTC) + timedelta(minutes=1)}, SECRET, ALGORITHM)

    with pytest.raises(InvalidToken, match=reason):
        attendee_of(secret=SECRET, token=token)


async def test_the_http_dependencies_answer_403_to_the_other_kind_of_token() -> None:
    app = FastAPI()
    app.state.auth_secret = SECRET

    @app.get("/organizer")
    def organizer_route(organizer_id: OrganizerId) -> dict[str, str]:
        return {"organizer_id": organizer_id}

    @app.get("/me")
    def attendee_route(attendee: CurrentAttendee) -> dict[str, str]:
        return {"email": attendee.email}

    attendee = {"Authorization": f"Bearer {mint_attendee_token(secret=SECRET, email='ada@x.org', ttl_seconds=60)}"}
    organizer = {"Authorization": f"Bearer {mint_token(secret=SECRET, organizer_id='org-1', ttl_seconds=60)}"}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
        assert (await client.get("/me", headers=attendee)).json() == {"email": "ada@x.org"}
        assert (await client.get("/organizer", headers=organizer)).json() == {"organizer_id": "org-1"}
        wrong_way = await client.get("/organizer", headers=attendee)
        other_way = await client.get("/me", headers=organizer)
        missing = await client.get("/me")

    assert (wrong_way.status_code, wrong_way.json()) == (403, {"detail": "an attendee token cannot call organizer "
                                                                          "routes"})
    assert (other_way.status_code, other_way.json()) == (403, {"detail": "an organizer token cannot call attendee "
                                                                          "routes"})
    assert missing.status_code == 401
