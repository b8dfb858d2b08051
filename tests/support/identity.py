"""identity as tests drive it: a process, the row events ingest would publish, people in many spellings, and what
identity stored and answered (queries and the checks every identity test makes: one contact per person, streams
gapless, the stored state the fold of the event store)."""

from __future__ import annotations

import contextlib
import json
import random
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import msgspec
import psycopg
from faststream.kafka import KafkaBroker

from ops.local_postgres import libpq_url
from services.identity.domain import rebuild
from services.identity.handlers import register
from services.identity.publishing import EVENT_COLUMNS, ContactEventMessages
from services.identity.service import IdentityTopics
from shared import wire
from shared.codec import encode
from shared.consumer import Delivery
from shared.db import create_engine
from shared.envelope import Envelope
from shared.events import CONTACT_FIELDS, ImportRowReceivedV1, ImportRowsProcessedV1, InteractionEvent, ProcessedRow
from shared.lifecycle import relay_channel
from shared.producer import OutgoingMessage
from shared.topics import (
    ATTENDEE_STATEMENTS,
    BULK_IMPORT_ROWS,
    CONTACT_EVENTS,
    IMPORT_ROW_OUTCOMES,
    IMPORT_ROWS,
    INTERACTIONS,
    dead_letter_topic,
)
from tests.support.isolation import Isolation
from tests.support.kafka import Consumed, consume_until
from tests.support.memory_broker import in_memory
from tests.support.processes import ServiceProcess


def identity_process(isolation: Isolation, tmp_path: Path, name: str = "identity") -> ServiceProcess:
    """identity in ``isolation``; another ``name`` is a further instance in the same groups, on its own port."""
    return ServiceProcess.for_isolation(isolation, "identity", log_dir=tmp_path, name=name)


def row_messages(isolation: Isolation, import_id: str, emails: list[str]) -> list[OutgoingMessage]:
    """What ingest publishes: one event per row, ids derived from (import, row) so a re-publish is a duplicate."""
    messages = []
    for number, email in enumerate(emails, start=1):
        row = ImportRowReceivedV1(import_id=import_id, organizer_id="org-1", row_number=number, email=email,
                                  first_name=f"name-{number % 7}")
        envelope = Envelope(id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"{import_id}/{number}")), type=row.TYPE,
                            source="tests", correlation_id=import_id)
        messages.append(encode(row, envelope, topic=isolation.topic(IMPORT_ROWS), key=email.strip().lower()))
    return messages


def spellings(people: int, rows: int, seed: int = 7) -> list[str]:
    """``rows`` addresses for ``people`` persons, each written in varying case and surrounding whitespace."""
    rng = random.Random(seed)
    out = []
    for _ in range(rows):
        local = f"person{rng.randrange(people)}"
        email = "".join(ch.upper() if rng.random() < 0.3 else ch for ch in f"{local}@example.com")
        out.append(rng.choice(["", " ", "\t"]) + email + rng.choice(["", " ", "  "]))
    return out


def applied_per_start(process: ServiceProcess) -> list[int]:
    """Rows the process applied, per start, read from its ``identity.resolved`` log lines."""
    totals: list[int] = []
    for line in process.log_path.read_text().splitlines():
        if line.startswith("--- start"):
            totals.append(0)
        elif '"identity.resolved"' in line:
            totals[-1] += json.loads(line)["rows"]
    return totals


def query(isolation: Isolation, sql: str) -> list[tuple]:  # type: ignore[type-arg]
    with psycopg.connect(libpq_url(isolation.database_url)) as conn:
        conn.execute(f'SET search_path TO "{isolation.schema("identity")}"')
        return conn.execute(sql).fetchall()


def assert_one_contact_per_person_with_gapless_streams(isolation: Isolation, emails: list[str]) -> None:
    distinct = {e.strip().lower() for e in emails}
    assert sorted(r[0] for r in query(isolation, "SELECT email FROM contacts")) == sorted(distinct)
    assert_gapless_streams(isolation)
    # every row applied exactly once: per contact, one event per row that named it
    per_contact = dict(query(isolation, "SELECT c.email, count(*) FROM contact_events e "
                                        "JOIN contacts c USING (contact_id) GROUP BY c.email"))
    assert per_contact == dict(Counter(e.strip().lower() for e in emails))
    assert_state_is_the_fold_of_the_event_store(isolation)


def assert_gapless_streams(isolation: Isolation) -> None:
    """Every contact's versions run 1, 2, 3, ... with neither a gap nor a repeat."""
    gaps = query(isolation, "SELECT contact_id FROM contact_events GROUP BY contact_id HAVING min(version) <> 1 "
                            "OR max(version) <> count(*) OR count(DISTINCT version) <> count(*)")
    assert gaps == [], f"{len(gaps)} contacts with a gap or a repeated version, e.g. {gaps[:3]}"


def contact_streams(isolation: Isolation) -> dict[str, list[wire.Wire]]:
    """Every contact's events from identity's event store, in version order, as wire structs."""
    streams: dict[str, list[wire.Wire]] = {}
    for contact_id, event_type, payload in query(
        isolation, "SELECT contact_id, type, payload FROM contact_events ORDER BY contact_id, version"
    ):
        streams.setdefault(str(contact_id), []).append(msgspec.convert(payload, wire.STRUCT_OF_TYPE[event_type]))
    return streams


