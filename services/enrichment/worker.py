"""The paced background worker: runs the providers for the contacts the consumer marked due, in batches, behind
the contact log and never in its way.

Each turn takes up to ``batch_size`` due contacts (one read), runs every provider over the whole batch (outside
any transaction: an external API may take seconds), then in one short transaction records the runs, reconciles
the suggestions and puts one ``EnrichmentSuggestedV1`` per changed contact into one outbox row. A contact the
person changed meanwhile is due again and keeps its new due time; that run's results for it are dropped. A
provider that cannot answer (``ProviderUnavailable``) leaves its contacts due for it alone, after its
``retry_after``. The pace is bounded: ``busy_rate`` contacts per second while contact events are arriving (an
import is running: the cores are theirs), ``idle_rate`` once the log has been quiet for ``quiet_seconds``. One
instance at a time runs it (a session advisory lock); the others wait."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial

import structlog
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.enrichment import store
from services.enrichment.domain import Candidate, Reconciled, reconcile
from services.enrichment.providers import Provider, ProviderUnavailable
from services.enrichment.service import SOURCE
from shared import wire
from shared.envelope import HeaderTemplate
from shared.outbox_batches import enqueue
from shared.producer import OutgoingMessage

log = structlog.get_logger(__name__)

FAULTY_PROVIDER_RETRY_SECONDS = 300.0
"""When a provider raised something else than ProviderUnavailable (a bug): its contacts are asked again later."""
_suggested_headers = HeaderTemplate(type=wire.TYPE_OF_STRUCT[wire.EnrichmentSuggested], source=SOURCE)


class Pace:
    """How fast the worker may go: the consumer calls ``batch_applied`` after each batch of contact events."""

    def __init__(self, *, busy_rate: float, idle_rate: float, quiet_seconds: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.busy_rate = busy_rate
        self.idle_rate = idle_rate
        self._quiet_seconds = quiet_seconds
        self._clock = clock
        self._last_batch = float("-inf")

    def batch_applied(self) -> None:
        self._last_batch = self._clock()

    @property
    def rate(self) -> float:
        """Contacts per second."""
        busy = self._clock() - self._last_batch < self._quiet_seconds
        return self.busy_rate if busy else self.idle_rate


@dataclass
class _Run:
    """One contact's provider run: what was proposed, which providers answered, which are owed."""

    candidates: list[Candidate] = field(default_factory=list)
    answered: set[str] = field(default_factory=set)
    owed: dict[str, float] = field(default_factory=dict)  # provider -> retry after (seconds)


@dataclass(frozen=True)
class Turn:
    contacts: int
    suggestions: int
    withdrawn: int
    events: int


def random_ids() -> Iterator[str]:
    """Random 128-bit ids of 32 hex digits, drawn from the OS 64 at a time (``uuid4`` asks it once per id, which
    cost a worker more than its providers)."""
    while True:
        block = os.urandom(16 * 64).hex()
        for start in range(0, len(block), 32):
            yield block[start:start + 32]


def suggested_message(contact_id: str, reconciled: Reconciled, *, at: datetime, topic: str,
                      correlation_id: str, traceparent: str | None = None) -> OutgoingMessage:
    event = wire.EnrichmentSuggested(
        contact_id=contact_id, occurred_at=at, withdrawn=reconciled.withdrawn,
        suggestions=[
            wire.Suggestion(id=s.id, field=s.field, current=s.current, suggested=s.suggested,  # type: ignore[arg-type]
                            source=s.source, confidence=s.confidence, created_at=s.created_at)
            for s in reconciled.made
        ],
    )
    headers = _suggested_headers.build(id=f"suggested:{contact_id}:{correlation_id}", time=at, subject=contact_id,
                                       correlation_id=correlation_id, traceparent=traceparent)
    return OutgoingMessage(topic, contact_id.encode(), wire.encode(event), headers)


