"""The local broker keeps its log in memory: killed and restarted empty while an import waits for identity's
answers, it loses every row ingest handed on. ingest notices by itself (the marker of its last batch is gone) and
publishes the unanswered rows again at once, under their ids, without waiting for the deadline; identity then
answers them and the import finishes with exact counts."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ops.local_broker import LocalBroker, start_broker
from shared import topics
from shared.auth import mint_token
from shared.events import ImportRowReceivedV1
from tests.support.isolation import Isolation
from tests.support.kafka import consume_until
from tests.support.ports import free_port
from tests.support.processes import ServiceProcess
from tests.support.waiting import wait_until

pytestmark = pytest.mark.e2e

ROWS = 40


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[list[LocalBroker]]:
    """A broker of this test's own (it is killed), in a list so the test can replace it."""
    brokers = [start_broker(port=free_port(), log_path=tmp_path / "tansu-1.log")]
    yield brokers
    brokers[0].stop()


async def row_ids(isolation: Isolation, import_id: str) -> set[str]:
    """The ids of the import's rows on the rows topic once all are there (read afresh until then: the topic may be
    re-created meanwhile)."""

    def mine(seen: list[Any]) -> set[str]:
        return {c.envelope.id for c in seen
                if isinstance(c.event, ImportRowReceivedV1) and c.event.import_id == import_id}

    async def all_there() -> set[str]:
        seen = await consume_until(isolation.kafka_bootstrap, isolation.topic(topics.IMPORT_ROWS),
                                   lambda got: len(mine(got)) >= ROWS, timeout=10)
        return mine(seen)

    return await wait_until(all_there, timeout=150, interval=1, description=f"the {ROWS} rows on the topic")


async def test_rows_the_broker_lost_are_published_again_and_the_import_finishes_exactly(
    database_url: str, own_broker: list[LocalBroker], tmp_path: Path
) -> None:
    isolation = Isolation(database_url=database_url, kafka_bootstrap=own_broker[0].bootstrap_servers)
    isolation.migrate(("ingest", "identity"))
    env = {**isolation.env(), "CONTACTS_INGEST_SWEEP_SECONDS": "0.5", "CONTACTS_INGEST_BROKER_CHECK_SECONDS": "1"}
    ingest = ServiceProcess("ingest", env=env, base_url=isolation.base_url("ingest"), log_path=tmp_path / "ingest.log")
    identity = ServiceProcess.for_isolation(isolation, "identity", log_dir=tmp_path)
    await ingest.start()
    try:
        organizer, domain = f"org-{uuid.uuid4().hex[:8]}", f"{uuid.uuid4().hex[:8]}.example"
        token = mint_token(secret=isolation.auth_secret, organizer_id=organizer, ttl_seconds=600)
        async with httpx.AsyncClient(base_url=ingest.base_url, headers={"Authorization": f"Bearer {token}"},
                                     timeout=30) as client:
            content = "email\n" + "".join(f"p{n}@{domain}\n" for n in range(ROWS))
            response = await client.post("/v1/imports", params={"auto_start": "true"},
                                         files={"file": ("c.csv", content.encode(), "text/csv")})
            assert response.status_code == 202, response.text
            import_id = response.json()["import_id"]

            async def status(*wanted: str) -> dict[str, Any] | None:
                view: dict[str, Any] = (await client.get(f"/v1/imports/{import_id}")).json()
                return view if view["status"] in wanted else None

            await wait_until(lambda: status("processing"), timeout=30, description="every row handed on")
            before = await row_ids(isolation, import_id)

            broker = own_broker[0]
            broker.process.kill()  # every message in memory is gone
            broker.process.wait()
            own_broker[0] = start_broker(port=broker.port, log_path=tmp_path / "tansu-2.log")

            again = await row_ids(isolation, import_id)  # published again into the new log, before any deadline
            assert again == before
            await identity.start()
            done = await wait_until(lambda: status("processed", "error"), timeout=120, description="finished")
        assert (done["status"], done["processed_rows"], done["created"], done["matched"], done["errors"]) == (
            "processed", ROWS, ROWS, 0, 0
        )
        assert '"import.rows_lost"' in ingest.log_path.read_text()
    finally:
        await asyncio.gather(identity.stop(), ingest.stop(), return_exceptions=True)
        isolation.drop_schemas()
