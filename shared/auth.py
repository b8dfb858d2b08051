"""Bearer tokens: HS256 JWTs whose ``organizer_id`` claim scopes everything a caller sees and creates."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

import jwt
from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

ALGORITHM = "HS256"
ISSUER = "kagibag-contacts"


class InvalidToken(Exception):
    pass


def mint_token(*, secret: str, organizer_id: str, ttl_seconds: int) -> str:
    if not organizer_id.strip():
        raise ValueError("organizer_id must not be blank")
    now = datetime.now(UTC)
    claims = {
        "organizer_id": organizer_id,
        "iss": ISSUER,
        "iat": now,
        "exp": now + timedelta(seconds=ttl_seconds),
    }
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def organizer_of(*, secret: str, token: str) -> str:
    """The organizer a valid token speaks for; ``InvalidToken`` with the reason otherwise."""
    try:
        claims = jwt.decode(
            token, secret, algorithms=[ALGORITHM], issuer=ISSUER, options={"require": ["exp", "organizer_id"]}
        )
    except jwt.PyJWTError as error:
        raise InvalidToken(str(error)) from error
    organizer_id = claims.get("organizer_id")
    if not isinstance(organizer_id, str) or not organizer_id.strip():
        raise InvalidToken("organizer_id claim must be a non-blank string")
    return organizer_id


_bearer = HTTPBearer(auto_error=False)


def current_organizer(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> str:
    """FastAPI dependency; the app keeps its secret in ``app.state.auth_secret``."""
    challenge = {"WWW-Authenticate": "Bearer"}
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "missing bearer token", headers=challenge)
    try:
        return organizer_of(secret=request.app.state.auth_secret, token=credentials.credentials)
    except InvalidToken as error:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, f"invalid token: {error}", headers=challenge) from error


OrganizerId = Annotated[str, Depends(current_organizer)]
