"""The external enrichment API's provider against a small HTTP server this test starts on loopback: it answers,
is slow, fails, limits the rate; the provider keeps its timeouts, deadline, retries, rate limit and circuit breaker,
and a provider that is down never holds enrichment up: the offline suggestions are made, the contacts stay owed to
the API alone and get its suggestions once it is back."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import uvicorn
from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ops.local_broker import LOOPBACK
from services.enrichment.config import ExternalApiSettings
from services.enrichment.domain import Candidate, Person
from services.enrichment.external_api import ExternalApi
from services.enrichment.providers import ProviderUnavailable
from tests.support.enrichment import created, enrichment_running
from tests.support.isolation import Isolation
from tests.support.ports import free_port
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

KEY = "test-api-key"
KNOWN = {
    "ada.lovelace@analytical.example": {"company": {"value": "Analytical Engines Ltd", "confidence": 0.9},
                                        "title": {"value": "Analyst"}, "linkedin": {"value": "ignored"}},
    "grace@navy.example": {"title": {"value": "Rear Admiral", "confidence": 0.7}},
}


@dataclass
class FakeApi:
    """What the server does: ``delay`` before answering, the statuses of the next answers (``fail_next``), of all
    of them (``always``) or of all from the request numbered ``fail_from`` on, a rate limit of ``limit`` requests
    per ``window`` seconds (429 with ``Retry-After`` beyond it)."""

    delay: float = 0.0
    fail_next: list[int] = field(default_factory=list)
    always: int | None = None
    fail_from: int | None = None
    limit: int | None = None
    window: float = 1.0
    requests: list[tuple[float, int, list[str]]] = field(default_factory=list)  # (time, status, emails)

    async def lookup(self, request: Request) -> Response:
        now = time.monotonic()
        body = await request.json()
        emails: list[str] = body["emails"]
        if request.headers.get("authorization") != f"Bearer {KEY}":
            return self._answer(now, 401, emails, JSONResponse({"error": "bad key"}, 401))
        if self.limit is not None:
            recent = [t for t, status, _ in self.requests if status != 429 and now - t < self.window]
            if len(recent) >= self.limit:
                return self._answer(now, 429, emails, Response(status_code=429,
                                                               headers={"Retry-After": str(self.window)}))
        if self.delay:
            await asyncio.sleep(self.delay)
        status = self.fail_next.pop(0) if self.fail_next else self.always
        if self.fail_from is not None and len(self.requests) >= self.fail_from:
            status = 500
        if status is not None:
            return self._answer(now, status, emails, JSONResponse({"error": "down"}, status))
        people = {email: KNOWN[email] for email in emails if email in KNOWN}
        return self._answer(now, 200, emails, JSONResponse({"people": people}))

    def _answer(self, at: float, status: int, emails: list[str], response: Response) -> Response:
        self.requests.append((at, status, emails))
        return response

    def statuses(self) -> list[int]:
        return [status for _, status, _ in self.requests]


@contextlib.asynccontextmanager
async def serving(fake: FakeApi) -> AsyncIterator[str]:
    port = free_port()
    app = Starlette(routes=[Route("/v1/people/lookup", fake.lookup, methods=["POST"])])
    server = uvicorn.Server(uvicorn.Config(app, host=LOOPBACK, port=port, log_config=None, lifespan="off"))
    task = asyncio.create_task(server.serve())
    await wait_until(lambda: server.started, timeout=10, interval=0.02)
    try:
        yield f"http://{LOOPBACK}:{port}"
    finally:
        server.should_exit = True
        await task


def settings(base_url: str, **overrides: Any) -> ExternalApiSettings:
    values: dict[str, Any] = {"base_url": base_url, "key": SecretStr(KEY), "timeout_seconds": 0.5, "attempts": 3,
                              "backoff_seconds": 0.05, "deadline_seconds": 5, "requests_per_second": 50,
                              "failures_to_open": 2, "open_seconds": 1.0, **overrides}
    return ExternalApiSettings(**values)


def people(*emails: str) -> list[Person]:
    return [Person(contact_id=f"c{n}", version=1, email=email) for n, email in enumerate(emails, start=1)]


@contextlib.asynccontextmanager
async def provider(base_url: str, **overrides: Any) -> AsyncIterator[ExternalApi]:
    api = ExternalApi(settings(base_url, **overrides))
    try:
        yield api
    finally:
        await api.close()


async def test_it_suggests_what_the_api_knows_with_the_apis_confidence() -> None:
    fake = FakeApi()
    async with serving(fake) as url, provider(url, batch_size=2) as api:
        found = await api.suggest(people("ada.lovelace@analytical.example", "bob@gmail.com", "grace@navy.example"))

    assert found == {
        "c1": [Candidate("company", "Analytical Engines Ltd", 0.9, "external_api"),
               Candidate("title", "Analyst", 0.8, "external_api")],
        "c3": [Candidate("title", "Rear Admiral", 0.7, "external_api")],
    }
    assert [emails for _, _, emails in fake.requests] == [
        ["ada.lovelace@analytical.example", "bob@gmail.com"], ["grace@navy.example"]]  # batches, not one by one


async def test_a_failing_api_is_retried_with_backoff_until_it_answers() -> None:
    fake = FakeApi(fail_next=[503, 500])
    async with serving(fake) as url, provider(url, backoff_seconds=0.2) as api:
        found = await api.suggest(people("grace@navy.example"))

    assert found == {"c1": [Candidate("title", "Rear Admiral", 0.7, "external_api")]}
    assert fake.statuses() == [503, 500, 200]
    (first, _, _), (second, _, _), (third, _, _) = fake.requests
    assert second - first >= 0.17 and third - second >= 0.35  # 0.2 s, then 0.4 s (±10% jitter)


async def test_a_slow_api_times_out_within_the_deadline_and_never_holds_the_caller() -> None:
    fake = FakeApi(delay=3.0)
    async with serving(fake) as url, provider(url, timeout_seconds=0.3, deadline_seconds=1.0, attempts=5) as api:
        started = time.monotonic()
        with pytest.raises(ProviderUnavailable, match=r"no answer within 1.0 s \(last: ReadTimeout"):
            await api.suggest(people("grace@navy.example"))
        elapsed = time.monotonic() - started

    assert 0.9 <= elapsed < 1.6
    assert len(fake.requests) >= 2  # retried within the deadline


async def test_repeated_failures_open_the_circuit_and_a_trial_call_closes_it_once_the_api_is_back() -> None:
    fake = FakeApi(always=500)
    async with serving(fake) as url, provider(url, attempts=2, open_seconds=1.0) as api:
        for _ in range(2):
            with pytest.raises(ProviderUnavailable):
                await api.suggest(people("grace@navy.example"))
        calls = len(fake.requests)
        with pytest.raises(ProviderUnavailable, match="circuit open") as refused:
            await api.suggest(people("grace@navy.example"))
        assert len(fake.requests) == calls == 4  # no call while open
        assert 0 < refused.value.retry_after <= 1.0
        fake.always = None
        await asyncio.sleep(1.05)
        found = await api.suggest(people("grace@navy.example"))

    assert found == {"c1": [Candidate("title", "Rear Admiral", 0.7, "external_api")]}
    assert api.breaker.state == "closed"


async def test_a_rate_limited_api_is_kept_under_its_limit_and_its_retry_after_honoured() -> None:
    fake = FakeApi(limit=3, window=1.0)
    emails = [f"person{n}@corp.example" for n in range(6)] + ["grace@navy.example"]
    async with serving(fake) as url:
        async with provider(url, batch_size=1, requests_per_second=2.5) as polite:
            started = time.monotonic()
            found = await polite.suggest(people(*emails))
            polite_seconds = time.monotonic() - started
        polite_statuses = fake.statuses()
        fake.requests.clear()
        async with provider(url, batch_size=1, requests_per_second=100, attempts=4) as eager:
            eager_found = await eager.suggest(people(*emails))

    assert polite_statuses == [200] * 7  # never limited: it keeps under the limit itself
    assert polite_seconds >= 2.0  # 7 requests at 2.5 per second
    assert found == eager_found == {"c7": [Candidate("title", "Rear Admiral", 0.7, "external_api")]}
    statuses = fake.statuses()
    assert 429 in statuses and statuses.count(200) == 7
    for (at, status, _), (next_at, _, _) in zip(fake.requests, fake.requests[1:], strict=False):
        if status == 429:
            assert next_at - at >= 0.9  # waited the Retry-After (1 s, -10% jitter) before trying again


async def test_a_lookup_failing_for_good_reports_what_the_earlier_batches_answered() -> None:
    fake = FakeApi(fail_from=1)  # the first batch is answered, then the API goes down
    async with serving(fake) as url, provider(url, batch_size=1, attempts=2) as api:
        with pytest.raises(ProviderUnavailable) as failed:
            await api.suggest(people("grace@navy.example", "ada.lovelace@analytical.example"))

    assert failed.value.answered == {"c1"}
    assert failed.value.partial == {"c1": [Candidate("title", "Rear Admiral", 0.7, "external_api")]}


async def test_a_refused_key_fails_at_once_without_retrying() -> None:
    fake = FakeApi()
    async with serving(fake) as url, provider(url, key=SecretStr("wrong")) as api:
        with pytest.raises(ProviderUnavailable, match="HTTP 401"):
            await api.suggest(people("grace@navy.example"))

    assert fake.statuses() == [401]


async def test_an_api_that_is_down_never_holds_enrichment_up_and_is_asked_again_once_back(
    isolation: Isolation,
) -> None:
    fake = FakeApi(always=503)
    async with serving(fake) as url:
        api = settings(url, attempts=1, failures_to_open=1, open_seconds=1.5)
        async with enrichment_running(isolation, api=api) as service:
            await service.send(created("c-ada", "ada.lovelace@analytical.example"),
                               created("c-grace", "grace@navy.example"))
            await wait_until(lambda: len(service.suggestions("c-ada")) == 3, timeout=30)
            owed = service.rows("SELECT contact_id, due_sources, due_at > now() FROM contacts ORDER BY 1")
            await service.send(created("c-later", "later@navy.example"))  # the log keeps flowing
            await wait_until(lambda: len(service.rows("SELECT 1 FROM contacts")) == 3, timeout=15)
            fake.always = None
            await wait_until(lambda: ("title", None, "Analyst", "external_api", "pending")
                             in service.suggestions("c-ada"), timeout=30)
            await wait_until(lambda: service.rows("SELECT count(*) FROM contacts WHERE due_at IS NOT NULL")
                             == [(0,)], timeout=30)

    assert owed == [("c-ada", ["external_api"], True), ("c-grace", ["external_api"], True)]
    assert service.suggestions("c-ada") == [
        ("company", None, "Analytical", "email_domain", "withdrawn"),  # the API is surer
        ("company", None, "Analytical Engines Ltd", "external_api", "pending"),
        ("first_name", None, "Ada", "email_name", "pending"),
        ("last_name", None, "Lovelace", "email_name", "pending"),
        ("title", None, "Analyst", "external_api", "pending"),
    ]
    assert service.suggestions("c-grace") == [("company", None, "Navy", "email_domain", "pending"),
                                              ("title", None, "Rear Admiral", "external_api", "pending")]
    asked = [emails for _, status, emails in fake.requests if status == 200]
    assert sorted(email for emails in asked for email in emails) == [
        "ada.lovelace@analytical.example", "grace@navy.example", "later@navy.example"]  # each once, when back
