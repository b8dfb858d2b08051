"""``contacts republish contact-events``: identity's event store published again to the contact log, for a topic
that lost its head (retention, a deleted topic, a broker that restarted empty) before a read model is rebuilt from
it. Idempotent for consumers: each event goes out under the id it always has (its contact and version), and read
models drop what they have applied."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.ext.asyncio import AsyncEngine

from services.identity.publishing import EVENT_COLUMNS, ContactEventMessages
from shared.db import fetch_tuples
from shared.producer import create_producer, publish_all

BATCH = 5000


async def count_events(engine: AsyncEngine, *, from_position: int = 0, contact_id: str | None = None) -> int:
    async with engine.connect() as conn:
        rows = await fetch_tuples(
            conn,
            "SELECT count(*) FROM contact_events WHERE position >= %(from)s "
            "AND (%(contact)s::uuid IS NULL OR contact_id = %(contact)s::uuid)",
            {"from": from_position, "contact": contact_id},
        )
    return int(rows[0][0])


async def republish(
    engine: AsyncEngine,
    *,
    bootstrap_servers: str,
    topic: str,
    from_position: int = 0,
    contact_id: str | None = None,
    progress: Callable[[int], None] = lambda _: None,
) -> int:
    """Publish the events at or after ``from_position`` (of one contact, with ``contact_id``), in store order
    (so each contact's stream keeps its version order); ``progress`` gets the count published so far."""
    messages = ContactEventMessages(topic)
    producer = create_producer(bootstrap_servers)
    await producer.start()
    published, after = 0, from_position - 1
    try:
        while True:
            async with engine.connect() as conn:
                rows = await fetch_tuples(
                    conn,
                    f"SELECT {EVENT_COLUMNS} FROM contact_events WHERE position > %(after)s "
                    "AND (%(contact)s::uuid IS NULL OR contact_id = %(contact)s::uuid) ORDER BY position LIMIT %(n)s",
                    {"after": after, "contact": contact_id, "n": BATCH},
                )
            if not rows:
                return published
            published += await publish_all(producer, map(messages, rows))
            after = rows[-1][0]
            progress(published)
    finally:
        await producer.stop()
