"""Scale-out, shown: two instances each of identity, enrichment and profiles (and one ingest), as processes, each
pair in one consumer group per lane, share three organizers' imports through ingest's HTTP API (34,000 rows,
people repeated in other spellings, some rows refused) while platform teams publish interactions. One instance of
each service is killed (SIGKILL) mid-import; the survivor takes its partitions at the rebalance and resumes at the
positions stored in PostgreSQL with each batch's effect. The results are exact: every import's counts, one contact
per person with a gapless stream, each row and interaction applied once, identity's state the fold of its event
store, profiles' and enrichment's read models the fold of the contact log (what one instance reaches), and every
organizer's view what the files and interactions say. The log lines show both instances of each service worked,
and the survivor worked the partitions of the one that died."""

from __future__ import annotations

import asyncio
import csv
import functools
import io
import random
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from ops.local_postgres import libpq_url
from services.profiles.domain import display_name
from shared.auth import mint_token
from shared.events import EventCheckedInV1, InteractionEvent, InteractionRecordedV1, TicketPurchasedV1
from shared.producer import OutgoingMessage
from shared.topics import BULK_IMPORT_ROWS, CONTACT_EVENTS
from tests.support.identity import (
    assert_gapless_streams,
    assert_state_is_the_fold_of_the_event_store,
    contact_streams,
    interaction_message,
    query,
)
from tests.support.isolation import Isolation
from tests.support.kafka import end_offsets, publish
from tests.support.processes import SERVICE_PROCESSES, ServiceProcess
from tests.support.read_models import assert_enrichment_is_the_fold, assert_profiles_are_the_fold
from tests.support.waiting import wait_until

pytestmark = pytest.mark.e2e

SCALED = ("identity", "enrichment", "profiles")
WORK_LOGGED = {"identity": "identity.resolved", "enrichment": "contact_events.folded",
               "profiles": "contact_events.projected"}
"""Each service's line per applied batch (its handlers.py), with the batch's topics, partitions and offsets."""
FIELDS = ("first_name", "last_name", "company", "title", "phone")
DOMAIN = "scale.example"
FILES = {"org-a": (20_000, range(0, 7_000)), "org-b": (9_000, range(2_500, 10_000)),
         "org-c": (5_000, range(5_000, 10_000))}
"""Organizer -> (rows, whom its file names). org-a's import is over ingest's bulk threshold (10,000 rows): the bulk
lane; the others take the interactive lane with the interactions."""
INTERACTING = {"org-d": range(0, 10_300), "org-a": range(7_000, 10_300)}
"""Organizer -> whom its events' interactions name: org-d imports nothing, org-a only people its file does not name
(so each row's outcome is the same whichever lane applies first); 300 people are known only by interactions."""
INTERACTIONS_PER_WAVE = 600
FIRST = ("Ada", "Grace", "Linus", "Margaret", "Alan", "Barbara", "Edsger", "Frances", "Ken", "Radia")
LAST = ("Lovelace", "Hopper", "Torvalds", "Hamilton", "Turing", "Liskov", "Dijkstra", "Allen", "Thompson", "Perlman")
T0 = datetime(2026, 5, 4, 9, 0, tzinfo=UTC)
RECORDED = InteractionRecordedV1.TYPE


def spelled(rng: random.Random, n: int) -> str:
    """Person ``n``'s address as someone typed it: any case, stray spaces around it."""
    email = "".join(ch.upper() if rng.random() < 0.3 else ch for ch in f"person{n}@{DOMAIN}")
    return rng.choice(["", " ", "  "]) + email + rng.choice(["", " "])


def maybe(rng: random.Random, values: Iterable[str], blank: float) -> str:
    return "" if rng.random() < blank else rng.choice(list(values))


