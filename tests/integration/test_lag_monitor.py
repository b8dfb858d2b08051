"""The lag monitor as a process against the real broker, next to a real consumer: OK while enrichment keeps up,
STALL or STOP within a minute of enrichment stopping while contact events keep arriving; the same on
``/v1/lag``, ``/metrics`` and ``contacts lag``; every line both processes print is JSON."""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from shared import topics
from shared.codec import encode
from shared.envelope import Envelope
from shared.events import ContactCreatedV1, ContactSource
from tests.support.cli import contacts
from tests.support.isolation import Isolation
from tests.support.kafka import publish
from tests.support.processes import ServiceProcess
from tests.support.waiting import wait_until

pytestmark = pytest.mark.e2e

KAFKA_LAG_EXPORTER_METRICS = (
    "kafka_consumergroup_group_lag",
    "kafka_consumergroup_group_lag_seconds",
    "kafka_consumergroup_group_max_lag",
    "kafka_consumergroup_group_max_lag_seconds",
    "kafka_consumergroup_group_sum_lag",
    "kafka_partition_latest_offset",
)


async def publish_contacts(isolation: Isolation, count: int) -> None:
    source = ContactSource(kind="import", organizer_id="org-a", import_id="imp-1", row_number=1)
    messages = []
    for _ in range(count):
        contact_id = str(uuid.uuid4())
        event = ContactCreatedV1(
            contact_id=contact_id, version=1, occurred_at=datetime.now(UTC), source=source,
            email=f"{contact_id}@example.com", email_original=f"{contact_id}@example.com", fields={},
        )
        envelope = Envelope(type=event.TYPE, source="kagibag-contacts/identity", subject=contact_id)
        messages.append(encode(event, envelope, topic=isolation.topic(topics.CONTACT_EVENTS), key=contact_id))
    await publish(isolation.kafka_bootstrap, messages)


def json_lines(path: Path) -> list[dict[str, Any]]:
    """Every line the process printed, parsed (the harness's own '--- start' markers aside)."""
    lines = [line for line in path.read_text().splitlines() if line and not line.startswith("--- start #")]
    parsed = []
    for line in lines:
        try:
            parsed.append(json.loads(line))
        except json.JSONDecodeError:
            raise AssertionError(f"{path.name}: not a JSON line: {line!r}") from None
    return parsed


async def test_a_consumer_group_whose_service_stopped_while_messages_arrive_is_stall_or_stop_within_a_minute(
    isolation: Isolation, tmp_path: Path
) -> None:
    isolation.migrate(("enrichment",))
    env = {**isolation.env(), "CONTACTS_LOG_FORMAT": "auto"}  # not a terminal: JSON all the same
    enrichment = ServiceProcess("enrichment", env=env, base_url=isolation.base_url("enrichment"),
                                log_path=tmp_path / "enrichment.log")
    monitor_env = {**env, "CONTACTS_MONITOR_POLL_INTERVAL_SECONDS": "1", "CONTACTS_MONITOR_WINDOW": "5",
                   "CONTACTS_MONITOR_STOP_AFTER_SECONDS": "30"}
    monitor = ServiceProcess("monitor", env=monitor_env, base_url=isolation.base_url("monitor"),
                             log_path=tmp_path / "monitor.log")
    group = isolation.consumer_group("enrichment")
    try:
        await enrichment.start()
        await monitor.start()
        await publish_contacts(isolation, 30)
        async with httpx.AsyncClient(base_url=monitor.base_url, timeout=5) as client:

            async def lag() -> dict[str, Any]:
                response = await client.get("/v1/lag", params={"group": group})
                assert response.status_code == 200, response.text
                body: dict[str, Any] = response.json()["groups"][0]
                return body

            async def caught_up() -> dict[str, Any] | None:
                body = await lag()
                committed = sum(p["committed_offset"] or 0 for p in body["partitions"])
                return body if body["status"] == "OK" and body["sum_lag"] == 0 and committed >= 30 else None

            healthy = await wait_until(caught_up, timeout=60, description="enrichment's group caught up")
            assert healthy["service"] == "enrichment"
            assert {p["topic"] for p in healthy["partitions"]} == {isolation.topic(topics.CONTACT_EVENTS)}

            await enrichment.stop()
            await publish_contacts(isolation, 40)

            async def failing() -> dict[str, Any] | None:
                body = await lag()
                return body if body["status"] in ("STALL", "STOP") else None

            stalled = await wait_until(failing, timeout=60, interval=1.0, description="STALL or STOP")
            assert stalled["sum_lag"] > 0
            lagging = [p for p in stalled["partitions"] if p["lag"] > 0]
            assert all(p["status"] in ("STALL", "STOP") for p in lagging)
            assert all(p["lag_seconds"] is not None and p["lag_seconds"] >= 0 for p in lagging)

            metrics = (await client.get("/metrics")).text
            for name in KAFKA_LAG_EXPORTER_METRICS:
                assert f"\n{name}{{" in metrics, name
            sum_lag = re.search(
                rf'^kafka_consumergroup_group_sum_lag{{cluster_name="contacts",group="{re.escape(group)}"}} (\S+)$',
                metrics, re.MULTILINE,
            )
            assert sum_lag and float(sum_lag.group(1)) > 0, metrics
            assert f'contacts_consumergroup_status{{cluster_name="contacts",group="{group}",status="' in metrics

            asyncapi = await client.get("/asyncapi")
            assert asyncapi.json()["asyncapi"] == "3.0.0"

        cli = ["lag", "--url", monitor.base_url, "--group", group]
        code, table, errors = await contacts(*cli)
        assert code == 1, errors
        assert group in table and ("STALL" in table or "STOP" in table)
        code, as_json, _ = await contacts(*cli, "--json")
        assert code == 1
        assert json.loads(as_json)["groups"][0]["group"] == group
    finally:
        await monitor.stop()
        await enrichment.stop()

    for process in (enrichment, monitor):
        lines = json_lines(process.log_path)
        loggers = {line.get("logger") for line in lines}
        assert {"uvicorn.error"} <= loggers, loggers  # uvicorn's own start-up and shutdown lines
        assert all({"event", "level", "timestamp", "service"} <= line.keys() for line in lines)
    assert any(line.get("event") == "http.request" for line in json_lines(monitor.log_path))
