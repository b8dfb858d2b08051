"""The consuming side every service shares: a FastStream batch subscriber that hands the handler raw records
without decoding anything per record, seeks each assigned partition to the position stored in PostgreSQL, and
logs a failed batch with its topics, partitions and offsets before its ack policy (always explicit) applies.
Each subscriber's ``ConsumerHealth`` tells readiness whether it has joined its group and liveness whether its
loop is stuck in a batch."""

from __future__ import annotations

import functools
import time
import weakref
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog
from aiokafka import ConsumerRebalanceListener, ConsumerRecord, TopicPartition
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from shared import metrics
from shared.logcheck import lost_markers
from shared.positions import claim_positions, forget_positions, stored_positions
from shared.tracing import batch_span, batch_traceparents

log = structlog.get_logger(__name__)


async def _keep_raw(_: Any) -> None:
    """Decoder that leaves decoding to the handler, which needs each record's headers, offset and bytes."""
    return None


async def _parse_lazily(records: tuple[ConsumerRecord, ...], original: Any) -> Any:
    """FastStream's batch parser decodes every header of every record into a dict (microseconds per record, and
    a strict UTF-8 decode that fails a whole batch on one bad header). The handlers read only the headers they
    need from the raw records, so the message is built without touching them."""
    parser = getattr(original, "__self__", None) or original.func.__self__
    first, last = records[0], records[-1]
    return parser.msg_class(
        body=(),
        raw_message=records,
        message_id=f"{first.offset}-{last.offset}-{first.timestamp}",
        consumer=parser._consumer,
    )


@dataclass(frozen=True)
class Delivery:
    """Where a service's batches come from and what their transactions need: the consumer group (whose positions
    are stored with the effect), the broker (to tell a replaced log from a redelivery) and the relay's NOTIFY
    channel (to wake it once the transaction commits)."""

    service: str
    group: str
    bootstrap_servers: str
    channel: str
    kafka_options: Mapping[str, Any] = field(default_factory=dict)
    """Consumer options (security, client id) of the service's ``KafkaClients``; none for a plain broker."""

    async def claim(self, conn: AsyncConnection, records: Sequence[ConsumerRecord]) -> list[ConsumerRecord]:
        """``shared.positions.claim_positions`` for this group: the records not applied before, the positions
        advanced past them, in the caller's transaction."""
        return await claim_positions(conn, group=self.group, records=records,
                                     bootstrap_servers=self.bootstrap_servers, kafka_options=self.kafka_options)

    def subscriber(self, broker: KafkaBroker, *, topics: Sequence[str], engine: AsyncEngine, description: str,
                   max_records: int, group: str | None = None) -> Callable[[Callable[..., Awaitable[None]]], Any]:
        """``batch_subscriber`` for this group (or ``group``: another lane's), committing after the handler
        (``NACK_ON_ERROR``: a failed batch is redelivered)."""
        return batch_subscriber(broker, topics=topics, group_id=group or self.group, engine=engine,
                                bootstrap_servers=self.bootstrap_servers, service=self.service,
                                kafka_options=self.kafka_options, ack_policy=AckPolicy.NACK_ON_ERROR,
                                description=description, max_records=max_records)


@dataclass
class ConsumerHealth:
    """One subscriber's loop as health checks see it. FastStream's loop polls, then runs the handler on the batch
    and only then polls again: time in the handler is time without a poll (past the consumer's
    ``max_poll_interval_ms`` the group evicts it). ``joined``: an assignment, possibly empty (more instances than
    partitions), has arrived since the start: before it the service consumes nothing."""

    group: str
    topics: tuple[str, ...]
    joined: bool = False
    partitions: set[TopicPartition] = field(default_factory=set)
    busy_since: float | None = None
    """``time.monotonic()`` when the batch in the handler arrived; None while polling."""

    def stuck_for(self, now: float) -> float:
        """Seconds the loop has gone without polling (0 while it polls)."""
        return 0.0 if self.busy_since is None else max(now - self.busy_since, 0.0)

    def describe(self, now: float) -> dict[str, Any]:
        return {
            "group": self.group, "topics": list(self.topics), "joined": self.joined,
            "partitions": sorted(f"{tp.topic}[{tp.partition}]" for tp in self.partitions),
            "in_batch_seconds": round(self.stuck_for(now), 1),
        }


def not_joined(consumers: Sequence[ConsumerHealth]) -> str | None:
    """Readiness: why the service does not consume yet, or None once every consumer has joined its group."""
    waiting = sorted({c.group for c in consumers if not c.joined})
    return f"consumer group {', '.join(waiting)}: no partition assignment yet (joining)" if waiting else None


def stuck(consumers: Sequence[ConsumerHealth], *, now: float, limit: float) -> str | None:
    """Liveness: which consumer loop has not polled for longer than ``limit`` seconds, or None."""
    found = [f"{c.group} ({', '.join(c.topics)}): in one batch for {c.stuck_for(now):.0f} s, no poll (limit "
             f"{limit:g} s)" for c in consumers if c.stuck_for(now) > limit]
    return "; ".join(found) or None


_CONSUMERS: weakref.WeakKeyDictionary[KafkaBroker, list[ConsumerHealth]] = weakref.WeakKeyDictionary()


def consumers_of(broker: KafkaBroker) -> list[ConsumerHealth]:
    """The health of every ``batch_subscriber`` registered on ``broker``."""
    return _CONSUMERS.get(broker, [])


