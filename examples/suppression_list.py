"""A runnable example of a mailer keeping its suppression lists from Kagibag Contacts' organizer contacts.

It reads ``contacts.organizer-contacts.v1`` with aiokafka: one message per organizer contact whenever its email
permission, tags or preferences change (and when the contact becomes the organizer's), keyed
``organizer_id:contact_id``, each the complete current state. Per organizer it keeps the emails it must not send
marketing to: those whose permission is ``unsubscribed`` (an organizer's list is only ever used for that organizer's
mail). A state older than the one already applied for the same key (``changed_at``; a consumer restarted from an
older offset) is dropped; offsets are committed after applying. It needs nothing from this repository: copy it,
replace the dict with your own store, and run it:

    python examples/suppression_list.py --bootstrap localhost:9092 --group my-mailer.suppressions

Each change of a list is printed as one JSON line ``{"organizer_id", "email", "suppressed": true|false}``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer

TOPIC = "contacts.organizer-contacts.v1"
STATE_TYPE = "com.kagibag.contacts.organizer-contact.changed.v1"


@dataclass
class Suppressions:
    """Per organizer, the suppressed emails; per key, the time of the state applied last."""

    emails: dict[str, set[str]] = field(default_factory=dict)
    applied_at: dict[str, str] = field(default_factory=dict)

    def apply(self, state: dict[str, Any]) -> bool | None:
        """Apply one state; returns whether its email is now suppressed, or None for a stale state (ignored).
        ``changed_at`` is ISO 8601 in UTC, so comparing the strings compares the times."""
        key = f"{state['organizer_id']}:{state['contact_id']}"
        if key in self.applied_at and state["changed_at"] < self.applied_at[key]:
            return None
        self.applied_at[key] = state["changed_at"]
        suppressed = state["email_permission"]["status"] == "unsubscribed"
        emails = self.emails.setdefault(state["organizer_id"], set())
        (emails.add if suppressed else emails.discard)(state["email"])
        return suppressed


def _header(headers: Any, name: str) -> str | None:
    for key, value in headers or ():
        if key == name:
            return bytes(value).decode()
    return None


async def consume(*, bootstrap: str, topic: str, group: str, exit_when_idle: float | None) -> Suppressions:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,  # commit after applying: at-least-once, and a state applied twice changes nothing
        auto_offset_reset="earliest",
    )
    lists = Suppressions()
    await consumer.start()
    try:
        idle_since = time.monotonic()
        while exit_when_idle is None or time.monotonic() - idle_since < exit_when_idle:
            batches = await consumer.getmany(timeout_ms=500)
            for records in batches.values():
                for record in records:
                    if _header(record.headers, "ce_type") != STATE_TYPE:
                        continue  # a type this subscriber does not know (a future version): skip it
                    state = json.loads(record.value)
                    suppressed = lists.apply(state)
                    if suppressed is not None:
                        print(json.dumps({"organizer_id": state["organizer_id"], "email": state["email"],
                                          "suppressed": suppressed}), flush=True)
                idle_since = time.monotonic()
            if batches:
                await consumer.commit()
    finally:
        await consumer.stop()
    return lists


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", default="localhost:9092", help="Kafka bootstrap servers")
    parser.add_argument("--topic", default=TOPIC, help=f"the organizer contacts topic (default {TOPIC})")
    parser.add_argument("--group", default="example.suppression-list", help="your consumer group")
    parser.add_argument("--exit-when-idle", type=float, metavar="SECONDS",
                        help="stop after this long without a record (default: run until interrupted)")
    args = parser.parse_args(argv)
    try:
        asyncio.run(consume(bootstrap=args.bootstrap, topic=args.topic, group=args.group,
                            exit_when_idle=args.exit_when_idle))
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
