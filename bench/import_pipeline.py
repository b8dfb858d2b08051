"""Benchmark: a generated CSV imported end to end through the four services on Tansu and PostgreSQL, against
PostgreSQL's own COPY-and-upsert of the same rows (the target: within 2x).

    .venv/bin/python bench/import_pipeline.py --rows 1000000 --duplicates 0.1

Reports rows/s to ``processed`` (every row resolved by identity and counted by ingest), time until the profiles
read model holds every contact, and the ingest process's peak RSS (VmHWM). Not a test: run it by hand."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from services.local_broker import free_port, start_broker  # noqa: E402
from services.local_postgres import libpq_url  # noqa: E402
from shared.auth import mint_token  # noqa: E402
from tests.support.isolation import Isolation  # noqa: E402
from tests.support.processes import ServiceProcess  # noqa: E402

HEADER = "email,first_name,last_name,company,title,phone\n"


def generate_csv(path: Path, *, rows: int, duplicates: float, seed: int = 1) -> int:
    """Write ``rows`` rows of which a ``duplicates`` share repeat an earlier person in another spelling.
    Returns the number of distinct people."""
    rng = random.Random(seed)
    people = 0
    with path.open("w", encoding="utf-8") as out:
        out.write(HEADER)
        for _ in range(rows):
            if people and rng.random() < duplicates:
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
    """User + system CPU time the process has used (from /proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def count_profiles(isolation: Isolation) -> int:
    with psycopg.connect(libpq_url(isolation.database_url)) as conn:
        table = f'"{isolation.schema("profiles")}".contact_profiles'
        # a display name can arrive before its contact and leave a placeholder row without created_at
        return conn.execute(f"SELECT count(*) FROM {table} WHERE created_at IS NOT NULL").fetchone()[0]


async def run_pipeline(isolation: Isolation, csv_path: Path, people: int, logs: Path) -> dict[str, float]:
    processes = {
        name: ServiceProcess(
            name, env=isolation.env(), base_url=isolation.base_url(name), log_path=logs / f"{name}.log"
        )
        for name in ("ingest", "identity", "enrichment", "profiles")
    }
    await asyncio.gather(*(p.start() for p in processes.values()))
    token = mint_token(secret=isolation.auth_secret, organizer_id="bench", ttl_seconds=7200)
    headers = {"Authorization": f"Bearer {token}"}
    try:
        async with httpx.AsyncClient(timeout=600) as client:
            started = time.perf_counter()
            with csv_path.open("rb") as upload:
                response = await client.post(f"{processes['ingest'].base_url}/v1/imports", headers=headers,
                                             files={"file": ("bench.csv", upload, "text/csv")},
                                             params={"auto_start": "true"})
            response.raise_for_status()
            uploaded = time.perf_counter() - started
            import_id = response.json()["import_id"]
            status: dict = {}
            while True:
                status = (await client.get(f"{processes['ingest'].base_url}/v1/imports/{import_id}",
                                           headers=headers)).json()
                if status["status"] in ("processed", "error"):
                    break
                await asyncio.sleep(0.25)
            processed = time.perf_counter() - started
            while count_profiles(isolation) < people:  # noqa: ASYNC110 - polling another process's database
                await asyncio.sleep(0.5)
            profiled = time.perf_counter() - started
        return {
            "upload_seconds": uploaded,
            "processed_seconds": processed,
            "profiles_complete_seconds": profiled,
            "status": status["status"],
            "created": status["created"],
            "matched": status["matched"],
            "errors": status["errors"],
            **{f"{name}_peak_rss_mib": peak_rss_mib(p.pid or 0) for name, p in processes.items()},
            **{f"{name}_cpu_seconds": cpu_seconds(p.pid or 0) for name, p in processes.items()},
        }
    finally:
        await asyncio.gather(*(p.stop() for p in processes.values()), return_exceptions=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--duplicates", type=float, default=0.1)
    parser.add_argument("--database-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="contacts-bench-"))
    csv_path = work / "bench.csv"
    started = time.perf_counter()
    people = generate_csv(csv_path, rows=args.rows, duplicates=args.duplicates)
    print(f"generated {args.rows:,} rows ({people:,} people, {csv_path.stat().st_size / 2**20:.0f} MiB) "
          f"in {time.perf_counter() - started:.1f} s", flush=True)

    broker = start_broker(port=free_port(), log_path=work / "tansu.log")
    isolation = Isolation(database_url=args.database_url, kafka_bootstrap=broker.bootstrap_servers)
    try:
        baseline = postgres_baseline(args.database_url, csv_path, f"bench_baseline_{isolation.id}")
        print(f"PostgreSQL COPY + upsert baseline: {baseline:.1f} s ({args.rows / baseline:,.0f} rows/s)", flush=True)
        isolation.migrate()
        result = asyncio.run(run_pipeline(isolation, csv_path, people, work))
    finally:
        isolation.drop_schemas()
        broker.stop()
    result |= {"rows": args.rows, "people": people, "baseline_seconds": baseline,
               "rows_per_second": args.rows / result["processed_seconds"],
               "ratio_to_baseline": result["processed_seconds"] / baseline}
    print(json.dumps(result, indent=2))
    print(f"logs: {work}")


if __name__ == "__main__":
    main()