class SeekToStoredPositions(ConsumerRebalanceListener):
    """On assignment, each partition resumes at the position its consumer group stored in PostgreSQL with the
    last applied batch (Kafka's committed offset may lag it after a crash between the two commits). A position
    taken in another log (the broker restarted empty, the topic was recreated: the last applied record is no
    longer at its offset) is forgotten and the partition read from its beginning; what the new log repeats is
    recognised by the service's own deduplication."""

    def __init__(self, engine: AsyncEngine, *, group: str, bootstrap_servers: str,
                 options: Mapping[str, Any] | None = None, health: ConsumerHealth | None = None) -> None:
        self._engine = engine
        self._group = group
        self._bootstrap_servers = bootstrap_servers
        self._options = options
        self.subscriber: Any = None
        self.health = health or ConsumerHealth(group=group, topics=())

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        self.health.partitions -= set(revoked)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self.health.partitions |= set(assigned)
        self.health.joined = True
        consumer = getattr(self.subscriber, "consumer", None)
        if consumer is None or not assigned:
            return
        async with self._engine.connect() as conn:
            stored = await stored_positions(
                conn, group=self._group, partitions=sorted((tp.topic, tp.partition) for tp in assigned)
            )
        markers = [m for (t, p), s in stored.items() if (m := s.as_marker(t, p)) is not None]
        lost = {(m.topic, m.partition) for m in await lost_markers(self._bootstrap_servers, markers,
                                                                   options=self._options)}
        if lost:
            async with self._engine.begin() as conn:
                await forget_positions(conn, group=self._group, partitions=sorted(lost))
            log.warning("consumer.log_replaced", group=self._group, partitions=sorted(f"{t}[{p}]" for t, p in lost),
                        action="reading these partitions from their beginning")
        for (topic, partition), position in stored.items():
            consumer.seek(TopicPartition(topic, partition), 0 if (topic, partition) in lost else position.next_offset)
        if stored:
            log.info("consumer.resumed_at_stored_positions", group=self._group,
                     positions={f"{t}[{p}]": 0 if (t, p) in lost else s.next_offset
                                for (t, p), s in sorted(stored.items())})


GROUP_TIMING = ("session_timeout_ms", "heartbeat_interval_ms")
"""The consumer options (``KafkaClients.options("consumer")``) that a group's subscriber takes from settings."""


def batch_subscriber(
    broker: KafkaBroker,
    *,
    topics: Sequence[str],
    group_id: str,
    ack_policy: AckPolicy,
    description: str,
    engine: AsyncEngine,
    bootstrap_servers: str,
    service: str,
    kafka_options: Mapping[str, Any] | None = None,
    max_records: int = 5000,
    batch_timeout_ms: int = 500,
) -> Callable[[Callable[..., Awaitable[None]]], Any]:
    """A batch subscriber whose handler takes the raw records (``raw_records(msg)``) and applies them in one
    transaction that also stores the group's positions (``shared.positions.claim_positions``)."""
    health = ConsumerHealth(group=group_id, topics=tuple(topics))
    _CONSUMERS.setdefault(broker, []).append(health)
    listener = SeekToStoredPositions(engine, group=group_id, bootstrap_servers=bootstrap_servers,
                                     options=kafka_options, health=health)
    subscriber = broker.subscriber(
        *topics,
        group_id=group_id,
        batch=True,
        max_records=max_records,
        batch_timeout_ms=batch_timeout_ms,
        auto_offset_reset="earliest",
        ack_policy=ack_policy,
        description=description,
        decoder=_keep_raw,
        parser=_parse_lazily,
        listener=listener,
        max_partition_fetch_bytes=8 * 1024 * 1024,
        **{name: value for name, value in (kafka_options or {}).items() if name in GROUP_TIMING},
    )
    listener.subscriber = subscriber

    def register(handler: Callable[..., Awaitable[None]]) -> Any:
        @functools.wraps(handler)
        async def logged(*args: Any, **kwargs: Any) -> None:
            message = kwargs.get("msg") or next((a for a in args if hasattr(a, "raw_message")), None)
            records = raw_records(message) if message is not None else ()
            health.busy_since = time.monotonic()
            try:
                with batch_span(handler.__name__, batch_traceparents(records), **{
                    "messaging.system": "kafka", "messaging.consumer.group.name": group_id,
                    "messaging.batch.message_count": len(records),
                }), metrics.batch(service, handler.__name__, records=len(records)):
                    await handler(*args, **kwargs)
            except Exception:
                where = describe_batch(records) if records else {}
                log.exception("batch.failed", handler=handler.__name__, ack_policy=ack_policy.value, **where)
                raise
            finally:
                health.busy_since = None

        return subscriber(logged)

    return register


def raw_records(message: Any) -> tuple[ConsumerRecord, ...]:
    raw = message.raw_message
    return raw if isinstance(raw, tuple) else (raw,)


def describe_batch(records: Sequence[ConsumerRecord]) -> dict[str, Any]:
    """Topics, partitions and offset ranges of a batch, for log lines."""
    ranges: dict[tuple[str, int], list[int]] = {}
    for record in records:
        low_high = ranges.setdefault((record.topic, record.partition), [record.offset, record.offset])
        low_high[0] = min(low_high[0], record.offset)
        low_high[1] = max(low_high[1], record.offset)
    topics = sorted({topic for topic, _ in ranges})
    return {
        "topic": ",".join(topics) if topics else None,
        "offsets": {
            (str(partition) if len(topics) == 1 else f"{topic}[{partition}]"): f"{low}-{high}"
            for (topic, partition), (low, high) in sorted(ranges.items())
        },
        "count": len(records),
    }


def header(record: ConsumerRecord, name: str) -> bytes | None:
    """One header's value (the first with that name), without building a dict of all of them."""
    for key, value in record.headers or ():
        if key == name:
            return value  # type: ignore[no-any-return]
    return None
