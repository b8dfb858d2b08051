"""profiles' use case: a batch of contact events merged into the read models (canonical profiles, each
organizer's layer, view, relationship and insights, interactions) in one transaction that also stores the
group's positions, and one outbox row with the batch's snapshots (one per changed canonical profile), the
organizer contacts' changes and dead letters. The subscriber and the rebuild both apply batches through it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import structlog
from aiokafka import ConsumerRecord
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.profiles import organizer_feed, store
from services.profiles.intake import Intake, take_in
from shared import metrics
from shared import topics as registry
from shared.consumer import Delivery
from shared.envelope import HeaderTemplate, derived_id
from shared.events import ContactProfileUpdatedV1
from shared.outbox_batches import enqueue
from shared.producer import OutgoingMessage
from shared.tracing import traceparents_by_id
from shared.transactions import with_retries

log = structlog.get_logger(__name__)

SOURCE = "kagibag-contacts/profiles"
_snapshot_headers = HeaderTemplate(type=ContactProfileUpdatedV1.TYPE, source=SOURCE)


@dataclass(frozen=True)
class ProfilesTopics:
    contact_events: str
    profile_updates: str
    dead_letters: str
    organizer_contacts: str

    @classmethod
    def qualified(cls, prefix: str) -> ProfilesTopics:
        """The names profiles reads and writes on a broker whose topics carry ``prefix``."""
        return cls(
            contact_events=registry.CONTACT_EVENTS.qualified(prefix),
            profile_updates=registry.PROFILE_UPDATES.qualified(prefix),
            dead_letters=registry.dead_letter_topic("profiles").qualified(prefix),
            organizer_contacts=registry.ORGANIZER_CONTACTS.qualified(prefix),
        )


def snapshot_message(snapshot: store.Snapshot, *, topic: str, time: datetime,
                     traceparent: str | None = None) -> OutgoingMessage:
    """A snapshot as published: its id derived from (contact, version), so a re-sent one repeats it; it carries
    the ``traceparent`` of the contact event that caused it."""
    headers = _snapshot_headers.build(
        id=derived_id("profile", snapshot.contact_id, snapshot.profile_version), time=time,
        subject=snapshot.contact_id, correlation_id=snapshot.correlation_id or snapshot.cause_id,
        causation_id=snapshot.cause_id, traceparent=traceparent,
    )
    return OutgoingMessage(topic, snapshot.contact_id.encode(), snapshot.payload.encode(), headers)


async def project(
    engine: AsyncEngine,
    records: Sequence[ConsumerRecord],
    *,
    topics: ProfilesTopics,
    delivery: Delivery,
    publish: bool = True,
) -> int:
    """Apply a batch exactly once in effect: the group's positions, the read models and the outbox row are
    written in one transaction (tried again after a deadlock); records below the stored positions were applied
    before, and contact events at or below a contact's applied version change nothing. Returns the events staged.
    ``publish=False`` (the rebuild) enqueues neither snapshots nor dead letters."""

    async def merge(conn: AsyncConnection) -> Intake:
        fresh = await delivery.claim(conn, records)
        intake = take_in(fresh, dead_letter_topic=topics.dead_letters)
        snapshots = await store.merge(conn, intake.staged)
        if publish:
            time = datetime.now(UTC)
            traces = traceparents_by_id(fresh)
            outgoing = [snapshot_message(s, topic=topics.profile_updates, time=time,
                                         traceparent=traces.get(s.cause_id)) for s in snapshots]
            outgoing += await organizer_feed.batch_changes(conn, topic=topics.organizer_contacts, time=time)
            await enqueue(conn, outgoing + intake.dead_letters, channel=delivery.channel)
        return intake

    intake = await with_retries(engine, merge, event="profiles.batch_retry")
    if publish:
        metrics.dead_letters_sent(delivery.service, intake.dead_letters)
    if intake.dead_letters:
        log.warning("profiles.dead_lettered" if publish else "profiles.undecodable_skipped",
                    count=len(intake.dead_letters), topic=topics.contact_events)
    return len(intake.staged)
