"""Benchmark: interactive latency while a bulk import runs, through the four services on Tansu and PostgreSQL.

    .venv/bin/python bench/interactive_latency.py --rows 100000 --interactions-per-second 2 --small-every 5

One run: an organizer's bulk import of ``--rows`` rows alone (its throughput, rows/s from upload to ``processed``
and until profiles holds every contact); then the same size of import of another organizer (new people again)
while interactive work goes on: ticket purchases by new people published to ``contacts.interactions.v1``
(``--interactions-per-second``), each timed until its ``ContactProfileUpdatedV1`` is on
``contacts.profile-updates.v1``, and a 10-row CSV import of yet another organizer every ``--small-every`` seconds,
timed to ``processed`` and until profiles holds its 10 contacts.
Prints p50/p95/p99 and the bulk throughput with and without the interactive load. Not a test: run it by hand on a
machine otherwise quiet (the summary prints the load average). ``--env NAME=VALUE`` passes settings to the
services (e.g. ``--env CONTACTS_INGEST_TOTAL_WINDOW_ROWS=50000``); ``--pace-by-profiles`` makes ingest count
profiles' lag on the contact log as bulk rows in flight (``CONTACTS_INGEST_PACE_BY_GROUPS``)."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg
from aiokafka import AIOKafkaConsumer

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ops.local_broker import free_port, start_broker  # noqa: E402
from ops.local_postgres import libpq_url  # noqa: E402
from shared.auth import mint_token  # noqa: E402
from shared.codec import encode  # noqa: E402
from shared.envelope import Envelope  # noqa: E402
from shared.events import TicketPurchasedV1  # noqa: E402
from shared.producer import create_producer  # noqa: E402
from shared.topics import INTERACTIONS, PROFILE_UPDATES  # noqa: E402
from tests.support.isolation import Isolation  # noqa: E402
from tests.support.processes import ServiceProcess  # noqa: E402

SERVICES = ("ingest", "identity", "enrichment", "profiles")
BUYERS = "buyers.bench"
"""The domain of the people who buy tickets during the run: their profile updates are the ones timed."""


def write_csv(path: Path, *, rows: int, domain: str) -> Path:
    with path.open("w", encoding="utf-8") as out:
        out.write("email,first_name,last_name,company\n")
        for n in range(rows):
            out.write(f"person{n}@{domain},First{n},Last{n},Company {n % 997}\n")
    return path


def percentiles(values: list[float]) -> dict[str, float | int | None]:
    if not values:
        return {"count": 0, "p50": None, "p95": None, "p99": None, "max": None}
    ordered = sorted(values)

    def at(share: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(share * len(ordered)))], 3)

    return {"count": len(values), "p50": at(0.50), "p95": at(0.95), "p99": at(0.99), "max": round(ordered[-1], 3)}


class Stack:
    def __init__(self, isolation: Isolation, processes: dict[str, ServiceProcess]) -> None:
        self.isolation = isolation
        self.processes = processes
        self.client = httpx.AsyncClient(base_url=processes["ingest"].base_url, timeout=600)

    def auth(self, organizer: str) -> dict[str, str]:
        token = mint_token(secret=self.isolation.auth_secret, organizer_id=organizer, ttl_seconds=7200)
        return {"Authorization": f"Bearer {token}"}

    async def upload(self, organizer: str, content: bytes) -> str:
        response = await self.client.post("/v1/imports", headers=self.auth(organizer), params={"auto_start": "true"},
                                          files={"file": ("bench.csv", content, "text/csv")})
        response.raise_for_status()
        return str(response.json()["import_id"])

    async def finished(self, organizer: str, import_id: str, *, every: float = 0.25) -> dict[str, Any]:
        while True:
            view = (await self.client.get(f"/v1/imports/{import_id}", headers=self.auth(organizer))).json()
            if view["status"] in ("processed", "error"):
                return dict(view)
            await asyncio.sleep(every)

    def profiles_of(self, organizer: str) -> int:
        """The organizer's contacts in profiles' read model."""
        with psycopg.connect(libpq_url(self.isolation.database_url)) as conn:
            found = conn.execute(
                f'SELECT count(*) FROM "{self.isolation.schema("profiles")}".organizer_contacts '
                "WHERE organizer_id = %s", (organizer,)
            ).fetchone()
        return int(found[0]) if found else 0


async def bulk_import(stack: Stack, organizer: str, path: Path) -> dict[str, Any]:
    """Upload to ``processed`` (identity answered every row), and on until profiles holds every contact."""
    started = time.perf_counter()
    import_id = await stack.upload(organizer, await asyncio.to_thread(path.read_bytes))
    view = await stack.finished(organizer, import_id)
    seconds = time.perf_counter() - started
    rows = view["total_rows"] or 0
    while await asyncio.to_thread(stack.profiles_of, organizer) < rows:  # noqa: ASYNC110 - another process
        await asyncio.sleep(0.5)
    projected = time.perf_counter() - started
    return {"status": view["status"], "rows": rows, "seconds": round(seconds, 2),
            "rows_per_second": round(rows / seconds, 1), "profiles_seconds": round(projected, 2),
            "rows_per_second_to_profiles": round(rows / projected, 1)}


class ProfileWatch:
    """Reads contacts.profile-updates.v1 from its end and notes when each buyer's first snapshot arrives."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self._consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, enable_auto_commit=False,
                                          auto_offset_reset="latest", max_partition_fetch_bytes=8 << 20)
        self.published: dict[str, float] = {}
        self.latencies: dict[str, float] = {}

    async def start(self) -> None:
        await self._consumer.start()
        await self._consumer.seek_to_end()

    async def run(self) -> None:
        marker = BUYERS.encode()
        while True:
            batches = await self._consumer.getmany(timeout_ms=200, max_records=20_000)
            arrived = time.perf_counter()
            for records in batches.values():
                for record in records:
                    if record.value is None or marker not in record.value:
                        continue
                    email = json.loads(record.value)["email"]
                    if email in self.published and email not in self.latencies:
                        self.latencies[email] = arrived - self.published[email]

    async def stop(self) -> None:
        await self._consumer.stop()


