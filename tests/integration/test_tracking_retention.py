"""What deduplicates messages that may come again (identity's applied interactions and row answers; the legacy
tracking records) is deleted once older than the retention, by each running service, so those tables do not grow
forever; younger rows stay and keep deduplicating."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import psycopg
import pytest

from ops.local_postgres import libpq_url
from services.identity.app import EXPIRING
from shared.db import create_engine
from shared.retention import Pruner
from tests.support.isolation import Isolation
from tests.support.processes import ServiceProcess
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration


def seed(isolation: Isolation, *, old: int, young: int) -> None:
    schema = isolation.schema("identity")
    with psycopg.connect(libpq_url(isolation.database_url), autocommit=True) as conn:
        for kind, count, age in (("old", old, "8 days"), ("young", young, "6 days")):
            conn.execute(
                f'INSERT INTO "{schema}".applied_interactions (source, id, applied_at) '
                f"SELECT '{kind}', 'i-' || n, now() - interval '{age}' - n * interval '1 second' "
                "FROM generate_series(1, %s) n",
                (count,),
            )
            conn.execute(
                f'INSERT INTO "{schema}".row_answers (import_id, partition, first_row, last_row, payload, '
                f"recorded_at) SELECT '{kind}', 0, n, n, '{{}}', now() - interval '{age}' "
                "FROM generate_series(1, %s) n",
                (count,),
            )


def remaining(isolation: Isolation) -> dict[str, tuple[int, int]]:
    schema = isolation.schema("identity")
    with psycopg.connect(libpq_url(isolation.database_url)) as conn:
        interactions: dict[str, int] = dict(conn.execute(
            f'SELECT source, count(*) FROM "{schema}".applied_interactions GROUP BY 1').fetchall())
        answers: dict[str, int] = dict(conn.execute(
            f'SELECT import_id, count(*) FROM "{schema}".row_answers GROUP BY 1').fetchall())
    return {kind: (interactions.get(kind, 0), answers.get(kind, 0)) for kind in interactions.keys() | answers.keys()}


async def test_the_pruner_deletes_only_rows_older_than_the_retention_in_chunks(isolation: Isolation) -> None:
    isolation.migrate(("identity",))
    seed(isolation, old=25_000, young=300)
    engine = create_engine(isolation.database_url, schema=isolation.schema("identity"))
    try:
        pruner = Pruner(engine, targets=EXPIRING, retention=timedelta(days=7), interval=3600)
        assert await pruner.prune_once() == 50_000  # chunks of at most 10,000 per table
        assert await pruner.prune_once() == 0
    finally:
        await engine.dispose()
    assert remaining(isolation) == {"young": (300, 300)}


async def test_a_running_identity_prunes_what_it_keeps_to_deduplicate(isolation: Isolation, tmp_path: Path) -> None:
    isolation.migrate(("identity",))
    seed(isolation, old=500, young=20)
    process = ServiceProcess(
        "identity",
        env={**isolation.env(), "CONTACTS_TRACKING_RETENTION_HOURS": "168",
             "CONTACTS_TRACKING_PRUNE_INTERVAL_SECONDS": "1"},
        base_url=isolation.base_url("identity"),
        log_path=tmp_path / "identity.log",
    )
    try:
        await process.start()
        await wait_until(lambda: remaining(isolation) == {"young": (20, 20)}, timeout=30,
                         description="identity to prune its old records")
        assert "retention.pruned" in process.log_path.read_text()
    finally:
        await process.stop()
