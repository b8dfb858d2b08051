"""Real files through the running ingest and identity processes (Tansu + PostgreSQL): every encoding and delimiter
an organizer's spreadsheet may be saved in arrives with every character intact, and files that cannot be imported
end in ``error`` with a message that says why, never a crash or a stuck import."""

from __future__ import annotations

import asyncio
import codecs
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
from tests.support.kafka import import_row_events
from tests.support.processes import ServiceProcess
from tests.support.waiting import wait_until

pytestmark = pytest.mark.e2e

PEOPLE = [
    ("juergen@example.de", "Jürgen", "Müller", "Bäckerei Größe GmbH"),
    ("francois@example.fr", "François", "Lefèvre", "Société Générale, “Paris”; €"),
    ("zoe@example.com", "Zoë", "Ødegård", "Line one\nline two | piped"),
]
HEADER = ("email", "first_name", "last_name", "company")


def csv_text(delimiter: str, newline: str = "\r\n") -> str:
    def cell(value: str) -> str:
        if any(ch in value for ch in ',;\t|"\n'):
            return '"' + value.replace('"', '""') + '"'
        return value

    return "".join(delimiter.join(cell(v) for v in row) + newline for row in (HEADER, *PEOPLE))


class Stack:
    def __init__(self, isolation: Isolation, client: httpx.AsyncClient) -> None:
        self.isolation = isolation
        self.client = client
        self.ingest = isolation.base_url("ingest")

    def uploaded_file(self, import_id: str) -> Path:
        return self.isolation.data_dir / "uploads" / f"{import_id}.csv"

    def auth(self, organizer: str) -> dict[str, str]:
        token = mint_token(secret=self.isolation.auth_secret, organizer_id=organizer, ttl_seconds=600)
        return {"Authorization": f"Bearer {token}"}

    async def upload(self, organizer: str, data: bytes, filename: str = "contacts.csv") -> str:
        response = await self.client.post(
            f"{self.ingest}/v1/imports",
            params={"auto_start": "true"},
            headers=self.auth(organizer),
            files={"file": (filename, data, "text/csv")},
        )
        assert response.status_code == 202, response.text
        return str(response.json()["import_id"])

    async def finished(self, organizer: str, import_id: str) -> dict[str, Any]:
        async def done() -> dict[str, Any] | None:
            response = await self.client.get(f"{self.ingest}/v1/imports/{import_id}", headers=self.auth(organizer))
            assert response.status_code == 200, response.text
            body = response.json()
            return body if body["status"] in ("processed", "error") else None

        return await wait_until(done, timeout=90, description=f"import {import_id} to finish")

    async def row_events(self, import_id: str, count: int) -> list[ImportRowReceivedV1]:
        topic = self.isolation.topic(topics.IMPORT_ROWS)
        return await import_row_events(self.isolation.kafka_bootstrap, topic, import_id, count)


@pytest.fixture(scope="module")
async def stack(
    database_url: str, kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Stack]:
    """ingest and identity as processes for the whole module; tests keep apart by organizer."""
    isolation = Isolation(database_url=database_url, kafka_bootstrap=kafka_bootstrap)
    isolation.migrate(("ingest", "identity"))
    logs = tmp_path_factory.mktemp("file-format-logs")
    processes = [ServiceProcess.for_isolation(isolation, name, log_dir=logs) for name in ("ingest", "identity")]
    try:
        await asyncio.gather(*(process.start() for process in processes))
        async with httpx.AsyncClient(timeout=20) as client:
            yield Stack(isolation, client)
    finally:
        await asyncio.gather(*(process.stop() for process in processes), return_exceptions=True)
        isolation.drop_schemas()


def organizer() -> str:
    return f"org-{uuid.uuid4().hex[:8]}"


ENCODED = {
    "utf-8": lambda text: text.encode("utf-8"),
    "utf-8 with BOM": lambda text: codecs.BOM_UTF8 + text.encode("utf-8"),
    "utf-16 with BOM": lambda text: text.encode("utf-16"),
    "utf-16-le without BOM": lambda text: text.encode("utf-16-le"),
    "windows-1252": lambda text: text.encode("cp1252"),
}
LATIN_1_SAFE = [(e, f, last, c.replace("“", '"').replace("”", '"').replace("€", "EUR")) for e, f, last, c in PEOPLE]


@pytest.mark.parametrize(("encoding", "delimiter"), [
    ("utf-8", ","), ("utf-8 with BOM", ";"), ("utf-16 with BOM", "\t"), ("utf-16-le without BOM", ","),
    ("windows-1252", ";"), ("utf-8", "|"), ("windows-1252", "\t"),
])
async def test_every_encoding_and_delimiter_arrives_intact(stack: Stack, encoding: str, delimiter: str) -> None:
    org = organizer()
    import_id = await stack.upload(org, ENCODED[encoding](csv_text(delimiter)))

    status = await stack.finished(org, import_id)
    events = await stack.row_events(import_id, len(PEOPLE))

    assert (status["status"], status["total_rows"], status["created"] + status["matched"], status["errors"]) == (
        "processed", 3, 3, 0
    ), status
    assert [(e.email, e.first_name, e.last_name, e.company) for e in events] == PEOPLE
    assert not stack.uploaded_file(import_id).exists(), "the file is deleted once every row was handed on"


async def test_a_latin_1_file_is_read_as_windows_1252(stack: Stack) -> None:
    org = organizer()
    quoted = (",".join('"' + value.replace('"', '""') + '"' for value in row) for row in (HEADER, *LATIN_1_SAFE))
    text = "".join(line + "\n" for line in quoted)
    import_id = await stack.upload(org, text.encode("latin-1"))

    assert (await stack.finished(org, import_id))["status"] == "processed"
    events = await stack.row_events(import_id, 3)
    assert [(e.email, e.first_name, e.last_name, e.company) for e in events] == LATIN_1_SAFE


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty"),
        (b"email,first_name\r\n", "header row but no rows"),
        (b"PK\x03\x04\x14\x00\x06\x00\x08\x00" + bytes(range(256)) * 8, "Excel workbook"),
        (bytes(range(256)) * 16, "binary data"),
        (b'email,first_name\n"ann@example.com,Ann\nbob@example.com,Bob\n', "quoted value is never closed"),
        (b"name,company\nAnn,Acme\n", "email"),
    ],
    ids=["empty", "header-only", "xlsx", "binary", "broken-quoting", "no-email-column"],
)
async def test_an_unreadable_file_ends_in_error_with_the_reason(stack: Stack, data: bytes, reason: str) -> None:
    org = organizer()
    import_id = await stack.upload(org, data)

    status = await stack.finished(org, import_id)

    assert status["status"] == "error"
    assert reason in (status["error"] or ""), status
    assert status["processed_rows"] == 0
    assert not stack.uploaded_file(import_id).exists(), "a refused file is not kept"


async def test_broken_quoting_deep_in_a_file_hands_on_no_row_at_all(stack: Stack, tmp_path: Path) -> None:
    org = organizer()
    good = "".join(f"p{i}@example.com,P{i}\n" for i in range(20_000))
    import_id = await stack.upload(org, f'email,first_name\n{good}"broken@example.com,B\n'.encode())

    status = await stack.finished(org, import_id)

    assert status["status"] == "error"
    assert "record 20002" in status["error"]
    assert (status["total_rows"], status["processed_rows"], status["created"]) in ((None, 0, 0), (0, 0, 0))
