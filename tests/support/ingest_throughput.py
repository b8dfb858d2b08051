"""ingest alone, measured (not a test): the CPU it spends per row to read a CSV (the survey pass and the reading
pass), check every row, encode its ``ImportRowReceivedV1`` and publish it to a real broker (a local Tansu), batch
by batch as the importer does, waiting for every acknowledgement. Prints µs of this process's CPU per row, the
wall time and the peak RSS.

    .venv/bin/python -m tests.support.ingest_throughput --rows 1000000
"""

from __future__ import annotations

import argparse
import asyncio
import random
import resource
import tempfile
import time
from pathlib import Path

from ops.local_broker import free_port, start_broker
from services.ingest.importer import RowEvents
from services.ingest.reading.csv_rows import CsvRows
from shared.kafka import ensure_topics
from shared.producer import create_producer
from shared.topics import IMPORT_ROWS

HEADER = "email,first_name,last_name,company,title,phone\n"


def generate_csv(path: Path, *, rows: int, duplicates: float = 0.1, invalid: float = 0.01, seed: int = 1) -> None:
    """Rows like the pipeline benchmark's: a ``duplicates`` share repeat an earlier person in another spelling,
    an ``invalid`` share has an email that cannot be one."""
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
                email = f"person{person}@example.com" if rng.random() >= invalid else f"person{person}@@example"
            company, title = f"Company {person % 997}", f"Title {person % 31}"
            out.write(f"{email},First{person},Last{person},{company},{title},+1555{person:07d}\n")


async def measure(path: Path, *, bootstrap: str, batch_size: int) -> dict[str, float]:
    await ensure_topics(bootstrap, prefix="measure.", topics=[IMPORT_ROWS])
    topic = IMPORT_ROWS.qualified("measure.")
    producer = create_producer(bootstrap)
    await producer.start()
    try:
        partitions = sorted(await producer.partitions_for(topic))
        cpu, wall = time.process_time(), time.perf_counter()
        rows = await asyncio.to_thread(CsvRows, path)
        events = RowEvents(import_id="5f0c8b6e-8e1d-4d7e-9d36-0d7a1c2b3e4f", organizer_id="measure", topic=topic,
                           partitions=partitions, new_batch=producer.create_batch)
        published = rejected = 0
        done = False
        while not done:
            batch = await asyncio.to_thread(rows.next_batch, batch_size)
            built = await asyncio.to_thread(events.batches, batch.valid)
            sent = [await producer.send_batch(records, topic, partition=p) for p, records, _ in built]
            await asyncio.gather(*sent)
            published += len(batch.valid)
            rejected += len(batch.rejected)
            done = batch.done
        rows.close()
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    finally:
        await producer.stop()
    total = published + rejected
    return {
        "rows": total, "published": published, "rejected": rejected, "cpu_us_per_row": cpu / total * 1e6,
        "wall_seconds": wall, "rows_per_second": total / wall,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--batch-size", type=int, default=5000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ingest-measure-") as scratch:
        path = Path(scratch) / "contacts.csv"
        generate_csv(path, rows=args.rows)
        size = path.stat().st_size
        broker = start_broker(port=free_port(), log_path=Path(scratch) / "tansu.log")
        try:
            figures = asyncio.run(measure(path, bootstrap=broker.bootstrap_servers, batch_size=args.batch_size))
        finally:
            broker.stop()
    print({**figures, "file_mib": round(size / 2**20, 1)})


if __name__ == "__main__":
    main()