@dataclass(frozen=True)
class Upload:
    organizer: str
    rows: list[dict[str, str]]

    def csv(self) -> bytes:
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=("email", *FIELDS), lineterminator="\n")
        writer.writeheader()
        writer.writerows(self.rows)
        return out.getvalue().encode()

    def valid(self) -> list[dict[str, str]]:
        return [row for row in self.rows if "@" in row["email"]]

    def expected_counts(self) -> tuple[int, int, int]:
        """(created, matched, errors): a person is new to the organizer at its first row, then matched."""
        valid = self.valid()
        created = len({row["email"].strip().lower() for row in valid})
        return created, len(valid) - created, len(self.rows) - len(valid)


def uploads(seed: int = 17) -> list[Upload]:
    rng = random.Random(seed)
    result = []
    for organizer, (count, people) in FILES.items():
        rows = []
        for number in range(count):
            if number % 400 == 199:  # refused by ingest: MISSING_EMAIL, INVALID_EMAIL (a blank line is no row)
                rows.append({"email": rng.choice(["", "not-an-email"]), **dict.fromkeys(FIELDS, ""), "title": "CTO"})
                continue
            n = rng.choice(people)
            rows.append({
                "email": spelled(rng, n), "first_name": maybe(rng, FIRST, 0.2), "last_name": maybe(rng, LAST, 0.3),
                "company": maybe(rng, (f"Company {n % 37}", f"Company {n % 41}"), 0.4),
                "title": maybe(rng, ("CTO", "Engineer", "Organizer", "Speaker"), 0.5),
                "phone": maybe(rng, (f"+1 555 {n:04d}",), 0.7),
            })
        result.append(Upload(organizer, rows))
    return result


def interactions(seed: int = 23) -> list[tuple[str, InteractionEvent]]:
    """``(ce_id, event)`` in publication order, two waves' worth."""
    rng = random.Random(seed)
    result: list[tuple[str, InteractionEvent]] = []
    for number in range(2 * INTERACTIONS_PER_WAVE):
        organizer = "org-a" if number % 4 == 0 else "org-d"
        n = rng.choice(INTERACTING[organizer])
        common: dict[str, Any] = {
            "organizer_id": organizer, "email": spelled(rng, n), "occurred_at": T0 + timedelta(seconds=number),
            "kagibag_event_id": f"ev-{number % 5}", "first_name": maybe(rng, FIRST, 0.4) or None,
            "last_name": maybe(rng, LAST, 0.5) or None,
        }
        event: InteractionEvent = (
            TicketPurchasedV1(order_id=f"order-{number}", ticket_count=1 + number % 3, **common)
            if number % 3 else EventCheckedInV1(**common)
        )
        result.append((f"scale-{number}", event))
    return result


def expected_views(
    files: list[Upload], interacted: list[tuple[str, InteractionEvent]]
) -> dict[tuple[str, str], tuple[str | None, ...]]:
    """(organizer, email) -> what its view shows (email, spelling, fields, display name), from the inputs alone:
    per field the person's last stated value, else the organizer's last imported one (a blank states nothing);
    the person's first spelling, else the organizer's first, else the normalized email."""
    person: dict[str, dict[str, str]] = {}
    person_spelling: dict[str, str] = {}
    layers: dict[tuple[str, str], dict[str, str]] = {}
    layer_spelling: dict[tuple[str, str], str] = {}
    for upload in files:
        for row in upload.valid():
            email = row["email"].strip().lower()
            layer_spelling.setdefault((upload.organizer, email), row["email"].strip())
            layers.setdefault((upload.organizer, email), {}).update({f: row[f] for f in FIELDS if row[f]})
    for _, event in interacted:
        email = event.email.strip().lower()
        layers.setdefault((event.organizer_id, email), {})
        person_spelling.setdefault(email, event.email.strip())
        person.setdefault(email, {}).update({f: v for f in FIELDS if (v := getattr(event, f, None))})
    views = {}
    for (organizer, email), own in layers.items():
        values = {**own, **person.get(email, {})}
        spelling = person_spelling.get(email) or layer_spelling.get((organizer, email)) or email
        views[(organizer, email)] = (
            email, spelling, *(values.get(f) for f in FIELDS),
            display_name(email=email, first_name=values.get("first_name"), last_name=values.get("last_name")),
        )
    return views