async def interactions(stack: Stack, watch: ProfileWatch, *, per_second: float, until: asyncio.Event) -> None:
    """Ticket purchases by new people, one every ``1 / per_second`` seconds, until ``until`` is set."""
    producer = create_producer(stack.isolation.kafka_bootstrap)
    await producer.start()
    topic = stack.isolation.topic(INTERACTIONS)
    try:
        number = 0
        while not until.is_set():
            email = f"buyer{number}@{BUYERS}"
            event = TicketPurchasedV1(email=email, first_name="Bea", last_name=f"Buyer{number}",
                                      kagibag_event_id="ev-bench", order_id=f"order-{number}", ticket_count=1,
                                      organizer_id="bench-tickets", occurred_at=datetime.now(UTC))
            message = encode(event, Envelope(id=str(uuid.uuid4()), type=event.TYPE, source="bench/tickets"),
                             topic=topic, key=email)
            watch.published[email] = time.perf_counter()
            await producer.send_and_wait(message.topic, message.value, key=message.key, headers=message.headers)
            number += 1
            await asyncio.sleep(1 / per_second)
    finally:
        await producer.stop()


async def small_imports(stack: Stack, *, every: float, until: asyncio.Event, results: list[dict[str, float]]
                        ) -> None:
    """A 10-row CSV import of a new organizer every ``every`` seconds, until ``until`` is set."""
    number = 0

    async def one(organizer: str) -> None:
        content = "email,first_name\n" + "".join(f"vip{n}@{organizer}.example,Vip{n}\n" for n in range(10))
        started = time.perf_counter()
        import_id = await stack.upload(organizer, content.encode())
        view = await stack.finished(organizer, import_id, every=0.05)
        processed = time.perf_counter() - started
        while await asyncio.to_thread(stack.profiles_of, organizer) < 10:  # noqa: ASYNC110 - another process
            await asyncio.sleep(0.1)
        results.append({"processed": processed, "profiles": time.perf_counter() - started,
                        "ok": float(view["status"] == "processed")})

    pending = []
    while not until.is_set():
        pending.append(asyncio.create_task(one(f"small{number}")))
        number += 1
        await asyncio.sleep(every)
    await asyncio.gather(*pending)


