"""profiles' subscriber: decode a batch of contact events, fold it into the read models (canonical profiles,
each organizer's view with its layer, relationship and insights, interactions) in one transaction, and enqueue
one snapshot per changed canonical profile (and dead letters) through the outbox."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import structlog
from aiokafka import ConsumerRecord
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from sqlalchemy.ext.asyncio import AsyncEngine

from services.profiles import store
from services.profiles.domain import Canonical, plan_batch, snapshot
from services.profiles.insights import summarize
from shared import topics as registry
from shared.envelope import Envelope
from shared.events import ContactEvent, Event
from shared.inbox import claim_batch, decode_batch, derived_id
from shared.kafka import (
    OutgoingMessage,
    batch_subscriber,
    describe_batch,
    encode,
    raw_records,
)
from shared.outbox import enqueue
from shared.runtime import Messaging

log = structlog.get_logger(__name__)

SOURCE = "kagibag-contacts/profiles"


@dataclass(frozen=True)
class ProfilesTopics:
    contact_events: str
    profile_updates: str
    dead_letters: str

    @classmethod
    def qualified(cls, prefix: str) -> ProfilesTopics:
        """The names profiles reads and writes on a broker whose topics carry ``prefix``."""
        return cls(
            contact_events=registry.CONTACT_EVENTS.qualified(prefix),
            profile_updates=registry.PROFILE_UPDATES.qualified(prefix),
            dead_letters=registry.dead_letter_topic("profiles").qualified(prefix),
        )


def _snapshot_message(canonical: Canonical, cause: Envelope, topics: ProfilesTopics) -> OutgoingMessage:
    event = snapshot(canonical)
    envelope = cause.caused(
        type=event.TYPE,
        source=SOURCE,
        subject=event.contact_id,
        id=derived_id("profile", event.contact_id, event.profile_version),
    )
    return encode(event, envelope, topic=topics.profile_updates, key=event.contact_id)


async def project(
    engine: AsyncEngine,
    records: Sequence[ConsumerRecord],
    *,
    accepted: Mapping[str, tuple[type[Event], ...]],
    topics: ProfilesTopics,
    consumer: str,
    publish: bool = True,
) -> int:
    """Apply a batch exactly once in effect: tracking records, read models and outbox are written in one
    transaction, and messages already recorded as processed are skipped. Returns the updates applied.
    ``publish=False`` (the rebuild) enqueues neither snapshots nor dead letters."""
    batch = decode_batch(records, accepted)
    async with engine.begin() as conn:
        claimed = await claim_batch(conn, batch, consumer=consumer, dead_letter_topic=topics.dead_letters)
        todo: list[tuple[Envelope, ContactEvent]] = claimed.fresh  # type: ignore[assignment]
        locked = await store.lock_contacts(conn, [event.contact_id for _, event in todo])
        plan = plan_batch(locked.states, [event for _, event in todo])
        await store.save_canonicals(conn, list(plan.canonicals.values()))
        await store.save_views(conn, plan.views, locked.explicit)
        interactions = await store.record_interactions(conn, plan.interactions)
        await store.save_insights(conn, {pair: summarize(rows) for pair, rows in interactions.items()})
        if publish:
            outgoing = [
                _snapshot_message(plan.canonicals[contact_id], todo[index][0], topics)
                for contact_id, index in plan.snapshots.items()
            ]
            await enqueue(conn, outgoing + claimed.dead_letters)
    if batch.undecodable:
        log.warning("profiles.dead_lettered" if publish else "profiles.undecodable_skipped",
                    count=len(batch.undecodable), first_error=batch.undecodable[0][1].code,
                    topic=batch.undecodable[0][0].topic)
    return len(todo)


def register(
    broker: KafkaBroker,
    *,
    engine: AsyncEngine,
    messaging: Messaging,
    topics: ProfilesTopics,
    group: str,
    batch_size: int,
) -> None:
    """Subscribe profiles to the contact log. (Display names are profiles' own rule now: the enrichments topic
    is not read.)"""

    @batch_subscriber(
        broker,
        topic=topics.contact_events,
        group_id=group,
        ack_policy=AckPolicy.NACK_ON_ERROR,
        max_records=batch_size,
        description="Project contact events into the canonical profiles (what each person stated) and each "
        "organizer's view (the person's values, else its own imported ones) with its relationship and insights; "
        "publish one canonical profile snapshot per changed contact per batch. Committed after the batch's "
        "transaction.",
    )
    async def on_contact_events(msg: KafkaMessage) -> None:
        records = raw_records(msg)
        applied = await project(
            engine, records, accepted={topics.contact_events: registry.CONTACT_EVENTS.events}, topics=topics,
            consumer=group,
        )
        messaging.wake_relay()
        log.info("contact_events.projected", applied=applied, **describe_batch(records))
