"""The lag monitor's rules, pure: a sliding window of offset samples per group and partition, time lag
interpolated from end-offset samples (as kafka-lag-exporter does), and a Burrow-style status.

Statuses, per partition (a group takes its worst partition's):

- ``OK``: no lag now, or no lag at some sample of the window (a consumer that works in bursts is fine), or not
  enough samples yet to judge;
- ``WARN``: the committed offset moves but the lag grew over the window (never shrank, ended higher);
- ``STALL``: lag throughout the window and the committed offset did not move across it;
- ``STOP``: lag, and the committed offset has not moved for longer than ``stop_after`` seconds (the consumer is
  gone, or stuck for good);
- ``ERR``: the group's offsets could not be read.

Unlike Burrow, which reads commit timestamps from ``__consumer_offsets``, the monitor polls: "when the offset
last moved" is the first poll that saw its current value, so STOP is only judged after ``stop_after`` seconds of
watching. Lag never goes negative: an end offset below the committed one (Tansu reports the newest batch's base
offset + 1 as the end) counts as no lag and is flagged ``approximate``."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum


class Status(StrEnum):
    OK = "OK"
    WARN = "WARN"
    STALL = "STALL"
    STOP = "STOP"
    ERR = "ERR"

    @property
    def severity(self) -> int:
        return _SEVERITY[self]

    @property
    def failing(self) -> bool:
        """What ``contacts lag`` exits non-zero for: the group is not consuming."""
        return self in (Status.STALL, Status.STOP)


_SEVERITY = {Status.OK: 0, Status.WARN: 1, Status.STALL: 2, Status.STOP: 3, Status.ERR: 4}


def worst(statuses: Iterable[Status]) -> Status:
    return max(statuses, key=lambda status: status.severity, default=Status.OK)


# --- time lag: kafka-lag-exporter's lookup table -----------------------------------------------------------------


@dataclass(frozen=True)
class Point:
    offset: int
    at: float


@dataclass
class EndOffsetTable:
    """Recent (end offset, time) points of one partition, oldest first, at most ``limit`` of them. A flat line
    (no new messages) is kept as its two ends, so the window covers quiet periods without filling up."""

    limit: int
    points: deque[Point] = field(default_factory=deque)

    def add(self, point: Point) -> None:
        if self.points:
            last = self.points[-1]
            if point.at <= last.at or point.offset < last.offset:
                return  # out of order, or not monotonic (a recreated topic starts over: see ``LagBook``)
            if point.offset == last.offset and len(self.points) > 1 and self.points[-2].offset == point.offset:
                self.points[-1] = point
                return
        if len(self.points) == self.limit:
            self.points.popleft()
        self.points.append(point)

    def time_of(self, offset: int) -> float | None:
        """When the partition's end offset was (or, extrapolated, would have been) ``offset``: interpolated
        between the two points that enclose it, else along the line through the oldest and newest points.
        None when that cannot be told (fewer than two points, or no growth at all)."""
        if len(self.points) < 2:
            return None
        newer = list(self.points)
        left, right = newer[0], newer[-1]
        for index in range(len(newer) - 1, 0, -1):
            if newer[index - 1].offset <= offset <= newer[index].offset:
                left, right = newer[index - 1], newer[index]
                break
        rise = right.offset - left.offset
        if rise == 0:
            return None
        return right.at - (right.offset - offset) * (right.at - left.at) / rise

    def lag_seconds(self, committed: int, *, now: float) -> float | None:
        """How long ago the first message not yet consumed was written: 0 when nothing is left to consume."""
        if not self.points or committed >= self.points[-1].offset:
            return 0.0
        written = self.time_of(committed)
        return None if written is None else max(now - written, 0.0)


# --- the window and the status -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    at: float
    committed: int
    end: int

    @property
    def lag(self) -> int:
        return max(self.end - self.committed, 0)


@dataclass(frozen=True)
class Rules:
    """``window``: samples kept per partition; ``stop_after``: seconds without a commit (while lagging) that
    make a partition STOP."""

    window: int = 6
    stop_after: float = 60.0


@dataclass(frozen=True)
class Verdict:
    status: Status
    reason: str


def evaluate(samples: Sequence[Sample], *, moved_at: float, now: float, rules: Rules) -> Verdict:
    """Burrow's rules over one partition's window (oldest first); ``moved_at``: when the committed offset took
    its current value (or when watching began)."""
    if not samples:
        return Verdict(Status.OK, "no samples yet")
    current = samples[-1]
    if current.lag == 0:
        return Verdict(Status.OK, "no lag")
    if any(sample.lag == 0 for sample in samples):
        return Verdict(Status.OK, "lag was 0 within the window")
    still = now - moved_at
    if still > rules.stop_after:
        return Verdict(Status.STOP, f"no commit for {still:.0f} s while {current.lag} messages wait")
    if len(samples) < 2:
        return Verdict(Status.OK, "one sample: too early to judge")
    if all(sample.committed == current.committed for sample in samples):
        span = current.at - samples[0].at
        return Verdict(Status.STALL, f"committed offset unchanged for {span:.0f} s with lag > 0")
    lags = [sample.lag for sample in samples]
    if all(later >= earlier for earlier, later in zip(lags, lags[1:], strict=False)) and lags[-1] > lags[0]:
        return Verdict(Status.WARN, f"consuming, but lag grew from {lags[0]} to {lags[-1]}")
    return Verdict(Status.OK, "consuming")


# --- everything the monitor knows ------------------------------------------------------------------------------

TopicPartition = tuple[str, int]


@dataclass(frozen=True)
class GroupRead:
    """One poll of one group: its committed offsets (None where it never committed), or why they could not be
    read."""

    committed: Mapping[TopicPartition, int | None] = field(default_factory=dict)
    error: str | None = None


@dataclass(frozen=True)
class Snapshot:
    """One poll: when, the partitions' earliest and end offsets, and each group's read."""

    at: float
    ends: Mapping[TopicPartition, int]
    earliest: Mapping[TopicPartition, int]
    groups: Mapping[str, GroupRead]
    error: str | None = None


@dataclass(frozen=True)
class PartitionReport:
    topic: str
    partition: int
    committed: int | None
    end: int
    lag: int
    lag_seconds: float | None
    status: Status
    reason: str
    approximate: bool
    committed_moved_at: float


@dataclass(frozen=True)
class GroupReport:
    group: str
    service: str | None
    status: Status
    partitions: tuple[PartitionReport, ...]
    error: str | None
    polled_at: float | None

    @property
    def sum_lag(self) -> int:
        return sum(partition.lag for partition in self.partitions)

    @property
    def max_lag(self) -> int:
        return max((partition.lag for partition in self.partitions), default=0)

    @property
    def max_lag_seconds(self) -> float | None:
        """The largest known time lag; None when no partition's could be estimated yet."""
        return max((p.lag_seconds for p in self.partitions if p.lag_seconds is not None), default=None)

    def topic_sum_lag(self) -> dict[str, int]:
        sums: dict[str, int] = {}
        for partition in self.partitions:
            sums[partition.topic] = sums.get(partition.topic, 0) + partition.lag
        return sums


