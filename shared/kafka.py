"""Broker plumbing: producer and admin factories, topic creation, event encoding/decoding, batched publishing,
dead-lettering and the batch-subscriber shape every consuming service uses."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import json
import random
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple

import structlog
from aiokafka import AIOKafkaProducer, ConsumerRecord
from aiokafka.admin import AIOKafkaAdminClient, NewPartitions, NewTopic
from aiokafka.errors import IncompatibleBrokerVersion, TopicAlreadyExistsError
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from pydantic import ValidationError

from shared.envelope import Envelope, Headers, MissingHeaderError
from shared.events import EVENTS_BY_TYPE, Event
from shared.kafka_security import ClientRole, KafkaSecuritySettings, client_options
from shared.logcheck import Marker, fingerprint
from shared.partitioning import partition_of
from shared.topics import Topic

log = structlog.get_logger(__name__)

MAX_MESSAGE_BYTES = 1_048_576


class OutgoingMessage(NamedTuple):
    """A message to publish (a tuple: built per message on the bulk paths, so it must be cheap)."""

    topic: str
    key: bytes | None
    value: bytes
    headers: Headers


class UndecodableMessage(Exception):
    """A record that can never be processed: wrong type, bad JSON, invalid payload. Goes to dead letters."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail


def encode(event: Event, envelope: Envelope, *, topic: str, key: str | None) -> OutgoingMessage:
    if envelope.type != event.TYPE:
        raise ValueError(f"envelope type {envelope.type!r} does not match event type {event.TYPE!r}")
    return OutgoingMessage(
        topic=topic,
        key=key.encode() if key is not None else None,
        value=event.model_dump_json().encode(),
        headers=envelope.to_headers(),
    )


def decode(record: ConsumerRecord, accepted: Sequence[type[Event]]) -> tuple[Envelope, Event]:
    """Envelope and typed event of one record, or ``UndecodableMessage`` saying exactly why not."""
    try:
        envelope = Envelope.from_headers(record.headers or ())
    except (MissingHeaderError, ValueError, UnicodeError) as error:
        raise UndecodableMessage("BAD_ENVELOPE", str(error)) from error
    model = EVENTS_BY_TYPE.get(envelope.type)
    if model is None or model not in accepted:
        raise UndecodableMessage("UNEXPECTED_TYPE", f"type {envelope.type!r} is not accepted on {record.topic}")
    try:
        return envelope, model.model_validate_json(record.value or b"")
    except ValidationError as error:
        raise UndecodableMessage("INVALID_PAYLOAD", str(error)) from error
    except Exception as error:  # anything else about these bytes is just as permanent
        raise UndecodableMessage("INVALID_PAYLOAD", repr(error)) from error


def dead_letter(record: ConsumerRecord, error: UndecodableMessage, *, topic: str) -> OutgoingMessage:
    """The original bytes and headers, plus headers naming where it came from and why it failed."""
    headers: Headers = list(record.headers or ())
    headers += [
        ("dlq_error_code", error.code.encode()),
        ("dlq_error", error.detail[:4000].encode()),
        ("dlq_original_topic", record.topic.encode()),
        ("dlq_original_partition", str(record.partition).encode()),
        ("dlq_original_offset", str(record.offset).encode()),
        ("dlq_failed_at", datetime.now(UTC).isoformat().encode()),
    ]
    return OutgoingMessage(topic=topic, key=record.key, value=record.value or b"", headers=headers)


def create_producer(bootstrap_servers: str, *, options: Mapping[str, Any] | None = None) -> AIOKafkaProducer:
    """A producer for batches: ``options`` from ``KafkaClients`` (security, client id, acks, idempotence,
    compression); without, a plain at-least-once producer (what the local broker and the tests use)."""
    settings: dict[str, Any] = {"acks": "all", "enable_idempotence": False, **(options or {})}
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap_servers,
        linger_ms=5,
        max_batch_size=512 * 1024,
        max_request_size=MAX_MESSAGE_BYTES * 4,
        **settings,
    )


