"""ingest's pacing against the real PostgreSQL (no broker): an import's turn waits while its window is full and
comes once identity's answers are counted; another instance's bulk rows in flight fill the lane's window too, and
so does the contact log's readers' lag when pacing by them; an import whose rows get no answer for the patience
stops being paced (the deadline's rules take over)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine

from services.ingest import store
from services.ingest.db import imports
from services.ingest.fairness import Windows, weights
from services.ingest.pacing import Pacing
from shared.db import create_engine
from tests.support.isolation import Isolation

pytestmark = pytest.mark.integration


@pytest.fixture
async def engine(isolation: Isolation) -> AsyncIterator[AsyncEngine]:
    isolation.migrate(("ingest",))
    engine = create_engine(isolation.database_url, schema=isolation.schema("ingest"))
    yield engine
    await engine.dispose()


def pacing(engine: AsyncEngine, *, patience: float = 60.0,
           downstream_lag: Callable[[], Awaitable[int]] | None = None) -> Pacing:
    return Pacing(engine=engine, windows=Windows(per_import=3000, total=5000), weight_of=weights({}),
                  poll_seconds=0.05, patience_seconds=patience, downstream_lag=downstream_lag,
                  downstream_seconds=0.05)


async def reading(engine: AsyncEngine, organizer: str, *, parsed: int = 0, processed: int = 0,
                  lane: str = "bulk") -> str:
    """An import being read, with ``parsed`` rows handed on and ``processed`` answered."""
    import_id = str(uuid.uuid4())
    async with engine.begin() as conn:
        await store.create_import(conn, import_id=import_id, organizer_id=organizer, source="json", filename=None)
        await store.start_import(conn, import_id=import_id, organizer_id=organizer, columns=None)
        await store.note_lane(conn, import_id=import_id, lane=lane, expected_rows=100_000)
        await conn.execute(update(imports).where(imports.c.import_id == import_id)
                           .values(parsed_rows=parsed, processed_rows=processed))
    return import_id


async def answered(engine: AsyncEngine, import_id: str, *, processed: int) -> None:
    async with engine.begin() as conn:
        await conn.execute(update(imports).where(imports.c.import_id == import_id).values(processed_rows=processed))


async def test_a_turn_waits_while_the_window_is_full_and_comes_with_the_answers(engine: AsyncEngine) -> None:
    paced = pacing(engine)
    import_id = await reading(engine, "org-a")
    polling = asyncio.create_task(paced.run())
    try:
        async with paced.seat(import_id=import_id, organizer_id="org-a", interactive=False, handed_on=0) as seat:
            for _ in range(3):
                await asyncio.wait_for(seat.turn(1000), 1)  # the window fills: 3,000 rows in flight
            waiting = asyncio.create_task(seat.turn(1000))
            await asyncio.sleep(0.3)
            assert not waiting.done() and seat.in_flight == 3000
            await answered(engine, import_id, processed=1500)
            paced.nudge()
            await asyncio.wait_for(waiting, 2)
            assert seat.in_flight == 2500
    finally:
        polling.cancel()


async def test_bulk_rows_in_flight_elsewhere_fill_the_lane_but_never_hold_back_an_interactive_import(
    engine: AsyncEngine,
) -> None:
    paced = pacing(engine)
    await reading(engine, "org-x", parsed=9000, processed=5500)  # read by another instance: 3,500 in flight
    bulk, small = await reading(engine, "org-a"), await reading(engine, "org-b", lane="interactive")
    polling = asyncio.create_task(paced.run())
    try:
        async with (
            paced.seat(import_id=bulk, organizer_id="org-a", interactive=False, handed_on=0) as big,
            paced.seat(import_id=small, organizer_id="org-b", interactive=True, handed_on=0) as little,
        ):
            await asyncio.wait_for(big.turn(1000), 1)  # 4,500 of the lane's 5,000
            waiting = asyncio.create_task(big.turn(1000))
            await asyncio.wait_for(little.turn(10), 1)
            await asyncio.sleep(0.3)
            assert not waiting.done(), "4,500 + 1,000 would exceed the lane's 5,000"
            waiting.cancel()
    finally:
        polling.cancel()


async def test_an_import_without_answers_for_the_patience_stops_being_paced(engine: AsyncEngine) -> None:
    paced = pacing(engine, patience=0.5)
    import_id = await reading(engine, "org-a")
    polling = asyncio.create_task(paced.run())
    try:
        async with paced.seat(import_id=import_id, organizer_id="org-a", interactive=False, handed_on=0) as seat:
            await seat.turn(3000)
            await asyncio.wait_for(seat.turn(1000), 3)  # no answer came: given up pacing it
            assert seat.unpaced and seat.in_flight == 4000
    finally:
        polling.cancel()


async def test_with_pacing_by_downstream_groups_their_lag_holds_the_bulk_lane_back(engine: AsyncEngine) -> None:
    lag = [4500]

    async def contact_log_lag() -> int:
        return lag[0]

    paced = pacing(engine, downstream_lag=contact_log_lag)
    import_id = await reading(engine, "org-a")
    polling = asyncio.create_task(paced.run())
    try:
        async with paced.seat(import_id=import_id, organizer_id="org-a", interactive=False, handed_on=0) as seat:
            waiting = asyncio.create_task(seat.turn(1000))
            await asyncio.sleep(0.3)
            assert not waiting.done(), "profiles has 4,500 records to read: 1,000 more would exceed 5,000"
            lag[0] = 3000
            await asyncio.wait_for(waiting, 2)
    finally:
        polling.cancel()