def rows_in(isolation: Isolation, service: str, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(libpq_url(isolation.database_url)) as conn:
        conn.execute(f'SET search_path TO "{isolation.schema(service)}"')
        return conn.execute(sql, params).fetchall()  # type: ignore[arg-type]


def last_offsets(lines: list[dict[str, Any]]) -> dict[tuple[str, int], int]:
    """(topic, partition) -> the highest offset of the batches these work lines describe
    (``shared.consumer.describe_batch``)."""
    last: dict[tuple[str, int], int] = {}
    for line in lines:
        for key, offsets in line["offsets"].items():
            topic, _, partition = key.rstrip("]").rpartition("[") if "[" in key else (line["topic"], "", key)
            high = int(offsets.rpartition("-")[2])
            last[(topic, int(partition))] = max(high, last.get((topic, int(partition)), -1))
    return last


def applied(service: str, line: dict[str, Any]) -> int:
    return int(line["rows"] + line["interactions"]) if service == "identity" else int(line["applied"])


def relayed(isolation: Isolation) -> bool:
    """Whether identity's relay has published its whole event store (the contact log is complete)."""
    [(cursor, last)] = query(isolation, "SELECT (SELECT position FROM relay_cursors WHERE stream = 'contact-events'), "
                                        "(SELECT max(position) FROM contact_events)")
    return cursor is not None and cursor >= last


async def caught_up(isolation: Isolation, service: str, topic: str) -> bool:
    """Whether ``service``'s group has stored positions at the end of every partition of ``topic``."""
    ends = await end_offsets(isolation.kafka_bootstrap, topic)
    stored = dict(rows_in(isolation, service, "SELECT partition, next_offset FROM consumer_positions "
                                              "WHERE consumer_group = %s AND topic = %s",
                          isolation.consumer_group(service), topic))
    return all(stored.get(partition, 0) >= end for partition, end in ends.items())


@dataclass
class Run:
    """What the test did and saw: the processes, the import ids and final statuses, and per scaled service where
    its surviving instance's log stood at the kill; timings in seconds."""

    processes: dict[str, ServiceProcess]
    import_ids: dict[str, str] = field(default_factory=dict)
    statuses: dict[str, dict[str, Any]] = field(default_factory=dict)
    since: dict[str, int] = field(default_factory=dict)
    shares: dict[str, tuple[int, int]] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)


async def import_while_losing_an_instance_of_each(
    isolation: Isolation, run: Run, files: list[Upload], interacted: list[tuple[str, InteractionEvent]]
) -> None:
    """Upload the files (started at once), publish the first wave of interactions, kill the second instance of each
    service once both of each are at work and a third of the bulk import is answered, publish the second wave (and
    some again), and wait until every import is finished and every interaction recorded."""
    loop, processes = asyncio.get_running_loop(), run.processes
    began = loop.time()
    wave_one, wave_two = interacted[:INTERACTIONS_PER_WAVE], interacted[INTERACTIONS_PER_WAVE:]
    resent = wave_one[::15]  # published again under the same ce_id: applied once

    def messages(batch: list[tuple[str, InteractionEvent]]) -> list[OutgoingMessage]:
        return [interaction_message(isolation, event, id=ce_id) for ce_id, event in batch]

    ingest = processes["ingest"].base_url
    auth = {upload.organizer: {"Authorization": "Bearer " + mint_token(
        secret=isolation.auth_secret, organizer_id=upload.organizer, ttl_seconds=900)} for upload in files}
    async with httpx.AsyncClient(timeout=30) as client:
        for upload in files:
            response = await client.post(f"{ingest}/v1/imports", params={"auto_start": "true"},
                                         headers=auth[upload.organizer],
                                         files={"file": (f"{upload.organizer}.csv", upload.csv(), "text/csv")})
            assert response.status_code == 202, response.text
            run.import_ids[upload.organizer] = response.json()["import_id"]
        await publish(isolation.kafka_bootstrap, messages(wave_one))

        async def status(organizer: str) -> dict[str, Any]:
            response = await client.get(f"{ingest}/v1/imports/{run.import_ids[organizer]}", headers=auth[organizer])
            return dict(response.json())

        async def time_to_kill() -> bool:
            """Every instance has applied batches, and a third of the bulk import is answered."""
            working = all(any(applied(name.removesuffix("-2"), line) > 0
                              for line in processes[name].logged(WORK_LOGGED[name.removesuffix("-2")]))
                          for name in processes if name != "ingest")
            return working and (await status("org-a"))["processed_rows"] >= FILES["org-a"][0] // 3

        await wait_until(time_to_kill, timeout=120, interval=0.1, description="both instances of each at work")
        run.since = {service: processes[service].log_size() for service in SCALED}
        await asyncio.gather(*(processes[f"{service}-2"].kill() for service in SCALED))
        run.timings["killed"] = loop.time() - began
        await publish(isolation.kafka_bootstrap, messages(wave_two) + messages(resent))

        async def finished() -> dict[str, dict[str, Any]]:
            statuses = {organizer: await status(organizer) for organizer in run.import_ids}
            done = all(s["status"] in ("processed", "error") and s["processed_rows"] == s["total_rows"]
                       for s in statuses.values())
            return statuses if done else {}

        run.statuses = await wait_until(finished, timeout=240, interval=1.0, description="every import finished")
    run.timings["imports finished"] = loop.time() - began
    await wait_until(lambda: query(isolation, f"SELECT count(*) FROM contact_events WHERE type = '{RECORDED}'")
                     [0][0] >= len(interacted), timeout=120, interval=1.0, description="every interaction recorded")


