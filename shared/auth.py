"""Bearer tokens: HS256 JWTs of issuer ``kagibag-contacts`` that speak either for an organizer or for an attendee,
never both.

- An organizer token has an ``organizer_id`` claim, which scopes everything its caller sees and creates, and an
  optional ``sub`` claim naming the person acting for the organizer (recorded as who made a change).
- An attendee token has an ``attendee_email`` claim: the attendee's verified email, normalized (lowercased,
  surrounding whitespace stripped), the way the platform's sign-in hands it over. It reaches only the person's own
  profile and enrichment suggestions.

Each kind of route takes only its kind of token: an attendee token on an organizer route, or an organizer token
on an attendee route, is refused with 403 and says why (``WrongKindOfToken``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import jwt
from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

ALGORITHM = "HS256"
ISSUER = "kagibag-contacts"
ORGANIZER_CLAIM = "organizer_id"
ATTENDEE_CLAIM = "attendee_email"


class InvalidToken(Exception):
    pass


class WrongKindOfToken(InvalidToken):
    """A valid token of the other kind: an attendee's on an organizer route, or an organizer's on an attendee
    route."""


@dataclass(frozen=True)
class Caller:
    """Who a valid token speaks for: the organizer, and the person acting for it when the token names one."""

    organizer_id: str
    user: str | None = None

    @property
    def actor(self) -> str:
        """Who made a change, as recorded: the token's user, else the organizer itself."""
        return self.user if self.user is not None else self.organizer_id


@dataclass(frozen=True)
class Attendee:
    """The person a valid attendee token speaks for, by their verified, normalized email."""

    email: str


def normalize_email(email: str) -> str:
    """The attendee's email as identity keys people: lowercased, surrounding whitespace stripped."""
    return email.strip().lower()


def _is_email(value: str) -> bool:
    local, at, domain = value.rpartition("@")
    return bool(at and local and domain) and not any(character.isspace() for character in value)


def _encode(secret: str, ttl_seconds: int, claims: dict[str, object]) -> str:
    now = datetime.now(UTC)
    return jwt.encode({**claims, "iss": ISSUER, "iat": now, "exp": now + timedelta(seconds=ttl_seconds)}, secret,
                      algorithm=ALGORITHM)


def mint_token(*, secret: str, organizer_id: str, ttl_seconds: int, user: str | None = None) -> str:
    if not organizer_id.strip():
        raise ValueError("organizer_id must not be blank")
    if user is not None and not user.strip():
        raise ValueError("user must not be blank")
    claims: dict[str, object] = {ORGANIZER_CLAIM: organizer_id}
    if user is not None:
        claims["sub"] = user
    return _encode(secret, ttl_seconds, claims)


def mint_attendee_token(*, secret: str, email: str, ttl_seconds: int) -> str:
    """A token for the attendee whose verified email is ``email`` (normalized into the claim)."""
    normalized = normalize_email(email)
    if not _is_email(normalized):
        raise ValueError(f"{email!r} is not an email address")
    return _encode(secret, ttl_seconds, {ATTENDEE_CLAIM: normalized})


def _claims(*, secret: str, token: str) -> dict[str, Any]:
    """The verified claims of a token of either kind; ``InvalidToken`` with the reason otherwise."""
    try:
        claims: dict[str, Any] = jwt.decode(token, secret, algorithms=[ALGORITHM], issuer=ISSUER,
                                            options={"require": ["exp"]})
    except jwt.PyJWTError as error:
        raise InvalidToken(str(error)) from error
    if ORGANIZER_CLAIM in claims and ATTENDEE_CLAIM in claims:
        raise InvalidToken(f"a token speaks for an organizer or an attendee, not both ({ORGANIZER_CLAIM} and "
                           f"{ATTENDEE_CLAIM} claims)")
    if ORGANIZER_CLAIM not in claims and ATTENDEE_CLAIM not in claims:
        raise InvalidToken(f'Token is missing the "{ORGANIZER_CLAIM}" claim (or "{ATTENDEE_CLAIM}" for an attendee)')
    return claims


def caller_of(*, secret: str, token: str) -> Caller:
    """The organizer (and user, when the token has a ``sub``) a valid organizer token speaks for;
    ``WrongKindOfToken`` for an attendee token, ``InvalidToken`` with the reason otherwise."""
    claims = _claims(secret=secret, token=token)
    if ORGANIZER_CLAIM not in claims:
        raise WrongKindOfToken("an attendee token cannot call organizer routes")
    organizer_id = claims[ORGANIZER_CLAIM]
    if not isinstance(organizer_id, str) or not organizer_id.strip():
        raise InvalidToken("organizer_id claim must be a non-blank string")
    user = claims.get("sub")
    if user is not None and (not isinstance(user, str) or not user.strip()):
        raise InvalidToken("sub claim must be a non-blank string when present")
    return Caller(organizer_id=organizer_id, user=user)


def organizer_of(*, secret: str, token: str) -> str:
    """The organizer a valid organizer token speaks for; ``InvalidToken`` with the reason otherwise."""
    return caller_of(secret=secret, token=token).organizer_id


def attendee_of(*, secret: str, token: str) -> Attendee:
    """The attendee a valid attendee token speaks for; ``WrongKindOfToken`` for an organizer token,
    ``InvalidToken`` with the reason otherwise."""
    claims = _claims(secret=secret, token=token)
    if ATTENDEE_CLAIM not in claims:
        raise WrongKindOfToken("an organizer token cannot call attendee routes")
    email = claims[ATTENDEE_CLAIM]
    if not isinstance(email, str) or not _is_email(email) or email != normalize_email(email):
        raise InvalidToken(f"{ATTENDEE_CLAIM} claim must be a normalized email address (lowercase, no spaces)")
    return Attendee(email=email)


_bearer = HTTPBearer(auto_error=False)
_CHALLENGE = {"WWW-Authenticate": "Bearer"}


def _bearer_token(credentials: HTTPAuthorizationCredentials | None) -> str:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "missing bearer token", headers=_CHALLENGE)
    return credentials.credentials


def _refused(error: InvalidToken) -> HTTPException:
    if isinstance(error, WrongKindOfToken):
        return HTTPException(status.HTTP_403_FORBIDDEN, str(error))
    return HTTPException(status.HTTP_401_UNAUTHORIZED, f"invalid token: {error}", headers=_CHALLENGE)


def current_caller(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Caller:
    """FastAPI dependency of organizer routes; the app keeps its secret in ``app.state.auth_secret``."""
    try:
        return caller_of(secret=request.app.state.auth_secret, token=_bearer_token(credentials))
    except InvalidToken as error:
        raise _refused(error) from error


def current_organizer(caller: Annotated[Caller, Depends(current_caller)]) -> str:
    return caller.organizer_id


def current_attendee(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Attendee:
    """FastAPI dependency of attendee routes (``/v1/me/...``)."""
    try:
        return attendee_of(secret=request.app.state.auth_secret, token=_bearer_token(credentials))
    except InvalidToken as error:
        raise _refused(error) from error


OrganizerId = Annotated[str, Depends(current_organizer)]
CurrentCaller = Annotated[Caller, Depends(current_caller)]
CurrentAttendee = Annotated[Attendee, Depends(current_attendee)]
