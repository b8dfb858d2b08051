"""Benchmark: profiles' set-based merge alone, statement by statement, on a read model growing by a batch of new
contacts at a time (what a bulk import feeds it), on the PostgreSQL server of the tests.

    .venv/bin/python bench/profiles_merge.py --batches 60 --batch-size 5000 [--explain 10]

Prints, every tenth batch, the seconds each statement of ``services.profiles.store`` took and their total: a
statement whose time grows with the batch number scans what it should look up. ``--explain N`` prints the plans of
statement N in the last batch. Not a test."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from services.profiles import store  # noqa: E402
from services.profiles.intake import stage_row  # noqa: E402
from shared import wire  # noqa: E402
from shared.db import copy_rows, create_engine  # noqa: E402
from tests.support.isolation import Isolation  # noqa: E402

AT = datetime.now(UTC)


def new_contacts(start: int, count: int) -> list[tuple[Any, ...]]:
    rows = []
    for number in range(start, start + count):
        source = wire.ContactSource(kind="import", organizer_id="bench", import_id="imp", row_number=number)
        event = wire.ContactCreated(
            contact_id=str(uuid.uuid4()), version=1, occurred_at=AT, source=source, email=f"p{number}@example.com",
            email_original=f"p{number}@example.com", fields={"first_name": f"F{number}", "last_name": f"L{number}",
                                                             "company": "C", "title": "T", "phone": "1"},
        )
        rows.append(stage_row(number - start, event, message_id=f"m{number}", correlation_id="imp"))
    return rows


async def timed_merge(conn: AsyncConnection, rows: list[tuple[Any, ...]], explain: int | None) -> list[float]:
    """``store.merge``'s steps one by one (the same statements, in the same order), each timed."""
    await conn.execute(text("SET LOCAL TimeZone = 'UTC'"))
    for statement in store._TEMPORARY:
        await conn.execute(text(statement))
    await copy_rows(conn, table="contact_events_stage", columns=store.STAGE_COLUMNS, rows=rows)
    await conn.execute(text("ANALYZE contact_events_stage"))
    timings = []
    for number, statement in enumerate([*store._STEPS, store.SNAPSHOTS]):
        if number == explain:
            plan = (await conn.execute(text("EXPLAIN (ANALYZE) " + statement))).all()
            print("\n".join(row[0] for row in plan))
        started = time.perf_counter()
        await conn.execute(text(statement))
        analyzed = store._ANALYZE_AFTER.get(statement.lstrip()[:24])
        if analyzed:
            await conn.execute(text(f"ANALYZE {analyzed}"))
        timings.append(time.perf_counter() - started)
    return timings


async def run(batches: int, size: int, explain: int | None) -> None:
    isolation = Isolation(database_url="postgresql+psycopg://postgres@127.0.0.1:5432/test", kafka_bootstrap="-")
    isolation.migrate(("profiles",))
    engine = create_engine(isolation.database_url, schema=isolation.schema("profiles"))
    try:
        for batch in range(batches):
            last = batch == batches - 1
            async with engine.begin() as conn:
                timings = await timed_merge(conn, new_contacts(batch * size, size), explain if last else None)
            if batch % 10 == 0 or last:
                print(f"batch {batch:3}: " + " ".join(f"{t:.2f}" for t in timings) + f"  total {sum(timings):.2f} s"
                      f" = {sum(timings) / size * 1e6:.0f} µs per event", flush=True)
    finally:
        await engine.dispose()
        isolation.drop_schemas()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=60)
    parser.add_argument("--batch-size", type=int, default=5000)
    parser.add_argument("--explain", type=int, help="print the plan of this statement (by number) in the last batch")
    args = parser.parse_args()
    asyncio.run(run(args.batches, args.batch_size, args.explain))


if __name__ == "__main__":
    main()
