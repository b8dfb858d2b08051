"""A runnable example of a downstream subscriber to Kagibag Contacts' profile snapshots.

It reads ``contacts.profile-updates.v1`` with aiokafka, keeps the latest snapshot of every contact in a dict
and drops any snapshot whose ``profile_version`` is not greater than the one already applied (redeliveries,
replays, a consumer restarted from an older offset), then commits. It needs nothing from this repository:
copy it, replace ``apply``'s dict with your own store (compare-and-set on the version), and run it:

    python examples/profile_subscriber.py --bootstrap localhost:9092 --group my-team.profiles

Each applied snapshot is printed as one JSON line ``{"contact_id", "profile_version", "applied": true}``
(``--print-snapshots`` prints the whole snapshot); a stale one as ``"applied": false``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from typing import Any

from aiokafka import AIOKafkaConsumer

TOPIC = "contacts.profile-updates.v1"
SNAPSHOT_TYPE = "com.kagibag.contacts.profile.updated.v1"


def apply(profiles: dict[str, dict[str, Any]], snapshot: dict[str, Any]) -> bool:
    """Keep ``snapshot`` if it is newer than what ``profiles`` holds for its contact; True when applied.
    A snapshot is the full profile, so replacing is all there is to do (no merging)."""
    current = profiles.get(snapshot["contact_id"])
    if current is not None and snapshot["profile_version"] <= current["profile_version"]:
        return False
    profiles[snapshot["contact_id"]] = snapshot
    return True


def _header(headers: Any, name: str) -> str | None:
    for key, value in headers or ():
        if key == name:
            return bytes(value).decode()
    return None


async def consume(
    *, bootstrap: str, topic: str, group: str, exit_when_idle: float | None, print_snapshots: bool
) -> dict[str, dict[str, Any]]:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,  # commit after applying: at-least-once, made harmless by the version check
        auto_offset_reset="earliest",
    )
    profiles: dict[str, dict[str, Any]] = {}
    await consumer.start()
    try:
        idle_since = time.monotonic()
        while exit_when_idle is None or time.monotonic() - idle_since < exit_when_idle:
            batches = await consumer.getmany(timeout_ms=500)
            for records in batches.values():
                for record in records:
                    if _header(record.headers, "ce_type") != SNAPSHOT_TYPE:
                        continue  # a type this subscriber does not know (a future version): skip it
                    snapshot = json.loads(record.value)
                    applied = apply(profiles, snapshot)
                    line = snapshot if print_snapshots else {
                        "contact_id": snapshot["contact_id"], "profile_version": snapshot["profile_version"]}
                    print(json.dumps({**line, "applied": applied}), flush=True)
                idle_since = time.monotonic()
            if batches:
                await consumer.commit()
    finally:
        await consumer.stop()
    return profiles


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", default="localhost:9092", help="Kafka bootstrap servers")
    parser.add_argument("--topic", default=TOPIC, help=f"the snapshot topic (default {TOPIC})")
    parser.add_argument("--group", default="example.profile-subscriber", help="your consumer group")
    parser.add_argument("--exit-when-idle", type=float, metavar="SECONDS",
                        help="stop after this long without a record (default: run until interrupted)")
    parser.add_argument("--print-snapshots", action="store_true", help="print whole snapshots")
    args = parser.parse_args(argv)
    try:
        asyncio.run(consume(bootstrap=args.bootstrap, topic=args.topic, group=args.group,
                            exit_when_idle=args.exit_when_idle, print_snapshots=args.print_snapshots))
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
