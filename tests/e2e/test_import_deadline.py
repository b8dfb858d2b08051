"""Nothing stuck: ingest and identity as processes on Tansu and PostgreSQL. Rows identity does not answer within
the deadline are published again once, under the same ids; if still unanswered, the import ends in ``error``
saying which rows and why, readiness shows the cause, and answers that come later still finish it exactly. When
identity comes back in time, the import completes as if nothing happened."""

from __future__ import annotations

import asyncio
import os
import signal
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from shared import topics
from shared.auth import mint_token
from shared.events import ImportRowReceivedV1
from tests.support.isolation import Isolation
from tests.support.kafka import consume_until
from tests.support.processes import ServiceProcess
from tests.support.waiting import wait_until

pytestmark = pytest.mark.e2e

DEADLINE = 3.0


class Stack:
    def __init__(self, isolation: Isolation, ingest: ServiceProcess, identity: ServiceProcess) -> None:
        self.isolation, self.ingest, self.identity = isolation, ingest, identity
        self.organizer = f"org-{uuid.uuid4().hex[:8]}"
        token = mint_token(secret=isolation.auth_secret, organizer_id=self.organizer, ttl_seconds=600)
        self.headers = {"Authorization": f"Bearer {token}"}

    async def upload(self, content: str) -> str:
        async with httpx.AsyncClient(base_url=self.ingest.base_url, headers=self.headers, timeout=30) as client:
            response = await client.post("/v1/imports", params={"auto_start": "true"},
                                         files={"file": ("c.csv", content.encode(), "text/csv")})
        assert response.status_code == 202, response.text
        return str(response.json()["import_id"])

    async def get(self, path: str) -> Any:
        async with httpx.AsyncClient(base_url=self.ingest.base_url, headers=self.headers, timeout=30) as client:
            return (await client.get(path)).json()

    async def status(self, import_id: str, *wanted: str, timeout: float = 60) -> dict[str, Any]:  # noqa: ASYNC109
        async def reached() -> dict[str, Any] | None:
            view: dict[str, Any] = await self.get(f"/v1/imports/{import_id}")
            return view if view["status"] in wanted else None

        return await wait_until(reached, timeout=timeout, description=f"{import_id} in {wanted}")

    async def row_ids(self, import_id: str, copies: int, rows: int) -> list[str]:
        """The ce_id of every ImportRowReceivedV1 of the import, once each row is on the topic ``copies`` times."""

        def mine(seen: list[Any]) -> list[str]:
            return [c.envelope.id for c in seen
                    if isinstance(c.event, ImportRowReceivedV1) and c.event.import_id == import_id]

        seen = await consume_until(self.isolation.kafka_bootstrap, self.isolation.topic(topics.IMPORT_ROWS),
                                   lambda s: len(mine(s)) >= copies * rows, timeout=60)
        return mine(seen)


@pytest.fixture
async def stack(migrated: Isolation, tmp_path: Path) -> AsyncIterator[Stack]:
    env = {**migrated.env(), "CONTACTS_INGEST_ANSWER_DEADLINE_SECONDS": str(DEADLINE),
           "CONTACTS_INGEST_SWEEP_SECONDS": "0.5"}
    ingest = ServiceProcess("ingest", env=env, base_url=migrated.base_url("ingest"), log_path=tmp_path / "ingest.log")
    identity = ServiceProcess.for_isolation(migrated, "identity", log_dir=tmp_path)
    await ingest.start()
    try:
        yield Stack(migrated, ingest, identity)
    finally:
        if identity.pid is not None:
            os.kill(identity.pid, signal.SIGCONT) if identity.running else None
        await asyncio.gather(identity.stop(), ingest.stop(), return_exceptions=True)


ROWS = "email,first_name\nada@{d}.example,Ada\ngrace@{d}.example,Grace\nalan@{d}.example,Alan\n"


async def test_with_identity_stopped_for_good_the_import_ends_in_error_naming_the_rows(stack: Stack) -> None:
    began = time.monotonic()
    import_id = await stack.upload(ROWS.format(d=uuid.uuid4().hex[:8]))

    failed = await stack.status(import_id, "error", timeout=30)
    took = time.monotonic() - began
    assert took < 2 * DEADLINE + 8, f"{took:.1f} s"
    assert failed["error"].startswith("identity did not answer 3 rows within 3 s, even after they were published "
                                      "again (rows 1-3)")
    assert (failed["processed_rows"], failed["total_rows"]) == (0, 3)
    ids = await stack.row_ids(import_id, copies=2, rows=3)
    assert len(ids) == 6 and len(set(ids)) == 3, "each row published again once, under its own id"
    ready = await stack.get("/health/ready")
    assert ready["status"] == "ok"
    assert ready["imports"]["timed_out_last_day"] >= 1 and "identity has not answered" in ready["imports"]["cause"]

    await stack.identity.start()  # identity comes back at last: its late answers still count, exactly
    done = await stack.status(import_id, "processed", timeout=90)
    assert (done["processed_rows"], done["created"], done["matched"], done["errors"], done["error"]) == (
        3, 3, 0, 0, None
    )


async def test_when_identity_comes_back_after_the_rows_were_published_again_the_import_completes(
    stack: Stack,
) -> None:
    await stack.identity.start()
    assert stack.identity.pid is not None
    os.kill(stack.identity.pid, signal.SIGSTOP)  # identity stops answering
    try:
        import_id = await stack.upload(ROWS.format(d=uuid.uuid4().hex[:8]))
        await stack.status(import_id, "processing")
        ids = await stack.row_ids(import_id, copies=2, rows=3)  # the deadline passed: published again
        assert len(set(ids)) == 3
    finally:
        os.kill(stack.identity.pid, signal.SIGCONT)  # ... and is back

    done = await stack.status(import_id, "processed", "error", timeout=90)
    assert (done["status"], done["processed_rows"], done["created"], done["matched"], done["errors"]) == (
        "processed", 3, 3, 0, 0
    )
    assert done["error"] is None