async def read_models_settle(isolation: Isolation) -> None:
    """Wait until identity's relay has published its whole event store and profiles' and enrichment's groups have
    stored positions at the end of the contact log."""
    contact_events = isolation.topic(CONTACT_EVENTS)
    await wait_until(lambda: relayed(isolation), timeout=60, interval=0.5,
                     description="identity's relay at the end of its event store")
    for service in ("profiles", "enrichment"):
        await wait_until(functools.partial(caught_up, isolation, service, contact_events), timeout=180, interval=1.0,
                         description=f"{service} caught up with the contact log")


def assert_identity_applied_everything_once(
    isolation: Isolation, run: Run, files: list[Upload], interacted: list[tuple[str, InteractionEvent]]
) -> None:
    """One contact per person, gapless streams, one event per valid row and one record per interaction, and the
    state the fold of the event store."""
    people = {row["email"].strip().lower() for upload in files for row in upload.valid()}
    people |= {event.email.strip().lower() for _, event in interacted}
    assert sorted(email for (email,) in query(isolation, "SELECT email FROM contacts")) == sorted(people)
    assert_gapless_streams(isolation)
    row_events = Counter(query(isolation, "SELECT payload->'source'->>'import_id', payload->'source'->>'row_number' "
                                          "FROM contact_events WHERE payload->'source'->>'kind' = 'import'"))
    assert set(row_events.values()) == {1}, "a row applied twice"
    assert Counter(import_id for import_id, _ in row_events) == {
        run.import_ids[upload.organizer]: len(upload.valid()) for upload in files}
    recorded = Counter(i for (i,) in query(isolation, "SELECT payload->>'interaction_id' FROM contact_events "
                                                      f"WHERE type = '{RECORDED}'"))
    assert recorded == {ce_id: 1 for ce_id, _ in interacted}
    assert_state_is_the_fold_of_the_event_store(isolation)


