"""What the operator commands and the metric helpers decide, without a broker: ``contacts lag``'s exit codes and
table, the dead-letter counts, and the batch timer's failure count."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from rich.console import Console

from ops.dead_letters import DeadLetter, count, redrive_headers
from ops.lag_command import EXIT_FAILING, EXIT_UNREADABLE, exit_code, lag_table, short_topic
from shared import metrics


def body(*statuses: str) -> dict[str, Any]:
    return {
        "cluster_name": "contacts",
        "polled_at": "2026-12-02T05:55:13Z",
        "groups": [
            {"group": f"g{i}", "service": None, "status": status, "error": None, "sum_lag": 5, "max_lag": 5,
             "max_lag_seconds": 75.0, "partitions": [
                 {"topic": "t1.contacts.import-rows.v1", "partition": 3, "committed_offset": 10, "end_offset": 15,
                  "lag": 5, "lag_seconds": 75.0, "status": status, "reason": "why", "approximate": False},
             ]}
            for i, status in enumerate(statuses)
        ],
    }


@pytest.mark.parametrize(
    ("statuses", "code"),
    [(("OK", "WARN"), 0), (("OK", "STALL"), EXIT_FAILING), (("STOP",), EXIT_FAILING), (("OK", "ERR"), EXIT_UNREADABLE),
     (("ERR", "STOP"), EXIT_FAILING), ((), 0)],
)
def test_lag_exits_non_zero_when_a_group_is_not_consuming_or_unreadable(statuses: tuple[str, ...], code: int) -> None:
    assert exit_code(body(*statuses)) == code


def test_the_lag_table_lists_groups_and_their_lagging_partitions() -> None:
    console = Console(width=160, record=True)
    console.print(lag_table(body("STALL"), partitions=False))
    text = console.export_text()

    assert "g0" in text and "STALL" in text and "import-rows" in text and "1m15s" in text


def test_topic_names_are_shortened_for_the_table() -> None:
    assert short_topic("tabc.contacts.import-rows.v1") == "import-rows"
    assert short_topic("contacts.identity.dead-letters.v1") == "identity.dead-letters"


def letter(offset: int, code: str, topic: str = "contacts.interactions.v1") -> DeadLetter:
    return DeadLetter(
        topic="contacts.identity.dead-letters.v1", partition=0, offset=offset, timestamp=datetime.now(UTC),
        key=b"k", value=b"v", headers=(("ce_id", b"e1"),),
        dlq={"dlq_error_code": code, "dlq_original_topic": topic},
    )


def test_dead_letters_are_counted_by_topic_and_error_code_with_the_redriven_ones() -> None:
    counts = count([letter(0, "INVALID_PAYLOAD"), letter(1, "INVALID_PAYLOAD"), letter(2, "BAD_ENVELOPE")],
                   {("contacts.identity.dead-letters.v1", 0, 1)})

    assert [(c.error_code, c.count, c.redriven) for c in counts] == [("BAD_ENVELOPE", 1, 0), ("INVALID_PAYLOAD", 2, 1)]


def test_a_redriven_message_keeps_its_headers_and_says_where_it_lay() -> None:
    at = datetime(2026, 12, 2, tzinfo=UTC)
    headers = redrive_headers(letter(7, "X"), at=at)

    assert headers == [("ce_id", b"e1"), ("dlq_redriven_from", b"contacts.identity.dead-letters.v1:0:7"),
                       ("dlq_redriven_at", at.isoformat().encode())]


def test_the_batch_timer_counts_records_durations_and_failures() -> None:
    def value(name: str, **labels: str) -> float:
        return metrics.REGISTRY.get_sample_value(name, labels) or 0.0

    labels = {"service": "unit", "handler": "on_test"}
    before = (value("contacts_messages_consumed_total", **labels), value("contacts_batches_failed_total", **labels),
              value("contacts_batch_duration_seconds_count", **labels))
    with metrics.batch("unit", "on_test", records=7):
        pass
    with pytest.raises(RuntimeError), metrics.batch("unit", "on_test", records=3):
        raise RuntimeError("the transaction failed")

    assert value("contacts_messages_consumed_total", **labels) == before[0] + 7  # the failed batch is not counted
    assert value("contacts_batches_failed_total", **labels) == before[1] + 1
    assert value("contacts_batch_duration_seconds_count", **labels) == before[2] + 2
