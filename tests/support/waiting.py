"""Polling for eventually-consistent outcomes: ``await wait_until(lambda: ..., timeout=10)``."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar, overload

T = TypeVar("T")


@overload
async def wait_until(
    predicate: Callable[[], Awaitable[T | None]], timeout: float = ..., interval: float = ..., *,  # noqa: ASYNC109
    description: str | None = ...,
) -> T: ...


@overload
async def wait_until(
    predicate: Callable[[], T | None], timeout: float = ..., interval: float = ..., *,  # noqa: ASYNC109
    description: str | None = ...,
) -> T: ...


async def wait_until(
    predicate: Callable[[], object],
    timeout: float = 30.0,  # noqa: ASYNC109 - the failure message reports what was last seen
    interval: float = 0.2,
    *,
    description: str | None = None,
) -> object:
    """Call ``predicate`` (sync or async) until it returns a truthy value, and return that value (never None,
    so a predicate typed ``-> X | None`` gives an ``X``).

    An exception from the predicate counts as "not yet" (so it may use ``assert``); after ``timeout`` seconds
    an ``AssertionError`` reports the last value or exception."""
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            value = predicate()
            if inspect.isawaitable(value):
                value = await value
            if value:
                return value
            last = value
        except Exception as error:  # the condition is not met yet
            last = error
        if time.monotonic() >= deadline:
            what = description or getattr(predicate, "__name__", "condition")
            raise AssertionError(f"{what} not met within {timeout} s; last result: {last!r}")
        await asyncio.sleep(interval)