def assert_both_worked_and_the_survivor_took_over(isolation: Isolation, run: Run) -> None:
    """Both instances of each service did a share of the work before the kill (each at least a twentieth); after it the
    survivor was assigned the dead one's partitions, resumed each past what the dead one had logged as applied (the
    positions stored with its batches) and worked on; identity's survivor still had rows of the bulk import to
    apply (the kill came mid-import)."""
    for service in SCALED:
        survivor, killed = run.processes[service], run.processes[f"{service}-2"]
        work = WORK_LOGGED[service]
        shares = (sum(applied(service, line) for line in survivor.logged(work, until=run.since[service])),
                  sum(applied(service, line) for line in killed.logged(work)))
        run.shares[service] = shares
        assert min(shares) >= sum(shares) // 20, f"{service}: one instance did (almost) all the work: {shares}"
        theirs = last_offsets(killed.logged(work))
        resumed: dict[tuple[str, int], int] = {}
        for line in survivor.logged("consumer.resumed_at_stored_positions", since=run.since[service]):
            for key, position in line["positions"].items():
                topic, _, partition = key.rstrip("]").rpartition("[")
                resumed[(topic, int(partition))] = position
        assert theirs.keys() <= resumed.keys(), f"{service}: {sorted(theirs.keys() - resumed.keys())} not taken over"
        behind = {key: (offset, resumed[key]) for key, offset in theirs.items() if resumed[key] <= offset}
        assert not behind, f"{service}: resumed at or before a record the dead instance had applied: {behind}"
        after = last_offsets(survivor.logged(work, since=run.since[service]))
        assert theirs.keys() & after.keys(), f"{service}: no work on the partitions taken over"
    bulk = isolation.topic(BULK_IMPORT_ROWS)
    bulk_rows = sum(line["rows"] for line in run.processes["identity"].logged(WORK_LOGGED["identity"],
                                                                              since=run.since["identity"])
                    if bulk in line["topic"])
    assert bulk_rows > 0, "the bulk import was applied before identity lost an instance"


async def test_two_instances_of_each_service_share_imports_and_survive_losing_one_mid_import(
    migrated: Isolation, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    loop = asyncio.get_running_loop()
    began = loop.time()
    names = ["ingest", *(name for service in SCALED for name in (service, f"{service}-2"))]
    run = Run({name: ServiceProcess.for_isolation(migrated, name.removesuffix("-2"), log_dir=tmp_path, name=name)
               for name in names})
    request.node.stash[SERVICE_PROCESSES] = run.processes
    files, interacted = uploads(), interactions()
    try:
        started = await asyncio.gather(*(p.start(timeout=90) for p in run.processes.values()),
                                       return_exceptions=True)
        assert not [error for error in started if isinstance(error, BaseException)], started
        run.timings["started"] = loop.time() - began
        await import_while_losing_an_instance_of_each(migrated, run, files, interacted)
        await read_models_settle(migrated)
        run.timings["settled"] = loop.time() - began
    finally:
        await asyncio.gather(*(p.stop() for p in run.processes.values()), return_exceptions=True)

    for upload in files:  # every import's counts are exact
        created, matched, errors = upload.expected_counts()
        got = run.statuses[upload.organizer]
        assert (got["total_rows"], got["created"], got["matched"], got["errors"]) == (
            len(upload.rows), created, matched, errors), upload.organizer
    assert_identity_applied_everything_once(migrated, run, files, interacted)

    # profiles and enrichment hold the fold of the contact log; every organizer's view is what the inputs say
    streams = contact_streams(migrated)
    await assert_profiles_are_the_fold(migrated, streams)
    await assert_enrichment_is_the_fold(migrated, streams)
    views = {(organizer, email): tuple(shown) for organizer, email, *shown in rows_in(
        migrated, "profiles", "SELECT organizer_id, email, email, email_original, first_name, last_name, company, "
                              "title, phone, display_name FROM organizer_contacts")}
    expected = expected_views(files, interacted)
    assert views.keys() == expected.keys()
    wrong = [(key, views[key], expected[key]) for key in expected if views[key] != expected[key]]
    assert not wrong, f"{len(wrong)} views differ from the inputs, e.g. {wrong[:3]}"

    assert_both_worked_and_the_survivor_took_over(migrated, run)
    print(f"\nscale-out: {run.timings['started']:.0f} s to start; after the uploads: one of each killed at "
          f"{run.timings['killed']:.0f} s, imports finished at {run.timings['imports finished']:.0f} s; read models "
          f"settled {run.timings['settled']:.0f} s after the start; applied before the kill: {run.shares}")