def assert_state_is_the_fold_of_the_event_store(isolation: Isolation) -> None:
    """Every contact row and every organizer layer equals what folding the contact's stream from the event store
    gives (the log is the truth)."""
    streams = contact_streams(isolation)
    stored = {
        str(row[0]): row[1:]
        for row in query(isolation, "SELECT contact_id, email, email_original, version, first_name, last_name, "
                                    "company, title, phone, bio, social_links, user_account_id FROM contacts")
    }
    layers: dict[str, dict[str, tuple]] = {}  # type: ignore[type-arg]
    for contact_id, organizer_id, *values in query(
        isolation, "SELECT contact_id, organizer_id, email_original, first_name, last_name, company, title, phone "
                   "FROM contact_layers"
    ):
        layers.setdefault(str(contact_id), {})[organizer_id] = tuple(values)
    assert set(streams) == set(stored)
    for contact_id, events in streams.items():
        folded = rebuild(events)  # type: ignore[arg-type]
        assert folded is not None
        person = folded.person
        assert stored[contact_id] == (
            folded.email, person.email_original, folded.version,
            *(person.fields.get(name) for name in CONTACT_FIELDS),
            person.bio, person.social_links, person.user_account_id,
        ), contact_id
        assert layers.get(contact_id, {}) == {
            organizer: (layer.email_original, *(layer.fields.get(name) for name in CONTACT_FIELDS))
            for organizer, layer in folded.organizers.items()
        }, contact_id


def rows_of(consumed: list[Consumed], import_id: str) -> list[ProcessedRow]:
    return [row for c in consumed if isinstance(c.event, ImportRowsProcessedV1) and c.event.import_id == import_id
            for row in c.event.rows]


async def outcomes_for(isolation: Isolation, import_id: str, rows: int, within: float = 90) -> dict[int, set[str]]:
    """Every outcome identity reported per row, as ``outcome:contact_id`` (a re-sent one must be identical)."""
    seen = await consume_until(
        isolation.kafka_bootstrap, isolation.topic(IMPORT_ROW_OUTCOMES),
        lambda got: len({row.row_number for row in rows_of(got, import_id)}) >= rows,
        accepted=(ImportRowsProcessedV1,), timeout=within,
    )
    by_row: dict[int, set[str]] = {}
    for row in rows_of(seen, import_id):
        by_row.setdefault(row.row_number, set()).add(f"{row.outcome}:{row.contact_id}")
    return by_row


def interaction_message(isolation: Isolation, event: InteractionEvent, *, id: str | None = None,
                        source: str = "kagibag-platform/tickets") -> OutgoingMessage:
    """What a platform team publishes: keyed by the normalized email, in a CloudEvents envelope."""
    envelope = Envelope(id=id or str(uuid.uuid4()), type=event.TYPE, source=source)
    return encode(event, envelope, topic=isolation.topic(INTERACTIONS), key=event.email.strip().lower())


def stream(isolation: Isolation, email: str) -> list[tuple[int, str, dict]]:  # type: ignore[type-arg]
    """``(version, type, payload)`` of the contact's events, from identity's event store."""
    return [
        (version, type_, payload)
        for version, type_, payload in query(
            isolation,
            "SELECT e.version, e.type, e.payload FROM contact_events e JOIN contacts c USING (contact_id) "
            f"WHERE c.email = '{email}' ORDER BY e.version",
        )
    ]


def recorded(isolation: Isolation, email: str) -> list[dict]:  # type: ignore[type-arg]
    return [payload for _, type_, payload in stream(isolation, email) if type_.endswith("interaction.recorded.v1")]




@contextlib.asynccontextmanager
async def identity_in_memory(isolation: Isolation, *, batch_size: int = 500) -> AsyncIterator[KafkaBroker]:
    """identity's subscribers in ``isolation`` (schema migrated by the caller) through FastStream's in-memory
    broker (``tests.support.memory_broker.deliver`` hands them records): its event store fills, nothing is
    published (the relays are not started)."""
    schema, prefix = isolation.schema("identity"), isolation.topic_prefix
    engine = create_engine(isolation.database_url, schema=schema)
    broker = KafkaBroker(isolation.kafka_bootstrap)
    register(
        broker, engine=engine, batch_size=batch_size,
        topics=IdentityTopics(
            import_rows=IMPORT_ROWS.qualified(prefix), bulk_import_rows=BULK_IMPORT_ROWS.qualified(prefix),
            interactions=INTERACTIONS.qualified(prefix), attendee_statements=ATTENDEE_STATEMENTS.qualified(prefix),
            contact_events=CONTACT_EVENTS.qualified(prefix), row_outcomes=IMPORT_ROW_OUTCOMES.qualified(prefix),
            dead_letters=dead_letter_topic("identity").qualified(prefix),
        ),
        delivery=Delivery(service="identity", group=isolation.consumer_group("identity"),
                          bootstrap_servers=isolation.kafka_bootstrap, channel=relay_channel(schema)),
    )
    try:
        async with in_memory(broker) as started:
            yield started
    finally:
        await engine.dispose()


def contact_event_messages(isolation: Isolation) -> list[OutgoingMessage]:
    """identity's event store as its relay publishes it on the contact log (headers included), in store order."""
    to_message = ContactEventMessages(isolation.topic(CONTACT_EVENTS))
    rows = query(isolation, f"SELECT {EVENT_COLUMNS} FROM contact_events ORDER BY position")
    return [to_message(row) for row in rows]
