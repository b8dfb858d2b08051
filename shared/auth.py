"""Bearer tokens: HS256 JWTs whose ``organizer_id`` claim scopes everything a caller sees and creates, and whose
optional ``sub`` claim names the person acting for the organizer (recorded as who made a change)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated

import jwt
from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

ALGORITHM = "HS256"
ISSUER = "kagibag-contacts"


class InvalidToken(Exception):
    pass


@dataclass(frozen=True)
class Caller:
    """Who a valid token speaks for: the organizer, and the person acting for it when the token names one."""

    organizer_id: str
    user: str | None = None

    @property
    def actor(self) -> str:
        """Who made a change, as recorded: the token's user, else the organizer itself."""
        return self.user if self.user is not None else self.organizer_id


def mint_token(*, secret: str, organizer_id: str, ttl_seconds: int, user: str | None = None) -> str:
    if not organizer_id.strip():
        raise ValueError("organizer_id must not be blank")
    if user is not None and not user.strip():
        raise ValueError("user must not be blank")
    now = datetime.now(UTC)
    claims: dict[str, object] = {
        "organizer_id": organizer_id,
        "iss": ISSUER,
        "iat": now,
        "exp": now + timedelta(seconds=ttl_seconds),
    }
    if user is not None:
        claims["sub"] = user
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def caller_of(*, secret: str, token: str) -> Caller:
    """The organizer (and user, when the token has a ``sub``) a valid token speaks for; ``InvalidToken`` with
    the reason otherwise. Tokens without ``sub`` stay valid."""
    try:
        claims = jwt.decode(
            token, secret, algorithms=[ALGORITHM], issuer=ISSUER, options={"require": ["exp", "organizer_id"]}
        )
    except jwt.PyJWTError as error:
        raise InvalidToken(str(error)) from error
    organizer_id = claims.get("organizer_id")
    if not isinstance(organizer_id, str) or not organizer_id.strip():
        raise InvalidToken("organizer_id claim must be a non-blank string")
    user = claims.get("sub")
    if user is not None and (not isinstance(user, str) or not user.strip()):
        raise InvalidToken("sub claim must be a non-blank string when present")
    return Caller(organizer_id=organizer_id, user=user)


def organizer_of(*, secret: str, token: str) -> str:
    """The organizer a valid token speaks for; ``InvalidToken`` with the reason otherwise."""
    return caller_of(secret=secret, token=token).organizer_id


_bearer = HTTPBearer(auto_error=False)


def current_caller(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Caller:
    """FastAPI dependency; the app keeps its secret in ``app.state.auth_secret``."""
    challenge = {"WWW-Authenticate": "Bearer"}
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "missing bearer token", headers=challenge)
    try:
        return caller_of(secret=request.app.state.auth_secret, token=credentials.credentials)
    except InvalidToken as error:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, f"invalid token: {error}", headers=challenge) from error


def current_organizer(caller: Annotated[Caller, Depends(current_caller)]) -> str:
    return caller.organizer_id


OrganizerId = Annotated[str, Depends(current_organizer)]
CurrentCaller = Annotated[Caller, Depends(current_caller)]
