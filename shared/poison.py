"""A batch that keeps failing for a reason other than decoding (a constraint, a value the database refuses, a bug
that one message triggers) must not block its partitions for ever, nor take the rest of the batch with it: it is
retried with exponential backoff, then split in halves until the failing message(s) stand alone; those go to the
dead-letter topic with the error, and the rest is applied. A database or broker that cannot be reached is not
poison: that batch is redelivered (the ack policy) until it is back, never split."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import structlog
from aiokafka import errors as kafka_errors
from psycopg import errors as pg_errors
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from shared import metrics
from shared.codec import UndecodableMessage, dead_letter
from shared.consumer import Delivery, describe_batch
from shared.outbox_batches import enqueue

log = structlog.get_logger(__name__)

Apply = Callable[[Sequence[Any]], Awaitable[Any]]


BROKER_UNAVAILABLE = (kafka_errors.KafkaConnectionError, kafka_errors.KafkaTimeoutError,
                      kafka_errors.NodeNotReadyError, kafka_errors.NoBrokersAvailable,
                      kafka_errors.RequestTimedOutError)
"""What a handler meets when it asks the broker (whether a stored position's log was replaced) and it is away."""


def unavailable(error: BaseException) -> bool:
    """The database or the broker (or the network to them) failed, not the batch: wait and redeliver, never
    dead-letter."""
    if isinstance(error, (OperationalError, InterfaceError, OSError, asyncio.TimeoutError, *BROKER_UNAVAILABLE)):
        return True
    cause = getattr(error, "orig", error) if isinstance(error, DBAPIError) else error  # COPY and tuple queries
    return isinstance(  # raise psycopg's errors unwrapped
        cause, pg_errors.OperationalError | pg_errors.InterfaceError | pg_errors.AdminShutdown
        | pg_errors.CannotConnectNow
    )


async def dead_letter_alone(engine: AsyncEngine, record: Any, error: BaseException, *, delivery: Delivery,
                            topic: str) -> None:
    """Send ``record`` to ``topic`` with the error, in a transaction that also moves the positions past it."""
    async with engine.begin() as conn:
        if await delivery.claim(conn, [record]):
            problem = UndecodableMessage("PROCESSING_FAILED", f"{type(error).__name__}: {error}")
            await enqueue(conn, [dead_letter(record, problem, topic=topic)], channel=delivery.channel)
    metrics.dead_lettered(delivery.service, topic=record.topic, error_code="PROCESSING_FAILED")


async def apply_isolating_poison(
    records: Sequence[Any],
    apply: Apply,
    *,
    send_to_dead_letters: Callable[[Any, BaseException], Awaitable[None]],
    attempts: int = 4,
    first_delay: float = 0.5,
) -> int:
    """``apply(records)`` (its own transaction each time), retried ``attempts`` times with delays doubling from
    ``first_delay``; then the batch is split in halves, in order, each half tried once more before it is split
    again; a single record that still fails goes to ``send_to_dead_letters``. Returns how many records were
    dead-lettered. A database that cannot be reached raises at once (the batch is redelivered)."""
    delay = first_delay
    for attempt in range(1, attempts + 1):
        try:
            await apply(records)
            return 0
        except Exception as error:
            if unavailable(error):
                raise
            if attempt == attempts:
                log.warning("batch.isolating_poison", error=f"{type(error).__name__}: {error}", attempts=attempts,
                            **describe_batch(records))
                return await _split(records, apply, send_to_dead_letters, error)
            log.info("batch.retry", attempt=attempt, retry_in=delay, error=f"{type(error).__name__}: {error}")
            await asyncio.sleep(delay)
            delay *= 2
    raise AssertionError("unreachable")


async def _split(records: Sequence[Any], apply: Apply, send_to_dead_letters: Callable[[Any, BaseException],
                 Awaitable[None]], error: BaseException) -> int:
    if len(records) == 1:
        log.error("batch.poison_dead_lettered", error=f"{type(error).__name__}: {error}", **describe_batch(records))
        await send_to_dead_letters(records[0], error)
        return 1
    middle = len(records) // 2
    dead = 0
    for half in (records[:middle], records[middle:]):
        try:
            await apply(half)
        except Exception as half_error:
            if unavailable(half_error):
                raise
            dead += await _split(half, apply, send_to_dead_letters, half_error)
    return dead
