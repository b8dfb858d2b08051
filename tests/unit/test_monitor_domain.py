"""The lag monitor's rules: time lag from end-offset samples, Burrow-style statuses, lag never negative."""

from __future__ import annotations

from collections.abc import Sequence

from hypothesis import given
from hypothesis import strategies as st

from services.monitor.domain import (
    EndOffsetTable,
    GroupRead,
    LagBook,
    Point,
    Rules,
    Sample,
    Snapshot,
    Status,
    evaluate,
)

TP = ("contacts.import-rows.v1", 0)
RULES = Rules(window=4, stop_after=60.0)


def book_after(timeline: Sequence[tuple[float, int, int | None]], *, rules: Rules = RULES) -> LagBook:
    """A book fed ``(time, end offset, committed offset)`` polls of one group on one partition."""
    book = LagBook(rules=rules, services={"identity": "identity"})
    for at, end, committed in timeline:
        book.record(Snapshot(at=at, ends={TP: end}, earliest={TP: 0},
                             groups={"identity": GroupRead(committed={TP: committed})}))
    return book


def status_after(timeline: Sequence[tuple[float, int, int | None]], *, now: float | None = None) -> Status:
    book = book_after(timeline)
    report = book.group_report("identity", now=now if now is not None else timeline[-1][0])
    return report.status


# --- time lag ---------------------------------------------------------------------------------------------------


def test_time_lag_is_interpolated_between_the_end_offsets_that_enclose_the_committed_offset() -> None:
    table = EndOffsetTable(limit=10)
    for offset, at in [(0, 100.0), (100, 110.0), (300, 120.0)]:
        table.add(Point(offset, at))

    assert table.time_of(50) == 105.0
    assert table.time_of(200) == 115.0
    assert table.lag_seconds(200, now=130.0) == 15.0


def test_time_lag_is_extrapolated_along_the_window_when_the_offset_is_older_than_every_point() -> None:
    table = EndOffsetTable(limit=10)
    table.add(Point(1000, 100.0))
    table.add(Point(2000, 110.0))

    assert table.time_of(500) == 95.0  # 100 messages/s, so offset 500 was written 5 s before the first point


def test_no_lag_is_zero_seconds_and_too_few_points_is_unknown() -> None:
    table = EndOffsetTable(limit=10)
    table.add(Point(10, 100.0))

    assert table.lag_seconds(10, now=500.0) == 0.0
    assert table.lag_seconds(12, now=500.0) == 0.0  # committed past a (Tansu) low end: nothing waits
    assert table.lag_seconds(5, now=500.0) is None


def test_a_flat_line_keeps_its_two_ends_so_the_window_spans_quiet_periods() -> None:
    table = EndOffsetTable(limit=3)
    for at in range(10):
        table.add(Point(100, float(at)))

    assert [(p.offset, p.at) for p in table.points] == [(100, 0.0), (100, 9.0)]


def test_out_of_order_and_shrinking_points_are_ignored() -> None:
    table = EndOffsetTable(limit=5)
    table.add(Point(100, 10.0))
    table.add(Point(90, 11.0))
    table.add(Point(120, 9.0))

    assert [(p.offset, p.at) for p in table.points] == [(100, 10.0)]


@given(
    st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 10_000)), min_size=1, max_size=30),
)
def test_lag_is_never_negative_whatever_the_broker_reports(offsets: list[tuple[int, int]]) -> None:
    timeline = [(float(i), end, committed) for i, (end, committed) in enumerate(offsets)]
    report = book_after(timeline).group_report("identity", now=float(len(offsets)))

    (partition,) = report.partitions
    assert partition.lag >= 0
    assert partition.lag_seconds is None or partition.lag_seconds >= 0
    assert partition.approximate == (offsets[-1][0] < offsets[-1][1])
    assert report.sum_lag == report.max_lag == partition.lag


# --- statuses -----------------------------------------------------------------------------------------------------


def test_no_lag_is_ok() -> None:
    assert status_after([(0, 10, 10), (5, 20, 20), (10, 30, 30), (15, 30, 30)]) is Status.OK


def test_lag_at_some_point_of_the_window_being_zero_is_ok() -> None:
    assert status_after([(0, 10, 10), (5, 20, 10), (10, 30, 10)]) is Status.OK


def test_a_committed_offset_that_does_not_move_while_messages_wait_is_stall() -> None:
    assert status_after([(0, 20, 10), (5, 30, 10), (10, 40, 10), (15, 50, 10)]) is Status.STALL


def test_no_commit_for_longer_than_the_threshold_while_lagging_is_stop() -> None:
    timeline = [(float(t), 20 + t, 10) for t in range(0, 70, 5)]

    assert status_after(timeline) is Status.STOP
    assert status_after(timeline[:4]) is Status.STALL  # the same consumer 15 s in: stalled, not yet stopped


def test_stop_is_judged_against_now_even_without_new_polls() -> None:
    timeline = [(0, 20, 10), (5, 20, 10)]

    assert status_after(timeline, now=61) is Status.STOP


def test_a_consumer_that_moves_but_falls_further_behind_is_warn() -> None:
    assert status_after([(0, 100, 10), (5, 200, 20), (10, 300, 30), (15, 400, 40)]) is Status.WARN


def test_a_consumer_that_moves_and_catches_up_is_ok() -> None:
    assert status_after([(0, 400, 10), (5, 400, 100), (10, 400, 200), (15, 410, 300)]) is Status.OK


def test_one_sample_with_lag_is_too_early_to_judge() -> None:
    assert status_after([(0, 100, 10)]) is Status.OK


def test_a_partition_the_group_never_committed_counts_from_the_log_start() -> None:
    book = book_after([(0, 50, None), (5, 60, None), (10, 70, None)])
    (partition,) = book.group_report("identity", now=10).partitions

    assert (partition.committed, partition.lag, partition.status) == (None, 70, Status.STALL)


def test_an_unreadable_group_is_err_and_the_group_takes_its_worst_partition() -> None:
    other = ("contacts.interactions.v1", 3)
    book = LagBook(rules=RULES)
    for at in (0.0, 5.0, 10.0):
        book.record(Snapshot(at=at, ends={TP: 100, other: 5}, earliest={},
                             groups={"g": GroupRead(committed={TP: 100, other: 1})}))
    report = book.group_report("g", now=10)
    assert [(p.topic, p.status) for p in report.partitions] == [(TP[0], Status.OK), (other[0], Status.STALL)]
    assert report.status is Status.STALL

    book.record(Snapshot(at=15.0, ends={}, earliest={}, groups={"g": GroupRead()}, error="broker: timed out"))
    assert book.group_report("g", now=15).status is Status.ERR
    assert book.group_report("g", now=15).error == "broker: timed out"


def test_evaluate_states_its_reason() -> None:
    samples = [Sample(at=0, committed=5, end=9), Sample(at=10, committed=5, end=12)]
    verdict = evaluate(samples, moved_at=0, now=10, rules=RULES)

    assert verdict.status is Status.STALL
    assert "unchanged for 10 s" in verdict.reason