@dataclass
class _Watched:
    samples: deque[Sample]
    committed: int | None
    moved_at: float


@dataclass
class LagBook:
    """The sliding windows of every watched group and partition, and an end-offset table per partition."""

    rules: Rules = field(default_factory=Rules)
    table_size: int = 60
    services: Mapping[str, str] = field(default_factory=dict)
    """group -> service, for the reports."""
    tables: dict[TopicPartition, EndOffsetTable] = field(default_factory=dict)
    watched: dict[tuple[str, TopicPartition], _Watched] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    last_poll: float | None = None

    def record(self, snapshot: Snapshot) -> None:
        self.last_poll = snapshot.at
        for tp, end in snapshot.ends.items():
            table = self.tables.setdefault(tp, EndOffsetTable(self.table_size))
            if table.points and end < table.points[-1].offset:  # topic recreated (or a broker's quirk): start over
                table.points.clear()
            table.add(Point(end, snapshot.at))
        for group, read in snapshot.groups.items():
            error = read.error or snapshot.error
            if error is not None:
                self.errors[group] = error
                continue
            self.errors.pop(group, None)
            for tp, committed in read.committed.items():
                if tp not in snapshot.ends:
                    continue
                start = snapshot.earliest.get(tp, 0)
                effective = committed if committed is not None else start
                key = (group, tp)
                watched = self.watched.get(key)
                if watched is None:
                    watched = self.watched[key] = _Watched(deque(maxlen=self.rules.window), committed, snapshot.at)
                elif committed != watched.committed:
                    watched.committed, watched.moved_at = committed, snapshot.at
                watched.samples.append(Sample(at=snapshot.at, committed=effective, end=snapshot.ends[tp]))

    def report(self, *, now: float) -> list[GroupReport]:
        groups = sorted({group for group, _ in self.watched} | set(self.errors) | set(self.services))
        return [self.group_report(group, now=now) for group in groups]

    def group_report(self, group: str, *, now: float) -> GroupReport:
        partitions = []
        for (owner, tp), watched in sorted(self.watched.items()):
            if owner != group or not watched.samples:
                continue
            current = watched.samples[-1]
            verdict = evaluate(watched.samples, moved_at=watched.moved_at, now=now, rules=self.rules)
            table = self.tables.get(tp)
            partitions.append(
                PartitionReport(
                    topic=tp[0],
                    partition=tp[1],
                    committed=watched.committed,
                    end=current.end,
                    lag=current.lag,
                    lag_seconds=table.lag_seconds(current.committed, now=current.at) if table else None,
                    status=verdict.status,
                    reason=verdict.reason,
                    approximate=current.end < current.committed,
                    committed_moved_at=watched.moved_at,
                )
            )
        error = self.errors.get(group)
        status = Status.ERR if error else worst(partition.status for partition in partitions)
        return GroupReport(
            group=group,
            service=self.services.get(group),
            status=status,
            partitions=tuple(partitions),
            error=error,
            polled_at=self.last_poll,
        )
