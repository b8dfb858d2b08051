"""identity as a real process on Tansu and PostgreSQL: redelivery, dead letters, a crash, two instances."""

from __future__ import annotations

import json
import random
import uuid
from collections import Counter
from pathlib import Path

import msgspec
import psycopg
import pytest

from services.identity.domain import rebuild
from services.local_postgres import libpq_url
from shared import wire
from shared.codec import encode
from shared.envelope import Envelope
from shared.events import (
    CONTACT_FIELDS,
    ImportRowReceivedV1,
    ImportRowsProcessedV1,
    ProcessedRow,
)
from shared.producer import OutgoingMessage
from shared.topics import IMPORT_ROW_OUTCOMES, IMPORT_ROWS, dead_letter_topic
from tests.support.isolation import Isolation
from tests.support.kafka import Consumed, consume_quiet, consume_until, publish
from tests.support.processes import ServiceProcess

pytestmark = pytest.mark.integration


def identity_process(isolation: Isolation, tmp_path: Path, name: str = "identity") -> ServiceProcess:
    env = isolation.env()
    if name != "identity":  # a second instance in the same group needs its own HTTP port
        from services.local_broker import free_port

        env["CONTACTS_IDENTITY_HTTP_PORT"] = str(port := free_port())
        base_url = f"http://127.0.0.1:{port}"
    else:
        base_url = isolation.base_url("identity")
    return ServiceProcess("identity", env=env, base_url=base_url, log_path=tmp_path / f"{name}.log")


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
    gaps = query(isolation, "SELECT contact_id FROM contact_events GROUP BY contact_id "
                            "HAVING max(version) <> count(*) OR min(version) <> 1")
    assert gaps == []
    # every row applied exactly once: per contact, one event per row that named it
    per_contact = dict(query(isolation, "SELECT c.email, count(*) FROM contact_events e "
                                        "JOIN contacts c USING (contact_id) GROUP BY c.email"))
    assert per_contact == dict(Counter(e.strip().lower() for e in emails))
    assert_state_is_the_fold_of_the_event_store(isolation)


def assert_state_is_the_fold_of_the_event_store(isolation: Isolation) -> None:
    """Every contact row and every organizer layer equals what folding the contact's stream from the event store
    gives (the log is the truth)."""
    streams: dict[str, list[wire.Wire]] = {}
    for contact_id, event_type, payload in query(
        isolation, "SELECT contact_id, type, payload FROM contact_events ORDER BY contact_id, version"
    ):
        streams.setdefault(str(contact_id), []).append(msgspec.convert(payload, wire.STRUCT_OF_TYPE[event_type]))
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


def _rows_of(consumed: list[Consumed], import_id: str) -> list[ProcessedRow]:
    return [row for c in consumed if isinstance(c.event, ImportRowsProcessedV1) and c.event.import_id == import_id
            for row in c.event.rows]


async def outcomes_for(isolation: Isolation, import_id: str, rows: int, within: float = 90) -> dict[int, set[str]]:
    """Every outcome identity reported per row, as ``outcome:contact_id`` (a re-sent one must be identical)."""
    seen = await consume_until(
        isolation.kafka_bootstrap, isolation.topic(IMPORT_ROW_OUTCOMES),
        lambda got: len({row.row_number for row in _rows_of(got, import_id)}) >= rows,
        accepted=(ImportRowsProcessedV1,), timeout=within,
    )
    by_row: dict[int, set[str]] = {}
    for row in _rows_of(seen, import_id):
        by_row.setdefault(row.row_number, set()).add(f"{row.outcome}:{row.contact_id}")
    return by_row


async def test_redelivered_rows_change_nothing_and_are_answered_once(isolation: Isolation, tmp_path: Path) -> None:
    isolation.migrate(("identity",))
    identity = identity_process(isolation, tmp_path)
    await identity.start()
    try:
        emails = ["Ann@x.io", " ann@x.io ", "bob@x.io", "not-an-email"]
        messages = row_messages(isolation, "imp-redeliver", emails)
        await publish(isolation.kafka_bootstrap, messages)
        await publish(isolation.kafka_bootstrap, messages)  # the producer retried: same ids, new offsets
        outcomes = await outcomes_for(isolation, "imp-redeliver", 4)
        settled = await consume_quiet(isolation.kafka_bootstrap, isolation.topic(IMPORT_ROW_OUTCOMES))
    finally:
        await identity.stop()

    # a row that arrives again is answered again, identically (ingest keeps a row's first answer)
    assert {row.row_number for row in _rows_of(settled, "imp-redeliver")} == {1, 2, 3, 4}
    assert all(len(answers) == 1 for answers in outcomes.values()), outcomes
    # rows are answered per import and rows partition per batch (3 partitions here), not one message each;
    # the repeats' answers once more
    assert len(settled) <= 6
    assert [sorted(outcomes[n])[0].split(":")[0] for n in (1, 2, 3, 4)] == ["created", "matched", "created", "error"]
    assert_one_contact_per_person_with_gapless_streams(isolation, emails[:3])


