"""Pacing and fair turns for the imports this instance reads: the I/O around ``fairness``.

Each import being read takes a ``Seat`` and asks for a turn before every batch it hands on (``Seat.turn``); the
turn comes when ``fairness.next_turn`` picks it. What is in flight is counted from PostgreSQL, so it holds across
instances: an import's rows handed on (its reading position) minus its rows with an outcome (``processed_rows``,
written by whichever instance counts identity's answers), and for the bulk lane the same for every import in
progress, wherever it is read. The counts are read again every ``poll_seconds`` while some import waits, and at
once when this instance has counted answers (``nudge``).

Backpressure, never loss: an import without room waits. But pacing never outlasts the answer deadline: an import
that waited ``patience_seconds`` without any of its rows being answered stops being paced for the rest of its
reading, so it reaches ``processing`` and the deadline's rules (publish again once, then give up naming the rows)
take over, as they would have without pacing.

Optionally (``downstream_lag``, see ``downstream.py``) the lag of the contact log's readers counts as bulk rows in
flight too, so the bulk lane also waits for profiles, not only for identity."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import structlog
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.ingest.fairness import Claim, Shares, Windows, forget, next_turn, served

log = structlog.get_logger(__name__)

MIN_REFRESH_SECONDS = 0.05
"""Answers counted in quick succession refresh the counts at most this often."""


@dataclass(eq=False)
class Seat:
    """One import being read by this instance: how far it was handed on, how much of it is answered, and the
    turn it waits for (``turn``)."""

    import_id: str
    organizer_id: str
    interactive: bool
    handed_on: int
    pacing: Pacing
    answered: int = 0
    progress_at: float = field(default_factory=time.monotonic)
    unpaced: bool = False
    waiting: tuple[int, asyncio.Future[None]] | None = None

    @property
    def in_flight(self) -> int:
        return max(0, self.handed_on - self.answered)

    async def turn(self, rows: int) -> None:
        """Wait until the next ``rows`` rows of the file may be handed on; they then count as in flight."""
        if self.unpaced:
            self.handed_on += rows
            return
        future = asyncio.get_running_loop().create_future()
        self.waiting = (rows, future)
        self.pacing.decide()
        try:
            await future
        finally:
            self.waiting = None


class Pacing:
    def __init__(
        self, *, engine: AsyncEngine, windows: Windows, weight_of: Callable[[str], float], poll_seconds: float,
        patience_seconds: float, downstream_lag: Callable[[], Awaitable[int]] | None = None,
        downstream_seconds: float = 1.0,
    ) -> None:
        self._engine = engine
        self.windows = windows
        self._weight_of = weight_of
        self._poll_seconds = poll_seconds
        self._patience = patience_seconds
        self._seats: dict[str, Seat] = {}
        self._shares = Shares()
        self._others_in_flight = 0
        """Bulk rows in flight of imports this instance does not read."""
        self._downstream_lag = downstream_lag
        self._downstream_seconds = downstream_seconds
        self._downstream = 0
        """Records the readers of the contact log have yet to read (``downstream``), counted as bulk in flight."""
        self._downstream_at = 0.0
        self._wake = asyncio.Event()

    def nudge(self) -> None:
        """Answers were counted: read the counts again soon."""
        self._wake.set()

    @contextlib.asynccontextmanager
    async def seat(
        self, *, import_id: str, organizer_id: str, interactive: bool, handed_on: int
    ) -> AsyncIterator[Seat]:
        """A seat for the import while its file is read from row ``handed_on`` on."""
        seat = Seat(import_id, organizer_id, interactive, handed_on, self)
        self._seats[import_id] = seat
        try:
            await self.refresh()
            yield seat
        finally:
            self._seats.pop(import_id, None)
            self._shares = forget(self._shares, active=[(s.organizer_id, s.import_id) for s in self._seats.values()])
            self.decide()

    async def run(self) -> None:
        """Keep the counts fresh while some import waits for a turn (until cancelled)."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._poll_seconds)
            self._wake.clear()
            if any(seat.waiting for seat in self._seats.values()):
                try:
                    await self.refresh()
                except Exception:
                    log.exception("imports.pacing_refresh_failed")
            self.decide()
            await asyncio.sleep(MIN_REFRESH_SECONDS)

    async def refresh(self) -> None:
        """Read every import in progress: the answered rows of this instance's, the bulk lane's rows in flight of
        the others."""
        async with self._engine.connect() as conn:
            result = await conn.execute(
                text(
                    "SELECT import_id::text AS import_id, lane, parsed_rows, processed_rows FROM imports "
                    "WHERE status IN ('parsing', 'processing')"
                )
            )
            rows = list(result)
        if self._downstream_lag is not None and time.monotonic() >= self._downstream_at:
            self._downstream_at = time.monotonic() + self._downstream_seconds
            try:
                self._downstream = await self._downstream_lag()
            except Exception as error:  # the last reading stands; pacing by identity's answers goes on
                log.warning("imports.downstream_lag_unknown", error=f"{type(error).__name__}: {error}"[:200])
        others, now = 0, time.monotonic()
        for row in rows:
            seat = self._seats.get(row.import_id)
            if seat is None:
                others += max(0, row.parsed_rows - row.processed_rows) if row.lane == "bulk" else 0
            elif row.processed_rows > seat.answered:
                seat.answered, seat.progress_at = row.processed_rows, now
        self._others_in_flight = others

    def decide(self) -> None:
        """Give every turn that may be given now."""
        now = time.monotonic()
        waiting = {seat.import_id: seat for seat in self._seats.values() if seat.waiting}
        for seat in waiting.values():  # its own rows unanswered for too long: identity is not answering it
            if seat.in_flight and now - seat.progress_at > self._patience and not seat.unpaced:
                seat.unpaced = True
                log.warning("import.pacing_gave_up", import_id=seat.import_id, correlation_id=seat.import_id,
                            in_flight=seat.in_flight, waited_seconds=round(now - seat.progress_at, 1))
        bulk = self._others_in_flight + self._downstream + sum(
            s.in_flight for s in self._seats.values() if not s.interactive
        )
        while waiting:
            unpaced = next((seat for seat in waiting.values() if seat.unpaced), None)
            claims = [
                Claim(s.import_id, s.organizer_id, s.waiting[0], s.in_flight, s.interactive)
                for s in waiting.values() if s.waiting
            ]
            chosen = (
                next(c for c in claims if c.import_id == unpaced.import_id) if unpaced is not None
                else next_turn(self._shares, claims, windows=self.windows, bulk_in_flight=bulk)
            )
            if chosen is None:
                return
            seat = waiting.pop(chosen.import_id)
            assert seat.waiting is not None
            rows, future = seat.waiting
            if not seat.in_flight:
                seat.progress_at = now  # waiting for answers starts now
            seat.handed_on += rows
            bulk += 0 if seat.interactive else rows
            self._shares = served(self._shares, chosen, weight_of=self._weight_of)
            seat.waiting = None
            if not future.done():
                future.set_result(None)

    def in_flight(self) -> dict[str, int]:
        """Rows in flight per import read here (for logs and readiness)."""
        return {seat.import_id: seat.in_flight for seat in self._seats.values()}
