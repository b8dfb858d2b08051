"""Benchmark: a generated CSV imported end to end through the four services on Tansu and PostgreSQL, against
PostgreSQL's own COPY-and-upsert of the same rows in the same run.

    .venv/bin/python bench/import_pipeline.py --rows 1000000 --runs 3

Per run: seconds to ``processed`` (every row answered by identity and counted by ingest) and until every profile
and every organizer view is projected, both as a ratio to the baseline; the same file imported again (all
matches); CPU µs per imported row of each service's process and of its PostgreSQL backends (found by their
``application_name``), and Tansu's; database row writes and Kafka records per imported row; peak RSS; and each
process's CPU share while idle afterwards. With ``--runs`` > 1 the summary gives medians. Not a test: run it by
hand, on a machine otherwise quiet (the summary prints the load average)."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import httpx
import psycopg
from aiokafka import AIOKafkaConsumer

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import profiling  # noqa: E402
from ops.local_broker import free_port, start_broker  # noqa: E402
from ops.local_postgres import libpq_url  # noqa: E402
from shared.auth import mint_token  # noqa: E402
from tests.support.isolation import Isolation  # noqa: E402
from tests.support.processes import ServiceProcess  # noqa: E402

HEADER = "email,first_name,last_name,company,title,phone\n"
SERVICES = ("ingest", "identity", "enrichment", "profiles")
ORGANIZER = "bench"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def generate_csv(path: Path, *, rows: int, duplicates: float, invalid: float, seed: int = 1) -> int:
    """Write ``rows`` rows: a ``duplicates`` share repeat an earlier person in another spelling, an ``invalid``
    share have an address that is not one. Returns the number of distinct people (valid addresses)."""
    rng = random.Random(seed)
    people = 0
    with path.open("w", encoding="utf-8") as out:
        out.write(HEADER)
        for number in range(rows):
            draw = rng.random()
            if draw < invalid:
                out.write(f"not-an-address-{number},First,Last,Company,Title,+1555\n")
                continue
            if people and draw < invalid + duplicates:
                person = rng.randrange(people)
                email = f"  Person{person}@Example.COM "
            else:
                person, people = people, people + 1
                email = f"person{person}@example.com"
            company, title = f"Company {person % 997}", f"Title {person % 31}"
            out.write(f"{email},First{person},Last{person},{company},{title},+1555{person:07d}\n")
    return people


def postgres_baseline(database_url: str, csv_path: Path, schema: str) -> float:
    """Seconds PostgreSQL alone needs to COPY the rows into a staging table and upsert them by normalized email."""
    with psycopg.connect(libpq_url(database_url), autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
        conn.execute(f'SET search_path TO "{schema}"')
        conn.execute("CREATE TABLE contacts (email text PRIMARY KEY, email_original text, first_name text, "
                     "last_name text, company text, title text, phone text)")
        conn.execute("CREATE UNLOGGED TABLE stage (email text, first_name text, last_name text, company text, "
                     "title text, phone text)")
        started = time.perf_counter()
        with conn.transaction():
            with conn.cursor().copy("COPY stage FROM STDIN WITH (FORMAT csv, HEADER true)") as copy, \
                    csv_path.open("rb") as source:
                while chunk := source.read(1 << 20):
                    copy.write(chunk)
            conn.execute(
                "INSERT INTO contacts SELECT DISTINCT ON (lower(trim(email))) lower(trim(email)), trim(email), "
                "first_name, last_name, company, title, phone FROM stage ORDER BY lower(trim(email)) "
                "ON CONFLICT (email) DO UPDATE SET first_name = EXCLUDED.first_name, "
                "last_name = EXCLUDED.last_name, company = EXCLUDED.company, title = EXCLUDED.title, "
                "phone = EXCLUDED.phone"
            )
        elapsed = time.perf_counter() - started
        conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
    return elapsed


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used (from /proc/<pid>/stat); 0 once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


class BackendCpu:
    """CPU of the PostgreSQL backends serving each service, sampled while they live (a backend's last reading
    before it exits counts; the services' pools keep theirs for the whole run)."""

    def __init__(self, isolation: Isolation) -> None:
        self._names = {f"contacts:{isolation.schema(s)}": s for s in SERVICES}
        self._database_url = isolation.database_url
        self._seconds: dict[int, tuple[str, float]] = {}

    def sample(self) -> None:
        with psycopg.connect(libpq_url(self._database_url), autocommit=True) as conn:
            rows = conn.execute("SELECT pid, application_name FROM pg_stat_activity "
                                "WHERE application_name = ANY(%s)", (list(self._names),)).fetchall()
        for pid, name in rows:
            seconds = cpu_seconds(pid)
            if seconds:
                self._seconds[pid] = (self._names[name], seconds)

    def per_service(self) -> dict[str, float]:
        totals = dict.fromkeys(SERVICES, 0.0)
        for service, seconds in self._seconds.values():
            totals[service] += seconds
        return totals

    async def run(self, every: float = 1.0) -> None:
        while True:
            await asyncio.to_thread(self.sample)
            await asyncio.sleep(every)


def table_writes(isolation: Isolation) -> dict[str, int]:
    """Rows inserted, updated and deleted in each service's tables (PostgreSQL's statistics; temp tables and
    staging excluded)."""
    schemas = {isolation.schema(s): s for s in SERVICES}
    with psycopg.connect(libpq_url(isolation.database_url), autocommit=True) as conn:
        rows = conn.execute("SELECT schemaname, sum(n_tup_ins + n_tup_upd + n_tup_del) FROM pg_stat_user_tables "
                            "WHERE schemaname = ANY(%s) GROUP BY 1", (list(schemas),)).fetchall()
    writes = dict.fromkeys(SERVICES, 0)
    for schema, count in rows:
        writes[schemas[schema]] = int(count or 0)
    return writes


async def kafka_records(bootstrap: str, prefix: str) -> dict[str, int]:
    """Records on every topic of this run, counted by reading them all (Tansu's end offsets can be low)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest")
    await consumer.start()
    try:
        topics = sorted(t for t in await consumer.topics() if t.startswith(prefix))
        counts = dict.fromkeys((t.removeprefix(prefix) for t in topics), 0)
        if not topics:
            return counts
        consumer.subscribe(topics)
        quiet_since = time.monotonic()
        while time.monotonic() - quiet_since < 5:
            batches = await consumer.getmany(timeout_ms=500, max_records=50_000)
            for tp, records in batches.items():
                counts[tp.topic.removeprefix(prefix)] += len(records)
                quiet_since = time.monotonic()
        return counts
    finally:
        await consumer.stop()


def count_projected(isolation: Isolation) -> tuple[int, int]:
    """(canonical profiles created, the organizer's contacts) in profiles' read model."""
    with psycopg.connect(libpq_url(isolation.database_url)) as conn:
        schema = isolation.schema("profiles")
        profiles = conn.execute(f'SELECT count(*) FROM "{schema}".contact_profiles WHERE created_at IS NOT NULL'
                                ).fetchone()
        views = conn.execute(f'SELECT count(*) FROM "{schema}".organizer_contacts WHERE organizer_id = %s',
                             (ORGANIZER,)).fetchone()
    assert profiles is not None and views is not None  # count(*) always returns one row
    return profiles[0], views[0]


async def import_file(client: httpx.AsyncClient, base_url: str, headers: dict[str, str], csv_path: Path
                      ) -> dict[str, Any]:
    """Upload with auto_start and poll until the import is final; returns its status and the seconds taken."""
    started = time.perf_counter()
    with csv_path.open("rb") as upload:
        response = await client.post(f"{base_url}/v1/imports", headers=headers, params={"auto_start": "true"},
                                     files={"file": ("bench.csv", upload, "text/csv")})
    response.raise_for_status()
    import_id = response.json()["import_id"]
    while True:
        status = (await client.get(f"{base_url}/v1/imports/{import_id}", headers=headers)).json()
        if status["status"] in ("processed", "error"):
            return {**status, "seconds": time.perf_counter() - started}
        await asyncio.sleep(0.25)


async def run_pipeline(isolation: Isolation, csv_path: Path, people: int, *, logs: Path, tansu_pid: int,
                       idle_seconds: float, profile: Iterable[str], compression: str) -> dict[str, Any]:
    env = {**isolation.env(), "CONTACTS_KAFKA_COMPRESSION_TYPE": compression}
    processes = {name: ServiceProcess(name, env=env, base_url=isolation.base_url(name),
                                      log_path=logs / f"{name}.log") for name in SERVICES}
    await asyncio.gather(*(p.start() for p in processes.values()))
    samplers = {name: profiling.attach(processes[name].pid or 0, logs / f"{name}.pyspy") for name in profile}
    backends = BackendCpu(isolation)
    sampling = asyncio.create_task(backends.run())
    token = mint_token(secret=isolation.auth_secret, organizer_id=ORGANIZER, ttl_seconds=7200)
    headers = {"Authorization": f"Bearer {token}"}
    ingest_url = processes["ingest"].base_url
    tansu_before = cpu_seconds(tansu_pid)
    ready = {name: cpu_seconds(p.pid or 0) for name, p in processes.items()}  # start-up is not per-row work
    started = time.perf_counter()
    try:
        async with httpx.AsyncClient(timeout=600) as client:
            first = await import_file(client, ingest_url, headers, csv_path)
            while any(count < people for count in count_projected(isolation)):  # noqa: ASYNC110 - another process
                await asyncio.sleep(0.5)
            projected = time.perf_counter() - started
            backends.sample()
            cpu = {name: cpu_seconds(p.pid or 0) - ready[name] for name, p in processes.items()}
            database_cpu = backends.per_service()
            tansu_cpu = cpu_seconds(tansu_pid) - tansu_before
            await asyncio.sleep(2)  # statistics are reported at transaction end, a moment later
            writes = table_writes(isolation)
            records = await kafka_records(isolation.kafka_bootstrap, isolation.topic_prefix)
            idle_before = {name: cpu_seconds(p.pid or 0) for name, p in processes.items()}
            idle_before["tansu"] = cpu_seconds(tansu_pid)
            await asyncio.sleep(idle_seconds)
            idle = {name: (cpu_seconds(p.pid or 0) - idle_before[name]) / idle_seconds
                    for name, p in processes.items()}
            idle["tansu"] = (cpu_seconds(tansu_pid) - idle_before["tansu"]) / idle_seconds
            again = await import_file(client, ingest_url, headers, csv_path)
        rss = {name: peak_rss_mib(p.pid or 0) for name, p in processes.items()}
    finally:
        sampling.cancel()
        for sampler in samplers.values():
            sampler.send_signal(2)
            sampler.wait()
        await asyncio.gather(*(p.stop() for p in processes.values()), return_exceptions=True)
    for name in samplers:
        print(f"--- py-spy: {name}\n{profiling.summarize(logs / f'{name}.pyspy')}", flush=True)
    return {
        "status": first["status"], "created": first["created"], "matched": first["matched"],
        "errors": first["errors"], "processed_seconds": first["seconds"], "projected_seconds": projected,
        "reimport": {"status": again["status"], "created": again["created"], "matched": again["matched"],
                     "errors": again["errors"], "processed_seconds": again["seconds"]},
        "cpu_seconds": cpu, "database_cpu_seconds": database_cpu, "tansu_cpu_seconds": tansu_cpu,
        "table_writes": writes, "kafka_records": records, "peak_rss_mib": rss, "idle_core_share": idle,
    }


def per_row(result: dict[str, Any], rows: int, baseline: float) -> dict[str, Any]:
    micro = 1e6 / rows
    return {
        "processed_ratio": result["processed_seconds"] / baseline,
        "projected_ratio": result["projected_seconds"] / baseline,
        "reimport_ratio": result["reimport"]["processed_seconds"] / result["processed_seconds"],
        "cpu_us_per_row": {s: round(result["cpu_seconds"][s] * micro, 1) for s in SERVICES},
        "database_cpu_us_per_row": {s: round(result["database_cpu_seconds"][s] * micro, 1) for s in SERVICES},
        "tansu_cpu_us_per_row": round(result["tansu_cpu_seconds"] * micro, 1),
        "total_cpu_us_per_row": round((sum(result["cpu_seconds"].values()) + sum(
            result["database_cpu_seconds"].values()) + result["tansu_cpu_seconds"]) * micro, 1),
        "writes_per_row": round(sum(result["table_writes"].values()) / rows, 2),
        "records_per_row": round(sum(result["kafka_records"].values()) / rows, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--duplicates", type=float, default=0.1)
    parser.add_argument("--invalid", type=float, default=0.01)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--idle-seconds", type=float, default=20.0)
    parser.add_argument("--compression", default="zstd", choices=["none", "gzip", "lz4", "zstd"],
                        help="the services' producers compress record batches so (CONTACTS_KAFKA_COMPRESSION_TYPE)")
    parser.add_argument("--profile", action="append", default=[], choices=SERVICES,
                        help="sample this service with py-spy (.venv/bin/pip install py-spy) and print a summary")
    parser.add_argument("--database-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="contacts-bench-"))
    csv_path = work / "bench.csv"
    people = generate_csv(csv_path, rows=args.rows, duplicates=args.duplicates, invalid=args.invalid)
    print(f"generated {args.rows:,} rows ({people:,} people, {csv_path.stat().st_size / 2**20:.0f} MiB); "
          f"load average {os.getloadavg()}", flush=True)
    runs = []
    for number in range(1, args.runs + 1):
        broker = start_broker(port=free_port(), log_path=work / f"tansu-{number}.log")  # a fresh log per run
        isolation = Isolation(database_url=args.database_url, kafka_bootstrap=broker.bootstrap_servers)
        try:
            baseline = postgres_baseline(args.database_url, csv_path, f"bench_baseline_{isolation.id}")
            isolation.migrate()
            logs = work / f"run-{number}"
            logs.mkdir()
            result = asyncio.run(run_pipeline(isolation, csv_path, people, logs=logs, tansu_pid=broker.process.pid,
                                              idle_seconds=args.idle_seconds, profile=args.profile,
                                              compression=args.compression))
        finally:
            isolation.drop_schemas()
            broker.stop()
        result = {"run": number, "compression": args.compression, "baseline_seconds": baseline, **result,
                  **per_row(result, args.rows, baseline)}
        runs.append(result)
        (logs / "result.json").write_text(json.dumps(result, indent=2))
        print(json.dumps(result, indent=2), flush=True)
    summary = {key: statistics.median(run[key] for run in runs) for key in (
        "baseline_seconds", "processed_seconds", "projected_seconds", "processed_ratio", "projected_ratio",
        "reimport_ratio", "total_cpu_us_per_row", "writes_per_row", "records_per_row")}
    print(json.dumps({"rows": args.rows, "people": people, "runs": len(runs), "median": summary,
                      "load_average_after": os.getloadavg()}, indent=2))
    print(f"logs: {work}")


if __name__ == "__main__":
    main()