class Worker:
    def __init__(
        self,
        engine: AsyncEngine,
        *,
        providers: Sequence[Provider],
        topic: str,
        channel: str,
        lock_name: str,
        pace: Pace,
        batch_size: int,
        poll_seconds: float,
    ) -> None:
        self._engine = engine
        self._providers = providers
        self._topic = topic
        self._channel = channel
        self._lock_name = lock_name
        self.pace = pace
        self._batch_size = batch_size
        self._poll_seconds = poll_seconds
        self._ids = random_ids()

    async def _run_providers(self, due: Sequence[store.Due]) -> dict[str, _Run]:
        runs = {item.person.contact_id: _Run() for item in due}
        for provider in self._providers:
            people = [item.person for item in due if item.sources is None or provider.name in item.sources]
            if not people:
                continue
            try:
                proposed, answered = await provider.suggest(people), {p.contact_id for p in people}
                retry_after = 0.0
            except ProviderUnavailable as error:
                proposed, answered, retry_after = error.partial, set(error.answered), error.retry_after
                log.warning("enrichment.provider_unavailable", provider=provider.name, reason=str(error),
                            contacts=len(people) - len(answered), retry_after=round(retry_after, 3))
            except Exception:
                log.exception("enrichment.provider_failed", provider=provider.name, contacts=len(people))
                proposed, answered, retry_after = {}, set(), FAULTY_PROVIDER_RETRY_SECONDS
            for person in people:
                run = runs[person.contact_id]
                if person.contact_id in answered:
                    run.answered.add(provider.name)
                    run.candidates.extend(proposed.get(person.contact_id, ()))
                else:
                    run.owed[provider.name] = retry_after
        return runs

    async def run_once(self) -> Turn:
        """One turn over up to ``batch_size`` due contacts."""
        async with self._engine.connect() as conn:
            due = await store.due_people(conn, limit=self._batch_size)
        if not due:
            return Turn(0, 0, 0, 0)
        runs = await self._run_providers(due)
        now = datetime.now(UTC)
        finished = [
            (item.person.contact_id, item.due_at,
             now + timedelta(seconds=min(run.owed.values())) if run.owed else None,
             sorted(run.owed) or None)
            for item in due
            for run in (runs[item.person.contact_id],)
        ]
        correlation_id = next(self._ids)  # the turn's
        made = withdrawn = 0
        messages: list[OutgoingMessage] = []
        async with self._engine.begin() as conn:
            recorded = await store.finish_runs(conn, finished)
            existing = await store.suggestions_of(conn, recorded, lock=True)
            new, gone = [], []
            for item in due:
                contact_id = item.person.contact_id
                if contact_id not in recorded:
                    continue
                run = runs[contact_id]
                reconciled = reconcile(item.person, run.candidates, existing[contact_id],
                                       sources_run=frozenset(run.answered), now=now,
                                       new_id=partial(next, self._ids))
                if reconciled:
                    new.extend(reconciled.made)
                    gone.extend(reconciled.withdrawn)
                    messages.append(suggested_message(contact_id, reconciled, at=now, topic=self._topic,
                                                      correlation_id=correlation_id,
                                                      traceparent=item.traceparent))
            await store.withdraw(conn, gone, at=now)
            await store.insert_suggestions(conn, new)
            await enqueue(conn, messages, channel=self._channel)
            made, withdrawn = len(new), len(gone)
        log.info("enrichment.providers_ran", contacts=len(due), recorded=len(recorded), suggestions=made,
                 withdrawn=withdrawn, events=len(messages))
        return Turn(len(due), made, withdrawn, len(messages))

    async def run(self) -> None:
        """Run turns for ever at the pace allowed, while holding the worker lock (one instance at a time)."""
        while True:
            try:
                async with self._engine.connect() as lock_conn:
                    await lock_conn.execution_options(isolation_level="AUTOCOMMIT")
                    await self._take_lock(lock_conn)
                    try:
                        await self._turns()
                    finally:
                        with contextlib.suppress(Exception):
                            await lock_conn.execute(text("SELECT pg_advisory_unlock(hashtext(:n))"),
                                                    {"n": self._lock_name})
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("enrichment.worker_failed", retry_in=self._poll_seconds * 5)
                await asyncio.sleep(self._poll_seconds * 5)

    async def _take_lock(self, conn: AsyncConnection) -> None:
        """Wait until this instance holds the worker lock (meanwhile another instance's worker runs)."""
        lock = text("SELECT pg_try_advisory_lock(hashtext(:n))")
        while True:
            if await conn.scalar(lock, {"n": self._lock_name}):
                return
            await asyncio.sleep(self._poll_seconds * 5)

    async def _turns(self) -> None:
        while True:
            started = time.monotonic()
            turn = await self.run_once()
            if turn.contacts == 0:
                await asyncio.sleep(self._poll_seconds)
                continue
            # the bounded rate: a turn of n contacts takes at least n / rate seconds
            await asyncio.sleep(max(0.0, turn.contacts / self.pace.rate - (time.monotonic() - started)))
