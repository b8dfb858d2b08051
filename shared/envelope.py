"""The CloudEvents 1.0 envelope in Kafka binary mode: attributes travel as ``ce_*`` headers, the event as JSON."""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict, Field

SPEC_VERSION = "1.0"
CONTENT_TYPE = "application/json"

Headers = list[tuple[str, bytes]]


class MissingHeaderError(ValueError):
    """A required CloudEvents header is absent."""


def _now() -> datetime:
    return datetime.now(UTC)


class Envelope(BaseModel):
    """Event metadata. ``correlation_id`` ties everything caused by one request or import together;
    ``causation_id`` is the id of the message that directly caused this one."""

    model_config = ConfigDict(frozen=True)

    id: str = Field(default_factory=lambda: str(uuid.uuid4()))
    type: str
    source: str
    time: datetime = Field(default_factory=_now)
    subject: str | None = None
    correlation_id: str | None = None
    causation_id: str | None = None

    def caused(self, *, type: str, source: str, subject: str | None, id: str | None = None) -> Envelope:
        """The envelope of an event caused by this one: same correlation, causation = this id."""
        return Envelope(
            id=id or str(uuid.uuid4()),
            type=type,
            source=source,
            subject=subject,
            correlation_id=self.correlation_id or self.id,
            causation_id=self.id,
        )

    def to_headers(self) -> Headers:
        headers: Headers = [
            ("ce_specversion", SPEC_VERSION.encode()),
            ("ce_id", self.id.encode()),
            ("ce_type", self.type.encode()),
            ("ce_source", self.source.encode()),
            ("ce_time", self.time.isoformat().encode()),
            ("content-type", CONTENT_TYPE.encode()),
        ]
        if self.subject is not None:
            headers.append(("ce_subject", self.subject.encode()))
        if self.correlation_id is not None:
            headers.append(("ce_correlationid", self.correlation_id.encode()))
        if self.causation_id is not None:
            headers.append(("ce_causationid", self.causation_id.encode()))
        return headers

    @classmethod
    def from_headers(cls, headers: Headers | tuple[tuple[str, bytes], ...]) -> Envelope:
        values = {key: value.decode("utf-8", errors="replace") for key, value in headers if value is not None}
        for required in ("ce_id", "ce_type", "ce_source"):
            if required not in values:
                raise MissingHeaderError(f"missing header {required}")
        return cls(
            id=values["ce_id"],
            type=values["ce_type"],
            source=values["ce_source"],
            time=datetime.fromisoformat(values["ce_time"]) if "ce_time" in values else _now(),
            subject=values.get("ce_subject"),
            correlation_id=values.get("ce_correlationid"),
            causation_id=values.get("ce_causationid"),
        )


def cloud_event_headers(
    *,
    id: str,
    type: str,
    source: str,
    time: str,
    subject: str | None = None,
    correlation_id: str | None = None,
    causation_id: str | None = None,
) -> Headers:
    """The same headers as ``Envelope.to_headers`` without building an ``Envelope``: for the bulk paths, where
    the messages of a batch share everything but their id and subject. ``time`` is ISO 8601 text."""
    headers: Headers = [
        ("ce_specversion", b"1.0"),
        ("ce_id", id.encode()),
        ("ce_type", type.encode()),
        ("ce_source", source.encode()),
        ("ce_time", time.encode()),
        ("content-type", b"application/json"),
    ]
    if subject is not None:
        headers.append(("ce_subject", subject.encode()))
    if correlation_id is not None:
        headers.append(("ce_correlationid", correlation_id.encode()))
    if causation_id is not None:
        headers.append(("ce_causationid", causation_id.encode()))
    return headers


class HeaderTemplate:
    """CloudEvents headers for many messages of one type and source (a relay's batch): the constant headers are
    encoded once; per message only its id, time, subject, correlation and causation are."""

    def __init__(self, *, type: str, source: str) -> None:
        self._head = [("ce_specversion", b"1.0")]
        self._type = ("ce_type", type.encode())
        self._tail = [("ce_source", source.encode()), ("content-type", CONTENT_TYPE.encode())]
        self._times: dict[datetime, tuple[str, bytes]] = {}

    def time(self, at: datetime) -> tuple[str, bytes]:
        header = self._times.get(at)
        if header is None:
            if len(self._times) > 1000:
                self._times.clear()
            header = self._times[at] = ("ce_time", at.isoformat().encode())
        return header

    def build(self, *, id: str, time: datetime, subject: str | None = None, correlation_id: str | None = None,
              causation_id: str | None = None, traceparent: str | None = None) -> Headers:
        headers = [*self._head, ("ce_id", id.encode()), self._type, *self._tail, self.time(time)]
        if subject is not None:
            headers.append(("ce_subject", subject.encode()))
        if correlation_id is not None:
            headers.append(("ce_correlationid", correlation_id.encode()))
        if causation_id is not None:
            headers.append(("ce_causationid", causation_id.encode()))
        if traceparent is not None:
            headers.append(("traceparent", traceparent.encode()))
        return headers


DERIVED_ID_NAMESPACE = uuid.UUID("0c9a7c52-3f0e-4bb4-8a55-1d2a3c4b5e6f")


def derived_id(*parts: object, namespace: uuid.UUID = DERIVED_ID_NAMESPACE) -> str:
    """Ids of what a message causes are derived from it, so a retried batch produces identical messages.
    Equal to ``str(uuid.uuid5(namespace, "/".join(parts)))``, computed without building ``UUID`` objects."""
    digest = bytearray(hashlib.sha1(namespace.bytes + "/".join(map(str, parts)).encode()).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = digest.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
