"""A batch's span: a child of its records' trace when they share one (so its log lines carry that trace id even
when no exporter is configured), linked to each trace otherwise; the traceparent found where the envelope puts it."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from shared.tracing import add_trace_id, batch_span, batch_traceparents, current_traceparent, trace_id_of

IMPORT_A = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
IMPORT_B = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def record(traceparent: str | None) -> Any:
    headers = [("ce_id", b"1"), ("ce_type", b"t")]
    return SimpleNamespace(headers=headers + ([("traceparent", traceparent.encode())] if traceparent else []))


def test_the_distinct_traceparents_of_a_batch_are_read_from_each_records_last_header() -> None:
    records = [record(IMPORT_A), record(None), record(IMPORT_A), record(IMPORT_B), SimpleNamespace(headers=None)]
    assert batch_traceparents(records) == [IMPORT_A, IMPORT_B]
    assert batch_traceparents([record(None)]) == []


def test_a_batch_of_one_imports_rows_logs_under_that_imports_trace_id() -> None:
    with batch_span("on_rows", [IMPORT_A, IMPORT_A], **{"messaging.batch.message_count": 2}):
        assert trace_id_of(current_traceparent()) == "0af7651916cd43dd8448eb211c80319c"
        assert add_trace_id(None, "info", {"event": "x"})["trace_id"] == "0af7651916cd43dd8448eb211c80319c"
    assert current_traceparent() is None and "trace_id" not in add_trace_id(None, "info", {})


def test_a_batch_of_two_imports_is_not_logged_under_either() -> None:
    with batch_span("on_rows", [IMPORT_A, IMPORT_B, None]):
        trace_id = trace_id_of(current_traceparent())
        assert trace_id not in {trace_id_of(IMPORT_A), trace_id_of(IMPORT_B)}