async def run(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    broker = start_broker(port=free_port(), log_path=work / "tansu.log")
    isolation = Isolation(database_url=args.database_url, kafka_bootstrap=broker.bootstrap_servers)
    extra = dict(item.split("=", 1) for item in args.env)
    if args.pace_by_profiles:
        extra["CONTACTS_INGEST_PACE_BY_GROUPS"] = json.dumps([isolation.consumer_group("profiles")])
    try:
        isolation.migrate()
        env = {**isolation.env(), **extra}
        processes = {name: ServiceProcess(name, env=env, base_url=isolation.base_url(name),
                                          log_path=work / f"{name}.log") for name in SERVICES}
        await asyncio.gather(*(p.start() for p in processes.values()))
        stack = Stack(isolation, processes)
        watch = ProfileWatch(isolation.kafka_bootstrap, isolation.topic(PROFILE_UPDATES))
        await watch.start()
        watching = asyncio.create_task(watch.run())
        try:
            alone = await bulk_import(stack, "bulk-alone", write_csv(work / "a.csv", rows=args.rows,
                                                                     domain="alone.bench"))
            print(f"bulk import alone: {alone}", flush=True)
            done = asyncio.Event()
            small: list[dict[str, float]] = []
            load = [asyncio.create_task(interactions(stack, watch, per_second=args.interactions_per_second,
                                                     until=done)),
                    asyncio.create_task(small_imports(stack, every=args.small_every, until=done, results=small))]
            loaded = await bulk_import(stack, "bulk-loaded", write_csv(work / "b.csv", rows=args.rows,
                                                                       domain="loaded.bench"))
            done.set()
            await asyncio.gather(*load)
            deadline = time.perf_counter() + args.drain_seconds
            while len(watch.latencies) < len(watch.published) and time.perf_counter() < deadline:  # noqa: ASYNC110
                await asyncio.sleep(0.5)
        finally:
            watching.cancel()
            await watch.stop()
            await stack.client.aclose()
            await asyncio.gather(*(p.stop() for p in processes.values()), return_exceptions=True)
    finally:
        isolation.drop_schemas()
        broker.stop()
    drop = 1 - loaded["rows_per_second_to_profiles"] / alone["rows_per_second_to_profiles"]
    return {
        "rows": args.rows, "settings": extra,
        "bulk_alone": alone, "bulk_loaded": loaded,
        "bulk_throughput_drop_to_profiles": round(drop, 3),
        "interaction_to_profile_update_seconds": {
            **percentiles(list(watch.latencies.values())),
            "published": len(watch.published), "missing": len(watch.published) - len(watch.latencies),
        },
        "small_import_processed_seconds": percentiles([r["processed"] for r in small]),
        "small_import_profiles_seconds": percentiles([r["profiles"] for r in small]),
        "small_imports_not_processed": sum(1 for r in small if not r["ok"]),
        "load_average_after": os.getloadavg(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--interactions-per-second", type=float, default=2.0)
    parser.add_argument("--small-every", type=float, default=5.0, help="seconds between small imports")
    parser.add_argument("--drain-seconds", type=float, default=60.0,
                        help="how long to wait for the last profile updates after the bulk import")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("--pace-by-profiles", action="store_true",
                        help="ingest also paces the bulk lane by profiles' lag on the contact log")
    parser.add_argument("--database-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="contacts-latency-"))
    print(f"{args.rows:,} rows per bulk import; load average {os.getloadavg()}; logs in {work}", flush=True)
    results = []
    for number in range(1, args.runs + 1):
        logs = work / f"run-{number}"
        logs.mkdir()
        result = asyncio.run(run(args, logs))
        results.append(result)
        print(json.dumps(result, indent=2), flush=True)
    if len(results) > 1:
        print(json.dumps({"runs": len(results), "median": {
            "interaction_p99": statistics.median(
                r["interaction_to_profile_update_seconds"]["p99"] or float("nan") for r in results),
            "small_processed_p95": statistics.median(
                r["small_import_processed_seconds"]["p95"] or float("nan") for r in results),
            "bulk_throughput_drop_to_profiles": statistics.median(
                r["bulk_throughput_drop_to_profiles"] for r in results),
        }}, indent=2))


if __name__ == "__main__":
    main()