@dataclass(frozen=True)
class KafkaClients:
    """How one service's clients connect, built once in its composition root: the broker list and the
    ``CONTACTS_KAFKA_*`` security, client-id and producer settings (``shared.kafka_security``)."""

    bootstrap_servers: str
    service: str
    security: KafkaSecuritySettings

    def options(self, role: ClientRole) -> dict[str, Any]:
        return client_options(self.security, service=self.service, role=role)

    def producer(self) -> AIOKafkaProducer:
        return create_producer(self.bootstrap_servers, options=self.options("producer"))

    def broker(self, *, description: str) -> KafkaBroker:
        return create_broker(self.bootstrap_servers, description=description, options=self.options("broker"))


async def publish_all(producer: AIOKafkaProducer, messages: Iterable[OutgoingMessage]) -> int:
    """Publish every message and wait for all acknowledgements at once (never one by one); returns how many."""
    count, _ = await publish_marked(producer, messages)
    return count


async def publish_marked(producer: AIOKafkaProducer, messages: Iterable[OutgoingMessage]) -> tuple[int, Marker | None]:
    """``publish_all``, also returning where the first message of the last batch landed (a marker that tells
    later whether the broker still holds this log: ``shared.logcheck``).

    Messages are grouped by partition (Kafka's default partitioning of the key, so keys land where any Kafka
    client would put them) and handed over as whole batches, in order: about half the per-message cost of
    ``send()``."""
    partition_counts: dict[str, int] = {}
    grouped: dict[tuple[str, int], list[OutgoingMessage]] = {}
    for message in messages:
        topic = message.topic
        count = partition_counts.get(topic)
        if count is None:
            count = partition_counts[topic] = len(await producer.partitions_for(topic))
        partition = random.randrange(count) if message.key is None else partition_of(message.key, count)
        batch_of = grouped.get((topic, partition))
        if batch_of is None:
            grouped[(topic, partition)] = [message]
        else:
            batch_of.append(message)

    pending: list[tuple[asyncio.Future[Any], OutgoingMessage]] = []
    for (topic, partition), batch_messages in grouped.items():
        batch = producer.create_batch()
        first = batch_messages[0]
        for message in batch_messages:
            _, key, value, headers = message
            if batch.append(key=key, value=value, timestamp=None, headers=headers) is None:
                pending.append((await producer.send_batch(batch, topic, partition=partition), first))
                batch, first = producer.create_batch(), message
                if batch.append(key=key, value=value, timestamp=None, headers=headers) is None:
                    raise ValueError(f"a message of {len(value)} bytes does not fit in a batch for {topic}")
        pending.append((await producer.send_batch(batch, topic, partition=partition), first))
    if not pending:
        return 0, None
    sent = await asyncio.gather(*(future for future, _ in pending))
    last, first = sent[-1], pending[-1][1]
    marker = Marker(last.topic, last.partition, last.offset, fingerprint(first.key, first.value, first.headers))
    return sum(len(batch_messages) for batch_messages in grouped.values()), marker


