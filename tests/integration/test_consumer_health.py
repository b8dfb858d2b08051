"""Health as orchestrators read it, on a real service (enrichment, in this process) against the real broker and
PostgreSQL: readiness waits until the consumer has joined its group and lists its partitions; liveness fails while
a batch keeps the consumer loop from polling longer than ``CONTACTS_CONSUMER_STUCK_SECONDS`` (its handler blocked
on a lock this test holds) and recovers when the batch goes through; FastStream's Prometheus middleware counted the
batch on ``/metrics``."""

from __future__ import annotations

import asyncio
import time
import uuid

import psycopg
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from ops.local_postgres import libpq_url
from services.enrichment.app import create_app
from services.enrichment.config import EnrichmentSettings
from shared.topics import CONTACT_EVENTS
from tests.support.enrichment import as_identity, created
from tests.support.isolation import Isolation
from tests.support.kafka import publish

pytestmark = pytest.mark.integration


def wait_for(client: TestClient, path: str, status: int, timeout: float = 60.0) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    while True:
        response = client.get(path)
        if response.status_code == status:
            body: dict[str, object] = response.json()
            return body
        assert time.monotonic() < deadline, f"{path}: {response.status_code} {response.text}, not {status}"
        time.sleep(0.2)


def test_a_service_is_ready_once_joined_and_not_live_while_its_consumer_is_stuck(migrated: Isolation) -> None:
    settings = EnrichmentSettings(
        db_schema=migrated.schema("enrichment"), consumer_group=migrated.consumer_group("enrichment"),
        platform=migrated.platform_settings(consumer_stuck_seconds=1.5, log_level="WARNING"),
    )
    with TestClient(create_app(settings)) as client:
        ready = wait_for(client, "/health/ready", 200)
        consumers = ready["consumers"]
        assert isinstance(consumers, list) and len(consumers) == 1
        consumer = consumers[0]
        assert consumer["joined"] and consumer["group"] == migrated.consumer_group("enrichment")
        assert consumer["topics"] == [migrated.topic(CONTACT_EVENTS)] and consumer["partitions"]
        assert client.get("/health/live").json() == {"status": "ok", "service": "enrichment"}

        with psycopg.connect(libpq_url(migrated.database_url)) as lock:  # the batch's transaction waits for it
            lock.execute(f'LOCK TABLE "{migrated.schema("enrichment")}".consumer_positions IN ACCESS EXCLUSIVE MODE')
            asyncio.run(publish(migrated.kafka_bootstrap, [
                as_identity(migrated, created(str(uuid.uuid4()), "stuck@example.com"))]))
            body = wait_for(client, "/health/live", 503, timeout=30)
            assert body["status"] == "stuck" and "no poll (limit 1.5 s)" in str(body["reason"]), body
            assert migrated.consumer_group("enrichment") in str(body["reason"])
        wait_for(client, "/health/live", 200, timeout=30)  # the lock released, the batch went through

        families = {f.name: f for f in text_string_to_metric_families(client.get("/metrics").text)}
        received = [s for s in families["faststream_received_messages"].samples if s.name.endswith("_total")]
        assert any(s.labels["handler"] == migrated.topic(CONTACT_EVENTS) and s.value >= 1 for s in received)
        assert "faststream_received_processed_messages_duration_seconds" in families  # FastStream's middleware
