"""Tracking records (ids of applied messages) are deleted once older than the retention, by each running service,
so the table does not grow by a row per consumed message forever; younger ones stay and keep deduplicating."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import psycopg
import pytest

from services.local_postgres import libpq_url
from shared.db import create_engine
from shared.tracking import TrackingPruner
from tests.support.isolation import Isolation
from tests.support.processes import ServiceProcess
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration


def seed(isolation: Isolation, schema: str, *, old: int, young: int) -> None:
    with psycopg.connect(libpq_url(isolation.database_url), autocommit=True) as conn:
        conn.execute(
            f'INSERT INTO "{schema}".processed_messages (consumer, message_id, processed_at) '
            "SELECT 'g', 'old-' || n, now() - interval '8 days' - n * interval '1 second' "
            "FROM generate_series(1, %s) n",
            (old,),
        )
        conn.execute(
            f'INSERT INTO "{schema}".processed_messages (consumer, message_id, processed_at) '
            "SELECT 'g', 'young-' || n, now() - interval '6 days' FROM generate_series(1, %s) n",
            (young,),
        )


def remaining(isolation: Isolation, schema: str) -> dict[str, int]:
    with psycopg.connect(libpq_url(isolation.database_url)) as conn:
        rows = conn.execute(
            f"SELECT split_part(message_id, '-', 1), count(*) FROM \"{schema}\".processed_messages GROUP BY 1"
        ).fetchall()
    return {kind: count for kind, count in rows}


async def test_the_pruner_deletes_only_records_older_than_the_retention_in_chunks(isolation: Isolation) -> None:
    isolation.migrate(("enrichment",))
    schema = isolation.schema("enrichment")
    seed(isolation, schema, old=25_000, young=300)
    engine = create_engine(isolation.database_url, schema=schema)
    try:
        pruner = TrackingPruner(engine, retention=timedelta(days=7), interval=3600)
        assert await pruner.prune_once() == 25_000  # three chunks of at most 10,000
        assert await pruner.prune_once() == 0
    finally:
        await engine.dispose()
    assert remaining(isolation, schema) == {"young": 300}


async def test_a_running_service_prunes_its_tracking_records(isolation: Isolation, tmp_path: Path) -> None:
    isolation.migrate(("identity",))
    schema = isolation.schema("identity")
    seed(isolation, schema, old=500, young=20)
    process = ServiceProcess(
        "identity",
        env={**isolation.env(), "CONTACTS_TRACKING_RETENTION_HOURS": "168",
             "CONTACTS_TRACKING_PRUNE_INTERVAL_SECONDS": "1"},
        base_url=isolation.base_url("identity"),
        log_path=tmp_path / "identity.log",
    )
    try:
        await process.start()
        await wait_until(lambda: remaining(isolation, schema) == {"young": 20}, timeout=30,
                         description="identity to prune its old tracking records")
        assert "tracking.pruned" in process.log_path.read_text()
    finally:
        await process.stop()
