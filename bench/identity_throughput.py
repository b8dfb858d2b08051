"""Benchmark: identity alone, fed N import-row events (a share of them repeating a person in another spelling)
on the real broker, timed until it has reported an outcome for every row.

    .venv/bin/python bench/identity_throughput.py --rows 1000000 --duplicates 0.1

Reports rows/s through identity, its CPU seconds and peak RSS, and checks one contact per person. Not a test."""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import signal
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psycopg
from aiokafka import AIOKafkaConsumer

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import profiling  # noqa: E402
from bench.import_pipeline import cpu_seconds, peak_rss_mib  # noqa: E402
from ops.local_broker import free_port, start_broker  # noqa: E402
from ops.local_postgres import libpq_url  # noqa: E402
from shared.codec import encode  # noqa: E402
from shared.envelope import (
    Envelope,  # noqa: E402
    derived_id,  # noqa: E402
)
from shared.events import ImportRowReceivedV1, ImportRowsProcessedV1  # noqa: E402
from shared.kafka import ensure_topics  # noqa: E402
from shared.producer import create_producer, publish_all  # noqa: E402
from shared.topics import ALL_TOPICS, IMPORT_ROW_OUTCOMES, IMPORT_ROWS  # noqa: E402
from tests.support.isolation import Isolation  # noqa: E402
from tests.support.processes import ServiceProcess  # noqa: E402

IMPORT_ID = str(uuid.uuid4())


def rows(count: int, duplicates: float, seed: int = 1) -> tuple[list[ImportRowReceivedV1], int]:
    rng = random.Random(seed)
    out, people = [], 0
    for number in range(1, count + 1):
        if people and rng.random() < duplicates:
            person = rng.randrange(people)
            email = f" Person{person}@Example.COM "
        else:
            person, people = people, people + 1
            email = f"person{person}@example.com"
        out.append(ImportRowReceivedV1(import_id=IMPORT_ID, organizer_id="bench", row_number=number, email=email,
                                       first_name=f"First{person}", last_name=f"Last{person}"))
    return out, people


async def publish_rows(bootstrap: str, topic: str, events: list[ImportRowReceivedV1]) -> float:
    producer = create_producer(bootstrap)
    await producer.start()
    started = time.perf_counter()
    try:
        for start in range(0, len(events), 50_000):
            await publish_all(producer, [
                encode(e, Envelope(id=derived_id(IMPORT_ID, e.row_number), type=e.TYPE, source="bench",
                                   correlation_id=IMPORT_ID), topic=topic, key=e.email.strip().lower())
                for e in events[start : start + 50_000]
            ])
    finally:
        await producer.stop()
    return time.perf_counter() - started


async def count_outcomes(bootstrap: str, topic: str, expected: int, deadline: float) -> None:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                enable_auto_commit=False)
    await consumer.start()
    seen: set[int] = set()
    try:
        while len(seen) < expected:
            if time.perf_counter() > deadline:
                raise TimeoutError(f"only {len(seen):,} of {expected:,} outcomes")
            for records in (await consumer.getmany(timeout_ms=1000)).values():
                for record in records:
                    seen.update(row.row_number for row in ImportRowsProcessedV1.model_validate_json(record.value).rows)
    finally:
        await consumer.stop()


async def run(isolation: Isolation, count: int, duplicates: float, logs: Path, *, profile: bool = False
              ) -> dict[str, float]:
    events, people = rows(count, duplicates)
    await ensure_topics(isolation.kafka_bootstrap, prefix=isolation.topic_prefix, topics=ALL_TOPICS)
    published = await publish_rows(isolation.kafka_bootstrap, isolation.topic(IMPORT_ROWS), events)
    del events
    identity = ServiceProcess("identity", env=isolation.env(), base_url=isolation.base_url("identity"),
                              log_path=logs / "identity.log")
    started = time.perf_counter()
    await identity.start()
    sampler = profiling.attach(identity.pid or 0, logs / "identity.pyspy") if profile else None
    try:
        await count_outcomes(isolation.kafka_bootstrap, isolation.topic(IMPORT_ROW_OUTCOMES), count,
                             deadline=started + 3600)
        elapsed = time.perf_counter() - started
        stats = {"identity_cpu_seconds": cpu_seconds(identity.pid or 0),
                 "identity_peak_rss_mib": peak_rss_mib(identity.pid or 0)}
    finally:
        if sampler is not None:
            sampler.send_signal(signal.SIGINT)
            sampler.wait()
        await identity.stop()
    if sampler is not None:
        print(profiling.summarize(logs / "identity.pyspy"))
    with psycopg.connect(libpq_url(isolation.database_url)) as conn:
        counted = conn.execute(f'SELECT count(*) FROM "{isolation.schema("identity")}".contacts').fetchone()
    assert counted is not None  # count(*) always returns one row
    contacts = counted[0]
    return {"rows": count, "people": people, "contacts": contacts, "publish_seconds": published,
            "seconds_from_start_to_last_outcome": elapsed, "rows_per_second": count / elapsed, **stats}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--duplicates", type=float, default=0.1)
    parser.add_argument("--database-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    parser.add_argument("--profile", action="store_true", help="sample identity with py-spy and print a summary")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="contacts-identity-bench-"))
    broker = start_broker(port=free_port(), log_path=work / "tansu.log")
    isolation = Isolation(database_url=args.database_url, kafka_bootstrap=broker.bootstrap_servers)
    try:
        isolation.migrate(("identity",))
        result = asyncio.run(run(isolation, args.rows, args.duplicates, work, profile=args.profile))
    finally:
        isolation.drop_schemas()
        broker.stop()
    print(json.dumps(result, indent=2))
    if result["contacts"] != result["people"]:
        raise SystemExit(f"expected one contact per person: {result['people']:,} people, {result['contacts']:,}")
    print(f"logs: {work}")


if __name__ == "__main__":
    main()
