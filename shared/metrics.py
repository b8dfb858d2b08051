"""Prometheus metrics of every service, through ``prometheus-client``: one registry per process and the business
metric objects, with one helper per thing a handler reports. Handlers call the helpers; ``/metrics``
(``shared.http``) renders the registry.

Every metric carries a ``service`` label so one dashboard query covers all four services. Consumer lag is not
here: the lag monitor (``services.monitor``) reads it from the broker, so a stopped service still shows up."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

disable_created_metrics()  # no *_created series: they double the series count and no dashboard reads them
REGISTRY = CollectorRegistry()
ProcessCollector(registry=REGISTRY)
PlatformCollector(registry=REGISTRY)
GCCollector(registry=REGISTRY)

BATCH_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
IMPORT_BUCKETS = (1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0, 7200.0)

IMPORTS_FINISHED = Counter(
    "contacts_imports_finished",
    "Imports that reached a final status (processed: every row succeeded; error: a row or the file failed).",
    ["service", "status"],
    registry=REGISTRY,
)
IMPORT_DURATION = Histogram(
    "contacts_import_duration_seconds",
    "From an import's start to its final status.",
    ["service", "status"],
    buckets=IMPORT_BUCKETS,
    registry=REGISTRY,
)
IMPORT_ROWS = Counter(
    "contacts_import_rows",
    "Import rows answered, by outcome (created, matched, error).",
    ["service", "outcome"],
    registry=REGISTRY,
)
MESSAGES_CONSUMED = Counter(
    "contacts_messages_consumed",
    "Records handled by a batch subscriber (rate() of it is the rows or messages per second).",
    ["service", "handler"],
    registry=REGISTRY,
)
BATCHES_FAILED = Counter(
    "contacts_batches_failed",
    "Batches whose handler raised (redelivered under NACK_ON_ERROR).",
    ["service", "handler"],
    registry=REGISTRY,
)
BATCH_DURATION = Histogram(
    "contacts_batch_duration_seconds",
    "Time a batch subscriber spent on one batch, its database transaction included.",
    ["service", "handler"],
    buckets=BATCH_BUCKETS,
    registry=REGISTRY,
)
DEAD_LETTERS = Counter(
    "contacts_dead_letters",
    "Messages sent to a dead-letter topic, by the topic they came from and the error code.",
    ["service", "topic", "error_code"],
    registry=REGISTRY,
)
OUTBOX_BACKLOG = Gauge(
    "contacts_outbox_backlog",
    "Outbox rows written but not yet published (read at scrape time).",
    ["service"],
    registry=REGISTRY,
)
OUTBOX_OLDEST_AGE = Gauge(
    "contacts_outbox_oldest_age_seconds",
    "Age of the oldest unpublished outbox row, 0 when the outbox is empty (read at scrape time).",
    ["service"],
    registry=REGISTRY,
)
OUTBOX_PUBLISHED = Counter(
    "contacts_outbox_published",
    "Messages published by this process's outbox relay.",
    ["service"],
    registry=REGISTRY,
)


def import_finished(service: str, *, status: str, seconds: float | None = None) -> None:
    """An import reached ``processed`` or ``error``; ``seconds`` from its start, when it was started."""
    IMPORTS_FINISHED.labels(service=service, status=status).inc()
    if seconds is not None:
        IMPORT_DURATION.labels(service=service, status=status).observe(max(seconds, 0.0))


def rows_answered(service: str, outcomes: Mapping[str, int]) -> None:
    """Row outcomes of one batch, e.g. ``{"created": 812, "matched": 180, "error": 8}``."""
    for outcome, count in outcomes.items():
        if count:
            IMPORT_ROWS.labels(service=service, outcome=outcome).inc(count)


def dead_lettered(service: str, *, topic: str, error_code: str, count: int = 1) -> None:
    """``count`` messages of ``topic`` (where they were read) went to the dead-letter topic with ``error_code``."""
    DEAD_LETTERS.labels(service=service, topic=topic, error_code=error_code).inc(count)


Letter = tuple[str, bytes | None, bytes, list[tuple[str, bytes]]]


def dead_letters_sent(service: str, letters: Iterable[Letter]) -> None:
    """Count dead letters (``shared.kafka.dead_letter`` messages) by the topic they were read from and their code."""
    for *_, headers in letters:
        found = dict(headers)
        dead_lettered(service, topic=found.get("dlq_original_topic", b"?").decode(errors="replace"),
                      error_code=found.get("dlq_error_code", b"?").decode(errors="replace"))


def outbox_published(service: str, count: int) -> None:
    if count:
        OUTBOX_PUBLISHED.labels(service=service).inc(count)


def outbox_state(service: str, *, backlog: int, oldest_age_seconds: float) -> None:
    OUTBOX_BACKLOG.labels(service=service).set(backlog)
    OUTBOX_OLDEST_AGE.labels(service=service).set(max(oldest_age_seconds, 0.0))


@contextmanager
def batch(service: str, handler: str, *, records: int) -> Iterator[None]:
    """Times one batch: its duration and record count, and a failure if the block raises (re-raised)."""
    started = time.perf_counter()
    try:
        yield
    except Exception:
        BATCHES_FAILED.labels(service=service, handler=handler).inc()
        raise
    finally:
        BATCH_DURATION.labels(service=service, handler=handler).observe(time.perf_counter() - started)
    MESSAGES_CONSUMED.labels(service=service, handler=handler).inc(records)


def render() -> bytes:
    """The registry in Prometheus' text format."""
    return generate_latest(REGISTRY)
