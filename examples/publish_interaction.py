"""A runnable example of a platform team publishing an interaction onto ``contacts.interactions.v1``.

It needs only aiokafka: the value is the event as JSON, the headers are CloudEvents 1.0 in Kafka binary mode,
the key is the normalized email (lowercased, surrounding whitespace stripped). Copy it into your service, or use it
to try the system locally (`make run`, then in another terminal):

    python examples/publish_interaction.py ticket --organizer demo-organizer --email ada@example.com \\
        --event ev-2026-spring --order ord-981 --tickets 2
    python examples/publish_interaction.py checkin --organizer demo-organizer --email ada@example.com \\
        --event ev-2026-spring

Each call prints the message id; publishing the same interaction again with ``--id`` of the first is applied
once. The organizer's insights then show it: ``GET http://127.0.0.1:8002/v1/contacts/{id}``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import uuid
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaProducer

TOPIC = "contacts.interactions.v1"
TYPES = {
    "ticket": "com.kagibag.platform.ticket.purchased.v1",
    "waitlist": "com.kagibag.platform.waitlist.registered.v1",
    "checkin": "com.kagibag.platform.event.checked-in.v1",
}
SOURCE = "kagibag-platform/example"


def interaction(args: argparse.Namespace) -> dict[str, Any]:
    event: dict[str, Any] = {
        "organizer_id": args.organizer,
        "email": args.email,
        "occurred_at": (args.at or datetime.now(UTC)).isoformat(),
        "kagibag_event_id": args.event,
    }
    if args.kind == "ticket":
        event |= {"order_id": args.order or f"ord-{uuid.uuid4().hex[:8]}", "ticket_count": args.tickets}
    return event


def headers(kind: str, message_id: str, subject: str) -> list[tuple[str, bytes]]:
    attributes = {
        "ce_specversion": "1.0",
        "ce_id": message_id,
        "ce_type": TYPES[kind],
        "ce_source": SOURCE,
        "ce_time": datetime.now(UTC).isoformat(),
        "ce_subject": subject,
        "content-type": "application/json",
    }
    return [(name, value.encode()) for name, value in attributes.items()]


async def publish(args: argparse.Namespace) -> str:
    message_id = args.id or str(uuid.uuid4())
    key = args.email.strip().lower()
    producer = AIOKafkaProducer(bootstrap_servers=args.bootstrap, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(
            args.topic,
            key=key.encode(),
            value=json.dumps(interaction(args)).encode(),
            headers=headers(args.kind, message_id, key),
        )
    finally:
        await producer.stop()
    return message_id


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("kind", choices=sorted(TYPES))
    parser.add_argument("--bootstrap", default="127.0.0.1:9092")
    parser.add_argument("--topic", default=TOPIC, help="with a prefix if the services run with CONTACTS_TOPIC_PREFIX")
    parser.add_argument("--organizer", required=True)
    parser.add_argument("--email", required=True)
    parser.add_argument("--event", required=True, help="the Kagibag event id")
    parser.add_argument("--order", help="ticket: the order id (default: a new one)")
    parser.add_argument("--tickets", type=int, default=1, help="ticket: how many tickets")
    parser.add_argument("--at", type=datetime.fromisoformat, help="when it happened (default: now)")
    parser.add_argument("--id", help="the message id (ce_id); reuse one to see a re-send applied once")
    print(asyncio.run(publish(parser.parse_args())))


if __name__ == "__main__":
    main()