async def ensure_topics(
    bootstrap_servers: str,
    *,
    prefix: str,
    topics: Iterable[Topic],
    replication_factor: int = 1,
    min_insync_replicas: int = 1,
    options: Mapping[str, Any] | None = None,
) -> list[str]:
    """Create the missing topics with their configs; returns the names created (or re-created).

    A topic with fewer partitions than the registry's was created by a client's request for an unknown topic
    (the local broker does so, with 4, when it restarted empty and a client asked first): its partitions are
    raised where the broker can (Apache Kafka), else it is deleted and created again (what was written to it in
    the meantime is published again by its writers, who check their logs)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, **(options or {}))
    await admin.start()
    try:
        wanted = {topic.qualified(prefix): topic for topic in topics}
        listed = set(await admin.list_topics())
        present = [name for name in wanted if name in listed]
        described = await admin.describe_topics(present) if present else []  # none named: it describes all
        existing = {t["topic"]: len(t["partitions"]) for t in described if t["topic"] in wanted}

        def new_topic(name: str) -> NewTopic:
            topic = wanted[name]
            config = {**topic.config, "min.insync.replicas": str(min_insync_replicas)}
            return NewTopic(name=name, num_partitions=topic.partitions, replication_factor=replication_factor,
                            topic_configs=config)

        short = [name for name, count in existing.items() if count < wanted[name].partitions]
        recreated = []
        for name in short:
            try:
                await admin.create_partitions({name: NewPartitions(total_count=wanted[name].partitions)})
            except IncompatibleBrokerVersion:
                await admin.delete_topics([name])
                recreated.append(name)
        missing = [name for name in wanted if name not in existing] + recreated
        for name in missing:
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics([new_topic(name)])
        if short:
            log.warning("topics.repartitioned", topics=short, recreated=recreated)
        return missing
    finally:
        await admin.close()


def create_broker(
    bootstrap_servers: str, *, description: str, options: Mapping[str, Any] | None = None
) -> KafkaBroker:
    """FastStream broker; its per-message log lines are off because every subscriber here is a batch one and
    logs its own batch with topic, partitions and offsets. ``options``: ``KafkaClients.options("broker")``."""
    settings: dict[str, Any] = {"enable_idempotence": False, **(options or {})}
    return KafkaBroker(bootstrap_servers, logger=None, description=description, **settings)


async def _keep_raw(_: Any) -> None:
    """Decoder that leaves decoding to the handler, which needs each record's headers, offset and bytes."""
    return None


async def _parse_leniently(records: Any, original: Callable[[Any], Awaitable[Any]]) -> Any:
    """FastStream decodes every header as strict UTF-8 before the handler runs, so one bad header value would
    fail its batch for ever. Parse a copy with such values replaced; the handler still gets the original
    records (and dead-letters them byte for byte)."""
    try:
        return await original(records)
    except UnicodeDecodeError:
        readable = tuple(
            dataclasses.replace(
                record,
                headers=tuple((key, value.decode(errors="replace").encode()) for key, value in record.headers),
            )
            for record in records
        )
        message = await original(readable)
        message.raw_message = records
        return message


def batch_subscriber(
    broker: KafkaBroker,
    *,
    topic: str | tuple[str, ...],
    group_id: str,
    ack_policy: AckPolicy,
    description: str,
    max_records: int = 5000,
) -> Callable[[Callable[..., Any]], Any]:
    """A batch subscriber that hands the handler raw records (``raw_records(msg)``). A batch whose handler
    raises is logged with its topic, partitions and offsets, then handled by ``ack_policy``."""
    subscriber = broker.subscriber(
        *((topic,) if isinstance(topic, str) else topic),
        group_id=group_id,
        batch=True,
        max_records=max_records,
        batch_timeout_ms=100,
        auto_offset_reset="earliest",
        ack_policy=ack_policy,
        description=description,
        decoder=_keep_raw,
        parser=_parse_leniently,
        max_partition_fetch_bytes=8 * 1024 * 1024,
    )

    def register(handler: Callable[..., Awaitable[None]]) -> Any:
        @functools.wraps(handler)
        async def logged(*args: Any, **kwargs: Any) -> None:
            try:
                await handler(*args, **kwargs)
            except Exception:
                message = kwargs.get("msg") or next((a for a in args if hasattr(a, "raw_message")), None)
                where = describe_batch(raw_records(message)) if message is not None else {}
                log.exception("batch.failed", handler=handler.__name__, ack_policy=ack_policy.value, **where)
                raise

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


def headers_to_json(headers: Headers) -> str:
    return json.dumps([[key, value.decode("utf-8", errors="replace")] for key, value in headers])


def headers_from_json(text: str | list[list[str]]) -> Headers:
    pairs = json.loads(text) if isinstance(text, str) else text
    return [(key, value.encode()) for key, value in pairs]
