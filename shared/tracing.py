"""Traces: OpenTelemetry, exported by OTLP when the standard ``OTEL_*`` variables ask for it, off otherwise.

One trace per import, from the upload to the profile snapshots: its W3C ``traceparent`` travels in a header of
every message the import causes (row events, contact events, answers, snapshots), copied from cause to effect. A
batch is a span of its own, linked to the traces of the messages it holds (a batch mixes imports), so no span is
ever built per message on the bulk path. Log lines carry the trace id of the span they are written in."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping, MutableMapping
from contextlib import contextmanager
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import Link, NonRecordingSpan, SpanContext, TraceFlags
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

TRACEPARENT = "traceparent"
MAX_LINKS = 32
_propagator = TraceContextTextMapPropagator()


def configure_tracing(service: str, environ: Mapping[str, str] = os.environ) -> bool:
    """Install an SDK tracer provider exporting by OTLP when ``OTEL_TRACES_EXPORTER`` is ``otlp`` or an OTLP
    endpoint is set (``OTEL_EXPORTER_OTLP_ENDPOINT`` / ``..._TRACES_ENDPOINT``); the exporter reads the other
    ``OTEL_*`` variables itself. Returns whether traces are exported (without, spans cost nearly nothing)."""
    exporter_name = environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    endpoint = environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    if exporter_name == "none" or not (exporter_name == "otlp" or endpoint):
        return False
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": environ.get("OTEL_SERVICE_NAME", service)}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    return True


def tracer(name: str) -> trace.Tracer:
    return trace.get_tracer(name)


def current_traceparent() -> str | None:
    """The ``traceparent`` of the current span, to put on what it causes; None outside a valid span."""
    carrier: dict[str, str] = {}
    _propagator.inject(carrier)
    return carrier.get(TRACEPARENT)


def new_traceparent() -> str:
    """A ``traceparent`` that starts a trace: the current span's when there is one (recording or not), else a
    fresh random one, so a trace id exists from the upload on even when nothing is exported."""
    existing = current_traceparent()
    if existing is not None:
        return existing
    trace_id = int.from_bytes(os.urandom(16), "big") or 1
    span_id = int.from_bytes(os.urandom(8), "big") or 1
    return f"00-{trace_id:032x}-{span_id:016x}-01"


def header_of(headers: Iterable[tuple[str, bytes]] | None) -> str | None:
    for name, value in headers or ():
        if name == TRACEPARENT and value:
            return value.decode(errors="replace")
    return None


def traceparents_by_id(records: Iterable[Any]) -> dict[str, str]:
    """``ce_id`` -> ``traceparent`` of the records (Kafka consumer records) that carry both: what a record causes
    later in the batch's processing (a profile snapshot, named by its cause's id) carries its cause's trace."""
    found: dict[str, str] = {}
    for record in records:
        message_id = traceparent = None
        for name, value in record.headers or ():
            if name == "ce_id":
                message_id = value
            elif name == TRACEPARENT:
                traceparent = value
        if message_id and traceparent:
            found[message_id.decode(errors="replace")] = traceparent.decode(errors="replace")
    return found


def span_context_of(traceparent: str) -> SpanContext | None:
    parts = traceparent.split("-")
    if len(parts) != 4 or len(parts[1]) != 32 or len(parts[2]) != 16:
        return None
    try:
        return SpanContext(trace_id=int(parts[1], 16), span_id=int(parts[2], 16), is_remote=True,
                           trace_flags=TraceFlags(int(parts[3], 16) & 0xFF))
    except ValueError:
        return None


def trace_id_of(traceparent: str | None) -> str | None:
    return traceparent.split("-")[1] if traceparent and traceparent.count("-") == 3 else None


def traceparents_by_key(records: Iterable[Any]) -> dict[str, str]:
    """Record key (decoded) -> the ``traceparent`` of the last record with that key carrying one in its last
    header (where ``shared.envelope`` puts it): on the contact log, a contact's latest event's trace."""
    found: dict[str, str] = {}
    for record in records:
        headers = record.headers
        if record.key is not None and headers and headers[-1][0] == TRACEPARENT:
            found[record.key.decode(errors="replace")] = headers[-1][1].decode(errors="replace")
    return found


def batch_traceparents(records: Iterable[Any]) -> list[str]:
    """The distinct ``traceparent`` headers of a batch's records (at most ``MAX_LINKS``). Only each record's last
    header is looked at, where ``shared.envelope`` puts it: a look per record costs ~0.1 µs, a scan ~0.7."""
    found: dict[bytes, None] = {}
    for record in records:
        headers = record.headers
        if headers and headers[-1][0] == TRACEPARENT:
            found[headers[-1][1]] = None
            if len(found) == MAX_LINKS:
                break
    return [value.decode(errors="replace") for value in found]


@contextmanager
def batch_span(name: str, traceparents: Iterable[str | None], **attributes: Any) -> Iterator[trace.Span]:
    """A span for one batch: a child of its messages' trace when they all belong to one (an import's rows), so
    its log lines carry that trace id even when nothing is exported; else linked to (at most ``MAX_LINKS`` of)
    the distinct traces its messages belong to."""
    contexts = []
    for traceparent in dict.fromkeys(t for t in traceparents if t):
        context = span_context_of(traceparent)
        if context is not None and context.is_valid:
            contexts.append(context)
        if len(contexts) == MAX_LINKS:
            break
    tracer_ = tracer("kagibag-contacts")
    if len(contexts) == 1:
        parent = trace.set_span_in_context(NonRecordingSpan(contexts[0]))
        with tracer_.start_as_current_span(name, context=parent, attributes=attributes) as span:
            yield span
        return
    links = [Link(context) for context in contexts]
    with tracer_.start_as_current_span(name, links=links, attributes=attributes) as span:
        yield span


def add_trace_id(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: the trace id of the current span, when there is one."""
    context = trace.get_current_span().get_span_context()
    if context.is_valid and "trace_id" not in event:
        event["trace_id"] = f"{context.trace_id:032x}"
    return event
