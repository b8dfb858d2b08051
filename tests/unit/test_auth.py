"""Bearer tokens: minted tokens verify; expired, foreign, tampered and claim-less ones are refused."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import jwt
import pytest
from fastapi import FastAPI

from shared.auth import ALGORITHM, ISSUER, InvalidToken, OrganizerId, mint_token, organizer_of

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
