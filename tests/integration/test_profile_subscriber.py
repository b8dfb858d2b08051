"""The example subscriber (``examples/profile_subscriber.py``) against the real broker, fed by profiles: it
receives each contact's snapshots in version order, keeps the newest, and drops stale ones."""

from __future__ import annotations

import asyncio
import functools
import importlib.util
import json
import os
import sys
from types import ModuleType
from typing import Any

import pytest

from shared import topics
from shared.events import ContactEvent
from tests.integration.test_profiles_service import (
    consumed,
    created,
    matched,
    message,
    new_id,
    profiles_api,
    rows,
    updated,
)
from tests.support.isolation import Isolation
from tests.support.kafka import publish
from tests.support.processes import CHECKOUT
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

EXAMPLE = CHECKOUT / "examples" / "profile_subscriber.py"


def example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("profile_subscriber", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def run_subscriber(isolation: Isolation, group: str) -> list[dict[str, Any]]:
    """The example as a process, as a subscribing team would run it; its output lines, parsed."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("CONTACTS_")}
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(EXAMPLE), "--bootstrap", isolation.kafka_bootstrap,
        "--topic", isolation.topic(topics.PROFILE_UPDATES), "--group", group, "--exit-when-idle", "4",
        "--print-snapshots", env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=90)
    assert process.returncode == 0, err.decode()
    return [json.loads(line) for line in out.decode().splitlines()]


async def test_the_example_subscriber_receives_snapshots_in_version_order_and_drops_stale_ones(
    isolation: Isolation,
) -> None:
    ann, bob = new_id(), new_id()
    history: list[list[ContactEvent]] = [
        [created(ann, "ann@example.com", "org-a"), created(bob, "bob@example.com", "org-b")],
        [updated(ann, 2, "org-a", by_person=True, first_name="Ann"), matched(bob, 2, "org-a")],
        [updated(ann, 3, "org-a", company="Acme"), updated(bob, 3, "org-b", first_name="Robert")],
        [updated(ann, 4, "org-b", by_person=True, company="Acme Labs"),
         updated(bob, 4, "org-b", by_person=True, title="CTO")],
    ]
    async with profiles_api(isolation):
        published = 0
        for batch in history:  # each its own batch, so each contact gets several snapshots
            await publish(isolation.kafka_bootstrap, [message(isolation, event) for event in batch])
            published += len(batch)
            await wait_until(
                functools.partial(lambda n: consumed(isolation) >= n, published),
                timeout=30,
            )
        lines = await run_subscriber(isolation, f"{isolation.consumer_group('example')}.1")
        final = {
            contact_id: version
            for contact_id, version in rows(isolation, "SELECT contact_id, profile_version FROM contact_profiles")
        }

    received = {contact: [line for line in lines if line["contact_id"] == contact] for contact in (ann, bob)}
    # created, then what each person stated; the imports and the match were not the people's own
    assert [s["profile_version"] for s in received[ann]] == [2, 4, 8]
    assert [s["profile_version"] for s in received[bob]] == [2, 8]
    assert all(line["applied"] for line in lines)
    assert [s["display_name"] for s in received[ann]] == ["ann", "Ann", "Ann"]
    assert received[ann][-1]["company"] == "Acme Labs" and received[bob][-1]["title"] == "CTO"
    assert received[bob][-1]["first_name"] is None  # org-b's import: not the person's
    assert final == {ann: 8, bob: 8}
    assert all("organizer" not in json.dumps(line) and "imp-" not in json.dumps(line) for line in lines)

    # delivered again, in any order (a replay, a restart from an older offset): only newer versions apply
    subscriber = example()
    profiles: dict[str, dict[str, Any]] = {}
    outcomes = [subscriber.apply(profiles, line) for line in lines + lines[::-1]]
    assert outcomes == [True] * len(lines) + [False] * len(lines)
    assert profiles == {ann: received[ann][-1], bob: received[bob][-1]}
