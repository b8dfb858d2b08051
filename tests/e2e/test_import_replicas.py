"""Ingest scales out: two ingest processes share the imports (files in PostgreSQL, one consumer group). The one
that received the upload is killed while reading it; the other resumes from the checkpoint with the file it
fetches from PostgreSQL and finishes the import, with exact counts."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path

import httpx
import psycopg
import pytest

from ops.local_postgres import libpq_url
from shared.auth import mint_token
from tests.support.isolation import Isolation
from tests.support.ports import free_port
from tests.support.processes import ServiceProcess
from tests.support.waiting import wait_until

pytestmark = pytest.mark.e2e

ROWS = 30_000


def parsed_rows(isolation: Isolation, import_id: str) -> int:
    with psycopg.connect(libpq_url(isolation.database_url)) as conn:
        row = conn.execute(
            f'SELECT parsed_rows FROM "{isolation.schema("ingest")}".imports WHERE import_id = %s', (import_id,)
        ).fetchone()
    return int(row[0]) if row else 0


async def test_the_other_instance_finishes_an_import_whose_instance_died(migrated: Isolation, tmp_path: Path) -> None:
    shared = {**migrated.env(), "CONTACTS_INGEST_SWEEP_SECONDS": "0.5", "CONTACTS_INGEST_PUBLISH_BATCH_SIZE": "100"}
    first = ServiceProcess("ingest", env={**shared, "CONTACTS_INGEST_DATA_DIR": str(tmp_path / "first")},
                           base_url=migrated.base_url("ingest"), log_path=tmp_path / "ingest-first.log")
    port = free_port()
    second = ServiceProcess(
        "ingest",
        env={**shared, "CONTACTS_INGEST_HTTP_PORT": str(port), "CONTACTS_INGEST_DATA_DIR": str(tmp_path / "second")},
        base_url=f"http://127.0.0.1:{port}", log_path=tmp_path / "ingest-second.log",
    )
    identity = ServiceProcess.for_isolation(migrated, "identity", log_dir=tmp_path)
    await asyncio.gather(first.start(), second.start(), identity.start())
    try:
        organizer, domain = f"org-{uuid.uuid4().hex[:8]}", f"{uuid.uuid4().hex[:8]}.example"
        token = mint_token(secret=migrated.auth_secret, organizer_id=organizer, ttl_seconds=600)
        headers = {"Authorization": f"Bearer {token}"}
        content = "email,first_name\n" + "".join(f"p{n}@{domain},P{n}\n" for n in range(ROWS))
        async with httpx.AsyncClient(headers=headers, timeout=60) as client:
            response = await client.post(f"{first.base_url}/v1/imports", params={"auto_start": "true"},
                                         files={"file": ("big.csv", content.encode(), "text/csv")})
            assert response.status_code == 202, response.text
            import_id = response.json()["import_id"]

            await wait_until(lambda: parsed_rows(migrated, import_id) > 0, timeout=60, interval=0.02,
                             description="the first instance has handed on some rows")
            await first.kill()  # SIGKILL in the middle of reading
            checkpoint = parsed_rows(migrated, import_id)
            assert 0 < checkpoint < ROWS, f"killed at checkpoint {checkpoint}"

            async def finished() -> dict[str, object] | None:
                view = (await client.get(f"{second.base_url}/v1/imports/{import_id}")).json()
                return view if view["status"] in ("processed", "error") else None

            done = await wait_until(finished, timeout=180, description="the second instance finishes the import")
        assert (done["status"], done["total_rows"], done["processed_rows"], done["created"], done["matched"],
                done["errors"]) == ("processed", ROWS, ROWS, ROWS, 0, 0)
        resumed = [json.loads(line) for line in second.log_path.read_text().splitlines()
                   if '"import.file_read"' in line and import_id in line]
        assert resumed and resumed[0]["resumed_after"] >= checkpoint, "the second instance read it from the checkpoint"
        assert not (tmp_path / "second" / f"{import_id}.csv").exists(), "its copy of the file is gone once read"
    finally:
        await asyncio.gather(first.stop(), second.stop(), identity.stop(), return_exceptions=True)
