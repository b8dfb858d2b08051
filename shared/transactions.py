"""One transaction, tried again when PostgreSQL broke it for a reason another attempt does not share: a deadlock,
a serialization failure, or (where the caller says so) a unique violation, as when another instance created the
same row first. The one retrying-transaction helper of every service's use cases."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

import psycopg
import structlog
from psycopg import errors as pg_errors
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

log = structlog.get_logger(__name__)

T = TypeVar("T")

TRANSIENT: tuple[type[Exception], ...] = (pg_errors.DeadlockDetected, pg_errors.SerializationFailure)
"""What breaks a transaction through no fault of its own: trying it again is the remedy."""
MAX_ATTEMPTS = 5


def is_retryable(error: BaseException, retry_on: tuple[type[Exception], ...] = TRANSIENT) -> bool:
    """``error`` is one of ``retry_on``, raised through SQLAlchemy (``DBAPIError.orig``) or straight from psycopg
    (COPY and the tuple queries run on the driver's connection)."""
    return isinstance(getattr(error, "orig", error), retry_on)


async def with_retries(
    engine: AsyncEngine,
    work: Callable[[AsyncConnection], Awaitable[T]],
    *,
    event: str,
    retry_on: tuple[type[Exception], ...] = TRANSIENT,
    attempts: int = MAX_ATTEMPTS,
) -> T:
    """``work`` in its own transaction (committed when it returns), tried up to ``attempts`` times while it fails
    with one of ``retry_on``; any other error, or the last attempt's, is raised. ``event``: the log line of a
    retry."""
    for attempt in range(1, attempts + 1):
        try:
            async with engine.begin() as conn:
                return await work(conn)
        except (DBAPIError, psycopg.Error) as error:
            if not is_retryable(error, retry_on) or attempt == attempts:
                raise
            log.info(event, attempt=attempt, reason=type(getattr(error, "orig", error)).__name__)
    raise AssertionError("unreachable")
