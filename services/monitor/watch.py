"""The poll loop: read a snapshot, record it in the ``LagBook``, log every change of a group's status."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import structlog

from services.monitor.domain import LagBook, Status
from services.monitor.poller import OffsetPoller

log = structlog.get_logger(__name__)


@dataclass
class Monitor:
    book: LagBook
    poller: OffsetPoller
    interval: float
    broker_error: str | None = None
    polls: int = 0
    _statuses: dict[str, Status] = field(default_factory=dict)

    async def poll_once(self) -> None:
        snapshot = await self.poller.read()
        self.book.record(snapshot)
        self.polls += 1
        if snapshot.error != self.broker_error:
            if snapshot.error:
                log.warning("monitor.broker_unreadable", error=snapshot.error)
            else:
                log.info("monitor.broker_readable")
        self.broker_error = snapshot.error
        for report in self.book.report(now=snapshot.at):
            previous = self._statuses.get(report.group)
            if previous != report.status:
                self._statuses[report.group] = report.status
                reasons = sorted({p.reason for p in report.partitions if p.status == report.status})
                log.log(
                    20 if report.status in (Status.OK, Status.WARN) else 30,
                    "lag.status_changed", group=report.group, service=report.service,
                    previous=previous.value if previous else None, status=report.status.value,
                    sum_lag=report.sum_lag, error=report.error, reasons=reasons[:3],
                )

    async def run(self) -> None:
        while True:
            started = time.monotonic()
            try:
                await self.poll_once()
            except asyncio.CancelledError:
                raise
            except Exception:  # a bug in one poll must not end the monitor
                log.exception("monitor.poll_failed")
            await asyncio.sleep(max(self.interval - (time.monotonic() - started), 0.05))
