"""The provider for an external enrichment API, which must never hold the pipeline up: every request has a
timeout, a lookup with its retries a deadline, requests are kept under a rate limit, and after repeated failures
a circuit breaker stops calling for a while (the contacts are asked again later; the offline providers' suggestions
are made meanwhile).

The API it speaks (an adapter's contract; point ``CONTACTS_ENRICHMENT_API_BASE_URL`` at a vendor's, or at a small
service that translates): ``POST /v1/people/lookup`` with ``Authorization: Bearer <key>`` and
``{"emails": ["ada@analytical.example", ...]}``; the answer ``200 {"people": {"<email>": {"<field>": {"value":
"...", "confidence": 0.0-1.0}, ...}, ...}}`` names only the people it knows, fields among first_name, last_name,
company, title, phone (others are ignored). ``429`` (its ``Retry-After`` honoured), ``5xx``, timeouts and
connection errors are retried with exponential backoff; any other status fails the lookup at once."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Sequence
from typing import Annotated

import httpx
import msgspec
import structlog
from aiolimiter import AsyncLimiter

from services.enrichment.config import ExternalApiSettings
from services.enrichment.domain import MAX_VALUE_CHARS, Candidate, Person
from services.enrichment.providers import ProviderUnavailable, Suggested
from shared.events import CONTACT_FIELDS, ContactField

log = structlog.get_logger(__name__)

DEFAULT_CONFIDENCE = 0.8


class CircuitBreaker:
    """Closed, until ``failures_to_open`` consecutive failures open it: for ``open_seconds`` no call is made
    (``check`` raises); then one trial call is let through (half-open), whose success closes it and whose failure
    opens it again."""

    def __init__(self, *, failures_to_open: int, open_seconds: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._failures_to_open = failures_to_open
        self._open_seconds = open_seconds
        self._clock = clock
        self._failures = 0
        self._open_until: float | None = None

    @property
    def state(self) -> str:
        if self._open_until is None:
            return "closed"
        return "open" if self._clock() < self._open_until else "half-open"

    def check(self) -> None:
        if self._open_until is not None and (remaining := self._open_until - self._clock()) > 0:
            raise ProviderUnavailable("circuit open after repeated failures", retry_after=remaining)

    def succeeded(self) -> None:
        self._failures = 0
        self._open_until = None

    def failed(self) -> float:
        """Record a failure; returns how long until the next call is worth trying."""
        self._failures += 1
        if self._open_until is not None or self._failures >= self._failures_to_open:
            self._open_until = self._clock() + self._open_seconds
            return self._open_seconds
        return 0.0


Confidence = Annotated[float, msgspec.Meta(ge=0, le=1)]


class _Value(msgspec.Struct, frozen=True):
    value: str
    confidence: Confidence = DEFAULT_CONFIDENCE


class _Answer(msgspec.Struct, frozen=True):
    people: dict[str, dict[str, _Value | None]] = {}


_answer = msgspec.json.Decoder(_Answer)


class LookupFailed(Exception):
    pass


class ExternalApi:
    name = "external_api"
    fields: frozenset[ContactField] = frozenset(CONTACT_FIELDS)

    def __init__(self, settings: ExternalApiSettings, *, client: httpx.AsyncClient | None = None) -> None:
        if settings.base_url is None:
            raise ValueError("the external enrichment API needs CONTACTS_ENRICHMENT_API_BASE_URL")
        self._settings = settings
        headers = {"Accept": "application/json"}
        if settings.key.get_secret_value():
            headers["Authorization"] = f"Bearer {settings.key.get_secret_value()}"
        self._client = client or httpx.AsyncClient(
            base_url=str(settings.base_url).rstrip("/"), headers=headers,
            timeout=httpx.Timeout(settings.timeout_seconds),
        )
        # no bursts: one request per 1/rate seconds, so no window of a second ever sees more than the rate
        self._limiter = AsyncLimiter(1, 1 / settings.requests_per_second)
        self.breaker = CircuitBreaker(failures_to_open=settings.failures_to_open,
                                      open_seconds=settings.open_seconds)
        self.requests = 0

    async def close(self) -> None:
        await self._client.aclose()

    async def suggest(self, people: Sequence[Person]) -> Suggested:
        """Looks the people up in batches; when a lookup fails for good, ``ProviderUnavailable`` carries what the
        earlier batches answered (``partial``) and for whom (``answered``)."""
        suggested: dict[str, list[Candidate]] = {}
        answered: set[str] = set()
        by_email = {person.email: person for person in people if person.email}
        emails = list(by_email)
        size = self._settings.batch_size
        for start in range(0, len(emails), size):
            chunk = emails[start:start + size]
            try:
                self.breaker.check()
                found = await self._lookup(chunk)
            except ProviderUnavailable as error:
                error.partial, error.answered = suggested, frozenset(answered)
                raise
            except LookupFailed as error:
                retry_after = self.breaker.failed() or self._settings.open_seconds
                log.warning("external_api.lookup_failed", error=str(error), emails=len(chunk),
                            breaker=self.breaker.state, retry_after=retry_after)
                raise ProviderUnavailable(str(error), retry_after=retry_after, partial=suggested,
                                          answered=frozenset(answered)) from error
            self.breaker.succeeded()
            for email in chunk:
                person = by_email[email]
                answered.add(person.contact_id)
                candidates = self._candidates(found.get(email) or {})
                if candidates:
                    suggested[person.contact_id] = candidates
        return suggested

    def _candidates(self, values: dict[str, _Value | None]) -> list[Candidate]:
        candidates = []
        for name in CONTACT_FIELDS:
            given = values.get(name)
            value = given.value.strip() if given is not None else ""
            if value and len(value) <= MAX_VALUE_CHARS and "\x00" not in value:
                candidates.append(Candidate(name, value, given.confidence, self.name))  # type: ignore[union-attr]
        return candidates

    async def _lookup(self, emails: list[str]) -> dict[str, dict[str, _Value | None]]:
        settings = self._settings
        delay = settings.backoff_seconds
        problem = "no attempt made"
        try:
            async with asyncio.timeout(settings.deadline_seconds):
                for attempt in range(1, settings.attempts + 1):
                    wait = delay
                    async with self._limiter:
                        self.requests += 1
                        try:
                            response = await self._client.post("/v1/people/lookup", json={"emails": emails})
                        except httpx.TransportError as error:  # timeouts, refused connections, broken answers
                            response = None
                            problem = f"{type(error).__name__}: {error}".rstrip(": ")
                    if response is not None:
                        if response.status_code == 200:
                            try:
                                return {email.strip().lower(): values
                                        for email, values in _answer.decode(response.content).people.items()}
                            except msgspec.DecodeError as error:
                                problem = f"unreadable answer: {error}"
                        elif response.status_code == 429 or response.status_code >= 500:
                            problem = f"HTTP {response.status_code}"
                            if response.status_code == 429:
                                wait = max(wait, _retry_after(response) or 0.0)
                        else:
                            raise LookupFailed(f"HTTP {response.status_code}: {response.text[:200]}")
                    if attempt < settings.attempts:
                        await asyncio.sleep(min(wait, settings.backoff_max_seconds) * random.uniform(0.9, 1.1))
                        delay *= 2
        except TimeoutError:
            raise LookupFailed(f"no answer within {settings.deadline_seconds} s (last: {problem})") from None
        raise LookupFailed(f"{settings.attempts} attempts failed (last: {problem})")


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After", "").strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        return None