async def test_undecodable_messages_are_dead_lettered_and_the_rest_still_flow(
    isolation: Isolation, tmp_path: Path
) -> None:
    isolation.migrate(("identity",))
    identity = identity_process(isolation, tmp_path)
    await identity.start()
    topic = isolation.topic(IMPORT_ROWS)
    garbage = OutgoingMessage(topic=topic, key=b"k", value=b"\xff not json", headers=[
        ("ce_id", b"bad-1"), ("ce_type", ImportRowReceivedV1.TYPE.encode()), ("ce_source", b"tests")])
    no_envelope = OutgoingMessage(topic=topic, key=b"k", value=b"{}", headers=[])
    try:
        valid = row_messages(isolation, "imp-dlq", ["c@x.io"])
        await publish(isolation.kafka_bootstrap, [garbage, no_envelope, *valid])
        await outcomes_for(isolation, "imp-dlq", 1)
        dead = await consume_until(isolation.kafka_bootstrap, isolation.topic(dead_letter_topic("identity")),
                                   lambda got: len(got) >= 2)
    finally:
        await identity.stop()

    by_value = {d.record.value: d.headers for d in dead}
    assert set(by_value) == {b"\xff not json", b"{}"}
    assert by_value[b"\xff not json"]["dlq_error_code"] == b"INVALID_PAYLOAD"
    assert by_value[b"\xff not json"]["ce_id"] == b"bad-1"  # original headers kept
    assert by_value[b"{}"]["dlq_error_code"] == b"BAD_ENVELOPE"
    assert by_value[b"{}"]["dlq_original_topic"] == topic.encode()


async def test_killing_identity_mid_import_loses_nothing_and_duplicates_nothing(
    isolation: Isolation, tmp_path: Path
) -> None:
    isolation.migrate(("identity",))
    identity = identity_process(isolation, tmp_path)
    await identity.start()
    emails = spellings(people=3_000, rows=30_000)
    try:
        await publish(isolation.kafka_bootstrap, row_messages(isolation, "imp-crash", emails))
        await consume_until(isolation.kafka_bootstrap, isolation.topic(IMPORT_ROW_OUTCOMES),
                            lambda got: len(_rows_of(got, "imp-crash")) >= 2_000, timeout=60)
        await identity.kill()  # SIGKILL mid-import: no flush, no commit, no goodbye
        await identity.start()
        outcomes = await outcomes_for(isolation, "imp-crash", len(emails), within=120)
    finally:
        await identity.stop()

    assert len(outcomes) == len(emails)
    before_kill, after_restart = applied_per_start(identity)
    # the kill landed mid-import (a batch committed just before the kill may miss its log line, so the two counts
    # need not add up; the database below says every row was applied exactly once)
    assert 0 < before_kill < len(emails) and after_restart > 0
    assert all(len(answers) == 1 for answers in outcomes.values()), "a re-sent outcome must be identical"
    created = sum(1 for answers in outcomes.values() if next(iter(answers)).startswith("created"))
    assert created == len({e.strip().lower() for e in emails})
    assert_one_contact_per_person_with_gapless_streams(isolation, emails)


async def test_two_instances_in_one_group_create_exactly_one_contact_per_person(
    isolation: Isolation, tmp_path: Path
) -> None:
    isolation.migrate(("identity",))
    first, second = identity_process(isolation, tmp_path), identity_process(isolation, tmp_path, "identity-2")
    await first.start()
    await second.start()
    emails = spellings(people=2_000, rows=20_000, seed=11)
    try:
        # keyed by the raw spelling, not the normalized email, so one person's rows land on several partitions
        # and both instances race to create the same contacts
        messages = [OutgoingMessage(m.topic, key=str(i).encode(), value=m.value, headers=m.headers)
                    for i, m in enumerate(row_messages(isolation, "imp-race", emails))]
        await publish(isolation.kafka_bootstrap, messages)
        outcomes = await outcomes_for(isolation, "imp-race", len(emails), within=120)
    finally:
        await first.stop()
        await second.stop()

    assert len(outcomes) == len(emails)
    assert_one_contact_per_person_with_gapless_streams(isolation, emails)
    (by_first,), (by_second,) = applied_per_start(first), applied_per_start(second)
    assert by_first > 0 and by_second > 0 and by_first + by_second == len(emails)
