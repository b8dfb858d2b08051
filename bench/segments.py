"""Benchmark: segments evaluated on read over one organizer's contacts, on the PostgreSQL server of the tests.

    .venv/bin/python bench/segments.py --contacts 1000000 [--others 100000] [--repeat 5]

Migrates profiles into a scratch schema, COPYs ``--contacts`` rows of one organizer (and ``--others`` of another)
straight into ``organizer_contacts`` (tags, permissions, attended and registered events, imports, last activity,
drawn from a fixed seed), vacuums and analyzes, then times each filter's count, first page and 20th page through
the service's own queries (``segment_filter.compile_filter`` + ``queries``), and the CSV export of a segment and of
every contact. Prints milliseconds (median of ``--repeat``) and drops the schema. Not a test."""

from __future__ import annotations

import argparse
import asyncio
import random
import resource
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from services.profiles import queries  # noqa: E402
from services.profiles.exports import contacts_csv  # noqa: E402
from services.profiles.queries import Filters, Position  # noqa: E402
from services.profiles.segment_filter import compile_filter, parse  # noqa: E402
from shared.db import copy_rows, create_engine  # noqa: E402
from tests.support.isolation import Isolation  # noqa: E402

ORGANIZER = "org-bench"
T0 = datetime(2026, 1, 1, tzinfo=UTC)
EVENTS = [f"ev-{n}" for n in range(200)]
COMPANIES = ["Acme", "Globex", "Initech", "Umbrella", "Hooli", None, None]
COLUMNS = ("organizer_id", "contact_id", "email", "email_original", "first_name", "company", "display_name",
           "email_permission", "first_seen_at", "last_seen_at", "created_at", "updated_at", "view_version", "tags",
           "events_attended", "registrations", "attended_events", "registered_events", "import_ids",
           "last_active_at")
FILTERS: dict[str, dict[str, Any]] = {
    "vip AND attended ev-7 AND NOT unsubscribed": {
        "and": [{"tag": "vip"}, {"attended": "ev-7"}, {"not": {"permission": "unsubscribed"}}]},
    "tag vip": {"tag": "vip"},
    "registered ev-3 OR attended ev-4": {"or": [{"registered": "ev-3"}, {"attended": "ev-4"}]},
    "attended_at_least 3": {"attended_at_least": 3},
    "NOT company Acme AND subscribed": {"and": [{"not": {"company": "Acme"}}, {"permission": "subscribed"}]},
    "last_active in March": {"last_active": {"from": "2026-03-01T00:00:00Z", "to": "2026-04-01T00:00:00Z"}},
    "import imp-2 AND NOT tag newsletter": {"and": [{"import_id": "imp-2"}, {"not": {"tag": "newsletter"}}]},
}


def contacts(organizer: str, count: int, seed: int) -> Iterator[tuple[Any, ...]]:
    rng = random.Random(seed)
    for number in range(count):
        tags = [tag for tag, share in (("vip", 0.05), ("newsletter", 0.3), ("speaker", 0.01)) if rng.random() < share]
        attended = rng.sample(EVENTS, k=rng.choice((0, 0, 0, 1, 1, 2, 3, 5)))
        registered = sorted({*attended, *rng.sample(EVENTS, k=rng.choice((0, 1, 2)))})
        active = T0 + timedelta(minutes=rng.randrange(0, 200 * 24 * 60)) if registered else None
        permission = rng.choices(("subscribed", "unsubscribed", "unknown"), weights=(5, 1, 4))[0]
        email = f"p{number}@{organizer}.example"
        company = rng.choice(COMPANIES)
        yield (organizer, f"{organizer}-{number:08d}", email, email, f"P{number}", company, f"P{number}", permission,
               T0, active or T0, T0, T0, 1, tags, len(attended), len(registered) - len(attended), attended,
               registered, [f"imp-{rng.randrange(5)}"], active)


async def timed(repeat: int, work: Callable[[], Awaitable[Any]]) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = await work()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times), result


async def measure(engine: AsyncEngine, name: str, filters: Filters, repeat: int) -> None:
    """One filter: its count, first page and 20th page (keyset), each the median of ``repeat`` runs."""
    async with engine.connect() as conn:
        counted, members = await timed(repeat, lambda: queries.count_contacts(
            conn, organizer_id=ORGANIZER, filters=filters))
        paged, _ = await timed(repeat, lambda: queries.find_contacts(
            conn, organizer_id=ORGANIZER, filters=filters, limit=51))
        after = None
        for _ in range(19):  # walk to the 20th page, then time it
            page = await queries.find_contacts(conn, organizer_id=ORGANIZER, filters=filters, after=after, limit=50)
            after = Position("id", page[-1].contact_id) if page else after
        deep, _ = await timed(repeat, lambda: queries.find_contacts(
            conn, organizer_id=ORGANIZER, filters=filters, after=after, limit=51))
    print(f"{name:46} {members:>8} {counted:>9.1f} {paged:>8.1f} {deep:>10.1f}")


async def main(contacts_n: int, others: int, repeat: int) -> None:
    isolation = Isolation(database_url="postgresql+psycopg://postgres@127.0.0.1:5432/test", kafka_bootstrap="-")
    isolation.migrate(("profiles",))
    engine = create_engine(isolation.database_url, schema=isolation.schema("profiles"))
    try:
        start = time.perf_counter()
        for organizer, count, seed in ((ORGANIZER, contacts_n, 1), ("org-other", others, 2)):
            async with engine.begin() as conn:
                await copy_rows(conn, table="organizer_contacts", columns=COLUMNS,
                                rows=contacts(organizer, count, seed))
        async with engine.connect() as conn:  # VACUUM (the visibility map: index-only scans), as autovacuum would
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text("VACUUM ANALYZE organizer_contacts"))
            size = (await conn.execute(text(
                "SELECT pg_size_pretty(pg_total_relation_size('organizer_contacts'))"))).scalar_one()
        print(f"loaded {contacts_n} + {others} contacts in {time.perf_counter() - start:.1f} s ({size} with indexes)")
        print(f"{'filter':46} {'members':>8} {'count ms':>9} {'page ms':>8} {'page 20 ms':>10}")
        for name, raw in FILTERS.items():
            await measure(engine, name, Filters(segment=compile_filter(parse(raw))), repeat)
        first = Filters(segment=compile_filter(parse(next(iter(FILTERS.values())))))
        everyone = Filters(segment=compile_filter(parse({"not": {"tag": "no-such-tag"}})))
        for label, filters in (("segment", first), ("all", everyone)):
            start, size_bytes = time.perf_counter(), 0
            async for chunk in contacts_csv(engine, organizer_id=ORGANIZER, filters=filters):
                size_bytes += len(chunk)
            seconds = time.perf_counter() - start
            print(f"export {label}: {size_bytes / 1e6:.1f} MB in {seconds:.1f} s, "
                  f"peak RSS of this process {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3:.0f} MB")
    finally:
        await engine.dispose()
        isolation.drop_schemas()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--contacts", type=int, default=1_000_000)
    parser.add_argument("--others", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    asyncio.run(main(args.contacts, args.others, args.repeat))
