"""The monitor's HTTP surfaces: ``GET /v1/lag`` (JSON), ``/metrics`` (kafka-lag-exporter's metric names and
labels plus a status gauge) and health."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.process_collector import ProcessCollector
from pydantic import BaseModel

from services.monitor.domain import GroupReport, Status
from services.monitor.watch import Monitor
from shared.metrics import CONTENT_TYPE

router = APIRouter()


def get_monitor(request: Request) -> Monitor:
    monitor: Monitor = request.app.state.monitor
    return monitor


MonitorDep = Annotated[Monitor, Depends(get_monitor)]


class PartitionLagOut(BaseModel):
    topic: str
    partition: int
    committed_offset: int | None
    end_offset: int
    lag: int
    lag_seconds: float | None
    status: Status
    reason: str
    approximate: bool
    committed_moved_at: datetime


class GroupLagOut(BaseModel):
    group: str
    service: str | None
    status: Status
    error: str | None
    sum_lag: int
    max_lag: int
    max_lag_seconds: float | None
    partitions: list[PartitionLagOut]


class LagOut(BaseModel):
    cluster_name: str
    polled_at: datetime | None
    poll_interval_seconds: float
    groups: list[GroupLagOut]


def _time(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


def group_out(report: GroupReport) -> GroupLagOut:
    return GroupLagOut(
        group=report.group,
        service=report.service,
        status=report.status,
        error=report.error,
        sum_lag=report.sum_lag,
        max_lag=report.max_lag,
        max_lag_seconds=_rounded(report.max_lag_seconds),
        partitions=[
            PartitionLagOut(
                topic=p.topic, partition=p.partition, committed_offset=p.committed, end_offset=p.end, lag=p.lag,
                lag_seconds=_rounded(p.lag_seconds), status=p.status, reason=p.reason, approximate=p.approximate,
                committed_moved_at=_time(p.committed_moved_at),
            )
            for p in report.partitions
        ],
    )


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


@router.get("/v1/lag", response_model=LagOut, tags=["lag"])
async def lag(
    request: Request,
    monitor: MonitorDep,
    group: Annotated[str | None, Query(description="only this consumer group")] = None,
) -> LagOut:
    """Every watched consumer group: committed and end offsets, lag in messages and seconds, status."""
    reports = monitor.book.report(now=time.time())
    if group is not None:
        reports = [report for report in reports if report.group == group]
        if not reports:
            raise HTTPException(404, f"consumer group {group!r} is not watched")
    polled = monitor.book.last_poll
    return LagOut(
        cluster_name=request.app.state.cluster_name,
        polled_at=_time(polled) if polled is not None else None,
        poll_interval_seconds=monitor.interval,
        groups=[group_out(report) for report in reports],
    )


@router.get("/health/live", tags=["operations"])
async def live() -> dict[str, str]:
    return {"status": "ok", "service": "monitor"}


@router.get("/health/ready", tags=["operations"])
async def ready(monitor: MonitorDep, response: Response) -> dict[str, str]:
    """Ready once a poll has read the broker; 503 while the broker cannot be read."""
    if monitor.polls == 0:
        response.status_code = 503
        return {"status": "starting", "service": "monitor"}
    if monitor.broker_error:
        response.status_code = 503
        return {"status": "unavailable", "service": "monitor", "reason": monitor.broker_error}
    return {"status": "ok", "service": "monitor"}


@router.get("/metrics", tags=["operations"])
async def metrics(request: Request) -> Response:
    registry: CollectorRegistry = request.app.state.registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE)


PARTITION_LABELS = ["cluster_name", "group", "topic", "partition", "member_host", "consumer_id", "client_id"]
UNKNOWN_MEMBER = ["unknown", "unknown", "unknown"]
"""The monitor reads offsets, not group membership: kafka-lag-exporter's member labels are kept for its
dashboards and rules, with this value."""


class LagCollector:
    """Renders the monitor's latest reports at scrape time under kafka-lag-exporter's names and labels."""

    def __init__(self, monitor: Monitor, *, cluster_name: str) -> None:
        self._monitor = monitor
        self._cluster = cluster_name

    def collect(self) -> Iterator[Metric]:
        cluster = self._cluster
        offset = GaugeMetricFamily("kafka_consumergroup_group_offset", "Last group consumed offset of a partition",
                                   labels=PARTITION_LABELS)
        lag = GaugeMetricFamily("kafka_consumergroup_group_lag", "Group offset lag of a partition",
                                labels=PARTITION_LABELS)
        lag_seconds = GaugeMetricFamily("kafka_consumergroup_group_lag_seconds", "Group time lag of a partition",
                                        labels=PARTITION_LABELS)
        max_lag = GaugeMetricFamily("kafka_consumergroup_group_max_lag", "Max group offset lag",
                                    labels=["cluster_name", "group"])
        max_lag_seconds = GaugeMetricFamily("kafka_consumergroup_group_max_lag_seconds", "Max group time lag",
                                            labels=["cluster_name", "group"])
        sum_lag = GaugeMetricFamily("kafka_consumergroup_group_sum_lag", "Sum of group offset lag",
                                    labels=["cluster_name", "group"])
        topic_sum_lag = GaugeMetricFamily("kafka_consumergroup_group_topic_sum_lag",
                                          "Sum of group offset lag across topic partitions",
                                          labels=["cluster_name", "group", "topic"])
        latest = GaugeMetricFamily("kafka_partition_latest_offset", "Latest offset of a partition",
                                   labels=["cluster_name", "topic", "partition"])
        status = GaugeMetricFamily(
            "contacts_consumergroup_status",
            "Burrow-style status of a consumer group: 1 for its current status (OK, WARN, STALL, STOP, ERR), "
            "0 for the others.",
            labels=["cluster_name", "group", "status"],
        )
        partition_status = GaugeMetricFamily(
            "contacts_consumergroup_partition_status",
            "Burrow-style status of a consumer group's partition: 1 for its current status, 0 for the others.",
            labels=["cluster_name", "group", "topic", "partition", "status"],
        )
        for report in self._monitor.book.report(now=time.time()):
            group = report.group
            for p in report.partitions:
                labels = [cluster, group, p.topic, str(p.partition), *UNKNOWN_MEMBER]
                offset.add_metric(labels, math.nan if p.committed is None else p.committed)
                lag.add_metric(labels, p.lag)
                lag_seconds.add_metric(labels, math.nan if p.lag_seconds is None else p.lag_seconds)
                for each in Status:
                    partition_status.add_metric([cluster, group, p.topic, str(p.partition), each.value],
                                                1.0 if p.status == each else 0.0)
            max_lag.add_metric([cluster, group], report.max_lag)
            max_lag_seconds.add_metric([cluster, group],
                                       math.nan if report.max_lag_seconds is None else report.max_lag_seconds)
            sum_lag.add_metric([cluster, group], report.sum_lag)
            for topic, value in sorted(report.topic_sum_lag().items()):
                topic_sum_lag.add_metric([cluster, group, topic], value)
            for each in Status:
                status.add_metric([cluster, group, each.value], 1.0 if report.status == each else 0.0)
        for (topic, partition), table in sorted(self._monitor.book.tables.items()):
            if table.points:
                latest.add_metric([cluster, topic, str(partition)], table.points[-1].offset)
        up = GaugeMetricFamily("contacts_lag_monitor_up", "1 when the last poll read the broker, else 0",
                               labels=["cluster_name"])
        up.add_metric([cluster], 0.0 if self._monitor.broker_error or not self._monitor.polls else 1.0)
        polled = GaugeMetricFamily("contacts_lag_monitor_last_poll_timestamp_seconds",
                                   "When offsets were last polled (Unix time)", labels=["cluster_name"])
        polled.add_metric([cluster], self._monitor.book.last_poll or 0.0)
        yield from (offset, lag, lag_seconds, max_lag, max_lag_seconds, sum_lag, topic_sum_lag, latest, status,
                    partition_status, up, polled)


def monitor_registry(monitor: Monitor, *, cluster_name: str) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(LagCollector(monitor, cluster_name=cluster_name))  # type: ignore[arg-type]
    ProcessCollector(registry=registry)
    return registry
