"""Replaying the contact log rebuilds a read model: a second enrichment, in a new schema and consumer group,
reads ``contacts.contact-events.v1`` from the beginning and arrives at the same ``contacts`` table as the live
one (once its worker has run the providers, as the live one's did), while the suggestions it re-publishes change
nothing in profiles (which does not read them)."""

from __future__ import annotations

import re
from typing import Any

import httpx
import psycopg
import pytest

from ops.catalog import migrations_dir
from ops.local_broker import LOOPBACK
from ops.local_postgres import libpq_url
from shared.auth import mint_token
from shared.migrations import upgrade
from shared.topics import ENRICHMENTS
from tests.support.isolation import Isolation
from tests.support.kafka import consume_quiet
from tests.support.ports import free_port
from tests.support.processes import ServiceProcess
from tests.support.waiting import wait_until

pytestmark = pytest.mark.e2e

ORGANIZER = "organizer-replay"
# duplicates in varying case and spacing; later rows fill in or replace names, so display names change
ROWS = (
    "email,first_name,last_name,company,title\n"
    "ada@example.com,Ada,Lovelace,Analytical Engines,Countess\n"
    "  GRACE@Example.com ,Grace,Hopper,US Navy,\n"
    "linus@example.com,,,,\n"
    "Ada@Example.COM,,,,Mathematician\n"
    "grace@example.com,Grace,Brewster Hopper,,Rear Admiral\n"
    "LINUS@EXAMPLE.COM ,Linus,Torvalds,,\n"
    "margaret@example.com,Margaret,Hamilton,NASA,\n"
)
DISPLAY_NAMES = {
    "ada@example.com": "Ada Lovelace",
    "grace@example.com": "Grace Brewster Hopper",
    "linus@example.com": "Linus Torvalds",
    "margaret@example.com": "Margaret Hamilton",
}
# what the profiles read model holds about a contact (everything but the organizer's own relationship data)
PROFILE_CONTENT = (
    "contact_id", "email", "email_original", "first_name", "last_name", "company", "title", "phone",
    "display_name", "view_version", "created_at", "updated_at",
)


def _auth(isolation: Isolation) -> dict[str, str]:
    token = mint_token(secret=isolation.auth_secret, organizer_id=ORGANIZER, ttl_seconds=600)
    return {"Authorization": f"Bearer {token}"}


def _table(isolation: Isolation, schema: str) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Column names and every row of ``<schema>.contacts``, in contact id order."""
    with psycopg.connect(libpq_url(isolation.database_url)) as conn:
        cursor = conn.execute(f'SELECT * FROM "{schema}".contacts ORDER BY contact_id')
        rows = cursor.fetchall()
        return [column.name for column in cursor.description or ()], rows


def _metric(text: str, name: str) -> int:
    match = re.search(rf"^{name}\{{[^}}]*\}} ([0-9.e+]+)$", text, re.MULTILINE)
    assert match, f"{name} not in metrics"
    return int(float(match.group(1)))


async def test_a_second_enrichment_replaying_the_log_rebuilds_its_table_and_leaves_profiles_unchanged(
    running_services: dict[str, ServiceProcess], migrated: Isolation, tmp_path: Any
) -> None:
    ingest = running_services["ingest"].base_url
    profiles = running_services["profiles"].base_url
    headers = _auth(migrated)

    async with httpx.AsyncClient(timeout=10) as client:
        response = await client.post(
            f"{ingest}/v1/imports", headers=headers, files={"file": ("contacts.csv", ROWS.encode(), "text/csv")},
            params={"auto_start": "true"},
        )
        assert response.status_code == 202, response.text
        import_id = response.json()["import_id"]

        async def processed() -> dict[str, Any] | None:
            status = (await client.get(f"{ingest}/v1/imports/{import_id}", headers=headers)).json()
            return status if status["status"] in ("processed", "error") else None

        status = await wait_until(processed, timeout=60, description=f"import {import_id} to finish")
        assert (status["status"], status["total_rows"], status["processed_rows"]) == ("processed", 7, 7)
        assert (status["created"], status["matched"], status["errors"]) == (4, 3, 0)

        async def read_model() -> dict[str, dict[str, Any]]:
            response = await client.get(f"{profiles}/v1/contacts", params={"limit": 100}, headers=headers)
            assert response.status_code == 200, response.text
            page = response.json()
            assert page["next_cursor"] is None
            return {item["email"]: {key: item[key] for key in PROFILE_CONTENT} for item in page["items"]}

        async def every_display_name() -> dict[str, dict[str, Any]] | None:
            found = await read_model()
            names = {email: contact["display_name"] for email, contact in found.items()}
            return found if names == DISPLAY_NAMES else None

        await wait_until(every_display_name, timeout=60, description="every contact with its display name")
        before = await read_model()
        assert {email: contact["display_name"] for email, contact in before.items()} == DISPLAY_NAMES
        assert before["ada@example.com"]["title"] == "Mathematician"

        original_schema = migrated.schema("enrichment")
        replay_schema = f"{original_schema}_replay"
        replay_port = free_port()
        replay = ServiceProcess(
            "enrichment",
            env={
                **migrated.env(),
                "CONTACTS_ENRICHMENT_DB_SCHEMA": replay_schema,
                "CONTACTS_ENRICHMENT_CONSUMER_GROUP": f"{migrated.consumer_group('enrichment')}.replay",
                "CONTACTS_ENRICHMENT_HTTP_PORT": str(replay_port),
            },
            base_url=f"http://{LOOPBACK}:{replay_port}",
            log_path=tmp_path / "enrichment-replay.log",
        )
        try:
            upgrade(
                migrations_dir=migrations_dir("enrichment"), database_url=migrated.database_url, schema=replay_schema
            )
            await replay.start()

            columns, original = _table(migrated, original_schema)
            assert len(original) == len(DISPLAY_NAMES)
            assert "updated_at" in columns  # taken from the log, so it must be rebuilt exactly too

            def rebuilt() -> list[tuple[Any, ...]] | None:
                replayed_columns, replayed = _table(migrated, replay_schema)
                assert replayed_columns == columns
                return replayed if replayed == original else None

            try:
                replayed = await wait_until(rebuilt, timeout=60, description="the replayed contacts table")
            except AssertionError as error:
                raise AssertionError(
                    f"{error}\noriginal: {original}\nreplayed: {_table(migrated, replay_schema)[1]}"
                ) from None
            assert replayed == original  # row for row, column for column

            async def outbox_relayed() -> int | None:
                metrics = (await client.get(f"{replay.base_url}/metrics")).text
                backlog = _metric(metrics, "contacts_outbox_backlog")
                published = _metric(metrics, "contacts_outbox_published_total")
                return published if backlog == 0 and published > 0 else None

            republished = await wait_until(outbox_relayed, timeout=60, description="the replay's outbox relayed")
            assert republished >= len(DISPLAY_NAMES)  # every contact's suggestions went out again
            await consume_quiet(migrated.kafka_bootstrap, migrated.topic(ENRICHMENTS), quiet_seconds=2.0)
            assert await read_model() == before
        finally:
            await replay.stop()
            with psycopg.connect(libpq_url(migrated.database_url), autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA IF EXISTS "{replay_schema}" CASCADE')
