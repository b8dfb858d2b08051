"""Measurement: enrichment's CPU per contact event (the consumer's fold, on the import path) and per suggestion
(the paced worker, behind it), on the real PostgreSQL, without a broker: the same functions the service runs, fed
records built like identity's.

    .venv/bin/python bench/enrichment_cpu.py --contacts 100000

Phases: (1) an import's contact events (``ContactCreatedV1`` from an organizer, addresses like the bench's
``person123@example.com``) folded in batches of 5,000; (2) the same people imported again (``ContactMatchedV1``:
nothing to write); (3) the worker's runs over every contact created (each gets the company "Example"). CPU is this
process's (``time.process_time``) plus its PostgreSQL backends' (``/proc/<pid>/stat``), per event and per
suggestion, with the rows written and messages enqueued. Not a test; run it on a quiet machine."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ops.catalog import migrations_dir  # noqa: E402
from ops.local_postgres import libpq_url  # noqa: E402
from services.enrichment.providers import EmailDomainCompany, EmailLocalPartName, PhoneE164  # noqa: E402
from services.enrichment.service import EnrichmentTopics, fold_contact_events  # noqa: E402
from services.enrichment.worker import Pace, Worker  # noqa: E402
from shared import wire  # noqa: E402
from shared.consumer import Delivery  # noqa: E402
from shared.db import create_engine  # noqa: E402
from shared.envelope import HeaderTemplate  # noqa: E402
from shared.lifecycle import tune_garbage_collector  # noqa: E402
from shared.migrations import upgrade  # noqa: E402

TOPIC = "bench.contacts.contact-events.v1"
BATCH = 5000
TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Record:
    """What the consumer reads of an aiokafka ConsumerRecord."""

    topic: str
    partition: int
    offset: int
    key: bytes
    value: bytes
    headers: Sequence[tuple[str, bytes]]


def contact_events(count: int, *, matched: bool, offset: int) -> list[Record]:
    source = wire.ContactSource(kind="import", organizer_id="bench", import_id="imp-bench")
    at = datetime.now(UTC)
    struct = wire.ContactMatched if matched else wire.ContactCreated
    headers = HeaderTemplate(type=wire.TYPE_OF_STRUCT[struct], source="kagibag-contacts/identity")
    records = []
    for n in range(count):
        contact_id = f"c{n:08d}"
        version = 2 if matched else 1
        if matched:
            event: Any = wire.ContactMatched(contact_id=contact_id, version=version, occurred_at=at, source=source)
        else:
            email = f"person{n}@example.com"
            event = wire.ContactCreated(contact_id=contact_id, version=1, occurred_at=at, source=source, email=email,
                                        email_original=email)
        records.append(Record(TOPIC, n % 8, offset + n // 8, contact_id.encode(), wire.encode(event),
                              headers.build(id=f"{contact_id}:{version}", time=at, subject=contact_id)))
    return records


def backend_cpu(pids: set[int]) -> float:
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
        except OSError:
            pass
    return total / TICKS


class Meter:
    def __init__(self) -> None:
        self.pids: set[int] = set()

    def start(self) -> tuple[float, float]:
        return time.process_time(), backend_cpu(self.pids)

    def stop(self, started: tuple[float, float]) -> tuple[float, float]:
        return time.process_time() - started[0], backend_cpu(self.pids) - started[1]


async def main(contacts: int, database_url: str) -> None:
    schema = f"bench_enrichment_{uuid.uuid4().hex[:8]}"
    upgrade(migrations_dir=migrations_dir("enrichment"), database_url=database_url, schema=schema)
    engine = create_engine(database_url, schema=schema, pool_size=2)
    tune_garbage_collector()  # as the service does once started
    meter = Meter()
    try:
        async with engine.connect() as conn:
            meter.pids.add(int((await conn.exec_driver_sql("SELECT pg_backend_pid()")).scalar_one()))
        topics = EnrichmentTopics(contact_events=TOPIC, enrichments="bench.enrichments", attendee_statements="x",
                                  dead_letters="bench.dead")
        delivery = Delivery(service="enrichment", group="bench", bootstrap_servers="127.0.0.1:1", channel="bench")

        async def fold(records: list[Record]) -> tuple[float, float]:
            started = meter.start()
            for start in range(0, len(records), BATCH):
                async with engine.begin() as conn:
                    meter.pids.add(int((await conn.exec_driver_sql("SELECT pg_backend_pid()")).scalar_one()))
                    await fold_contact_events(conn, records[start:start + BATCH],
                                              topics=topics, delivery=delivery)
            return meter.stop(started)

        created = contact_events(contacts, matched=False, offset=0)
        python, database = await fold(created)
        report("import: contact events folded", contacts, python, database, "event")
        again = contact_events(contacts, matched=True, offset=contacts)
        python, database = await fold(again)
        report("re-import (all matched)", contacts, python, database, "event")

        worker = Worker(engine, providers=[EmailLocalPartName(), EmailDomainCompany(), PhoneE164()],
                        topic=topics.enrichments, channel="bench", lock_name="bench", batch_size=500,
                        pace=Pace(busy_rate=1e9, idle_rate=1e9, quiet_seconds=0), poll_seconds=1)
        started = meter.start()
        suggestions = ran = events = 0
        while True:
            turn = await worker.run_once()
            if turn.contacts == 0:
                break
            ran, suggestions, events = ran + turn.contacts, suggestions + turn.suggestions, events + turn.events
        python, database = meter.stop(started)
        report(f"worker: {ran:,} contacts, {suggestions:,} suggestions, {events:,} events", suggestions, python,
               database, "suggestion")
        with psycopg.connect(libpq_url(database_url)) as pg:
            size = pg.execute(f"SELECT sum(length(messages)), sum(count) FROM {schema}.outbox_batches").fetchone()
        if size and size[1]:
            print(f"  outbox: {size[1]:,} messages in {size[0] / 1e6:.1f} MB packed ({size[0] / size[1]:.0f} B each)")
    finally:
        await engine.dispose()
        with psycopg.connect(libpq_url(database_url), autocommit=True) as pg:
            pg.execute(f'DROP SCHEMA "{schema}" CASCADE')


def report(what: str, count: int, python: float, database: float, unit: str) -> None:
    print(f"{what}: python {python * 1e6 / count:.1f} µs/{unit}, PostgreSQL {database * 1e6 / count:.1f} µs/{unit}, "
          f"total {(python + database) * 1e6 / count:.1f} µs/{unit} ({count:,} in {python + database:.2f} s CPU)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--database-url", default=os.environ.get(
        "CONTACTS_TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"))
    args = parser.parse_args()
    asyncio.run(main(args.contacts, args.database_url))
