"""Non-interference between organizers, through the four services as processes: whatever organizer B does with
the same people (imports of any values and spellings, API changes, interactions with its events that state
nothing), everything organizer A observes is identical to what it observes when B does nothing at all.

Hypothesis draws a program: A's timeline (CSV, JSON and MCP imports, PATCHes, reads, searches and filters,
check-ins at A's events, and the people's own statements at fixed places, first of all each person's first
statement) and B's actions with where they fall in it. The program runs twice in the same running services, in
two worlds that share nothing (organizer ids and email domains carry a run token): A's timeline alone, and A's
timeline with B's actions interleaved. After every step A takes a full look (every page of its contacts in both
orders, each contact with its ETag and change history, most engaged, its imports) besides what its own actions
answer. Both runs' observations must be equal up to what A's own actions produced: the run token, contact ids
(named by person), import ids (named by A's import order), other ids (by first appearance) and times A's own
steps caused (named by the step); after one of B's steps, A must see exactly what it saw before it.

``CONTACTS_NONINTERFERENCE_EXAMPLES`` sets how many drawn programs run (default 2, plus the issue's example
always; 0 runs the issue's example only; a nightly run uses more, e.g. 50); ``CONTACTS_NONINTERFERENCE_SHRINK=1``
lets Hypothesis shrink a failure (slow: every example is two full runs)."""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import httpx2
import psycopg
import pytest
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

from ops.local_postgres import libpq_url
from shared.auth import mint_token
from shared.codec import encode
from shared.envelope import Envelope
from shared.events import (
    AttendeeProfileCompletedV1,
    EventCheckedInV1,
    InteractionEvent,
    TicketPurchasedV1,
    UserAccountLinkedV1,
    WaitlistRegisteredV1,
)
from shared.topics import INTERACTIONS
from tests.support.isolation import Isolation
from tests.support.kafka import publish
from tests.support.processes import ServiceProcess
from tests.support.waiting import wait_until

pytestmark = pytest.mark.e2e

EXAMPLES = int(os.environ.get("CONTACTS_NONINTERFERENCE_EXAMPLES", "2"))
SHRINK = os.environ.get("CONTACTS_NONINTERFERENCE_SHRINK") == "1"

STATING = ("ann", "bob", "cy")
"""People who state something themselves before anything else happens (their first statement sets the
spelling of their email everyone sees); B's interactions concern only them."""
PEOPLE = (*STATING, "dee")
"""``dee`` never speaks for herself: only organizers import her."""
SPELLINGS = ("{p}@{t}.example", "{P}@{t}.example", " {P}@{T}.EXAMPLE ")
NAMES = ("Ann", "Annie", "Bo", "Cy", "Dee")
COMPANIES = ("Acme", "Bcorp", '=HYPERLINK("http://x")')
TITLES = ("CTO", "Dev")
PHONES = ("+1 555 0100", "030 1234")
PERSON_TIME = datetime(2025, 6, 1, tzinfo=UTC)
"""The people's and B's interactions happen at fixed times (in the past), so both runs agree on them."""


# --- the program ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    person: str
    spelling: int
    values: tuple[tuple[str, str], ...] = ()
    permission: str | None = None


@dataclass(frozen=True)
class Import:
    organizer: str
    channel: str  # csv | json | mcp
    rows: tuple[Row, ...]


@dataclass(frozen=True)
class Patch:
    organizer: str
    person: str
    body: str  # JSON
    if_match: str | None = None


@dataclass(frozen=True)
class Read:
    organizer: str
    params: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Look:
    """A looks at one person: finds them by email, then reads them (by their real id, known or not)."""

    organizer: str
    person: str


@dataclass(frozen=True)
class Interaction:
    """The person at ``organizer``'s event; ``values`` are what they state (none for B's interactions)."""

    organizer: str
    person: str
    kind: str
    spelling: int
    values: tuple[tuple[str, str], ...] = ()


Step = Import | Patch | Read | Look | Interaction


@dataclass(frozen=True)
class Program:
    timeline: tuple[Step, ...]
    others: tuple[tuple[int, Step], ...]  # (position in the timeline, B's step): before timeline[position]

    def interleaved(self) -> list[tuple[int | None, Step]]:
        """Steps with their index in A's timeline (None: one of B's)."""
        steps: list[tuple[int | None, Step]] = []
        for index, step in enumerate(self.timeline):
            steps += [(None, other) for position, other in self.others if position == index]
            steps.append((index, step))
        return steps + [(None, other) for position, other in self.others if position >= len(self.timeline)]


POOLS = {"first_name": NAMES, "last_name": ("Lee", "Li"), "company": COMPANIES, "title": TITLES, "phone": PHONES}


def values(*names: str) -> st.SearchStrategy[tuple[tuple[str, str], ...]]:
    optional = {name: st.sampled_from(POOLS[name]) for name in names}
    return st.fixed_dictionaries({}, optional=optional).map(lambda found: tuple(sorted(found.items())))


ROW_FIELDS = ("first_name", "last_name", "company", "title", "phone")


def rows(people: Sequence[str]) -> st.SearchStrategy[tuple[Row, ...]]:
    row = st.builds(Row, person=st.sampled_from(people), spelling=st.integers(0, len(SPELLINGS) - 1),
                    values=values(*ROW_FIELDS),
                    permission=st.sampled_from([None, None, "subscribed", "unsubscribed"]))
    return st.lists(row, min_size=1, max_size=4).map(tuple)


PATCHES = (
    '{"tags": {"add": ["vip"]}}', '{"notes": "called twice"}', '{"email_permission": "unsubscribed"}',
    '{"email_permission": "subscribed", "tags": {"set": ["x", "y"]}}', '{"preferences": {"frequency": "weekly"}}',
    '{"notes": null, "tags": {"remove": ["vip"]}}',
)
READS = (
    (("q", "an"),), (("q", "Ann"),), (("q", "bo"),), (("q", "lee"),), (("email", "ann@{t}.example"),),
    (("company", "acme"),), (("tag", "vip"),), (("permission", "unsubscribed"),), (("permission", "subscribed"),),
    (("sort", "engagement"), ("limit", "1")), (("min_events_attended", "1"),),
    (("last_active_after", "2025-01-01T00:00:00Z"),), (("limit", "1"),),
)


def person_statement(organizers: Sequence[str]) -> st.SearchStrategy[Interaction]:
    """The person's own statement at one of ``organizers``' events."""
    return st.one_of(
        st.builds(Interaction, organizer=st.sampled_from(organizers), person=st.sampled_from(STATING),
                  kind=st.just("ticket"), spelling=st.integers(0, 2), values=values("first_name", "last_name")),
        st.builds(Interaction, organizer=st.sampled_from(organizers), person=st.sampled_from(STATING),
                  kind=st.just("profile"), spelling=st.integers(0, 2), values=values("company", "title", "phone")),
        st.builds(Interaction, organizer=st.sampled_from(organizers), person=st.sampled_from(STATING),
                  kind=st.just("account"), spelling=st.integers(0, 2)),
    )


def valueless(organizer: str) -> st.SearchStrategy[Interaction]:
    return st.builds(Interaction, organizer=st.just(organizer), person=st.sampled_from(STATING),
                     kind=st.sampled_from(["checkin", "ticket", "waitlist"]), spelling=st.integers(0, 2))


def actions(organizer: str) -> st.SearchStrategy[Step]:
    return st.one_of(
        st.builds(Import, organizer=st.just(organizer), channel=st.sampled_from(["csv", "json", "mcp"]),
                  rows=rows(PEOPLE)),
        st.builds(Patch, organizer=st.just(organizer), person=st.sampled_from(PEOPLE), body=st.sampled_from(PATCHES),
                  if_match=st.sampled_from([None, None, '"0"', '"1"'])),
        st.builds(Read, organizer=st.just(organizer), params=st.sampled_from(READS)),
        st.builds(Look, organizer=st.just(organizer), person=st.sampled_from(PEOPLE)),
        valueless(organizer),
    )


@st.composite
def programs(draw: st.DrawFn) -> Program:
    def stated_by(person: str) -> Callable[[Interaction], Interaction]:
        return lambda s: Interaction(s.organizer, person, s.kind, s.spelling, s.values or (("first_name", person),))

    first = [draw(person_statement(["a", "b"]).map(stated_by(p))) for p in STATING]
    timeline = first + draw(st.lists(st.one_of(actions("a"), actions("a"), person_statement(["a", "b"])),
                                     min_size=3, max_size=8))
    others = draw(st.lists(
        st.tuples(st.integers(len(first), len(timeline)),
                  st.one_of(st.builds(Import, organizer=st.just("b"), channel=st.sampled_from(["csv", "json"]),
                                      rows=rows(PEOPLE)),
                            st.builds(Patch, organizer=st.just("b"), person=st.sampled_from(PEOPLE),
                                      body=st.sampled_from(PATCHES)),
                            valueless("b"))),
        min_size=1, max_size=6))
    return Program(tuple(timeline), tuple(sorted(others, key=lambda pair: pair[0])))


ISSUE_EXAMPLE = Program(
    timeline=(
        Interaction("b", "ann", "waitlist", 0),  # ann exists; she states nothing yet
        Import("a", "csv", (Row("ann", 1),)),  # A imports the bare email
        Import("a", "json", (Row("ann", 0, (("company", "Acorp"), ("title", "CTO"))),)),  # then other values
        Look("a", "ann"),
        Interaction("b", "ann", "ticket", 2, (("first_name", "Ann"), ("last_name", "Lee"))),  # her own name
        Look("a", "ann"),
    ),
    others=((1, Import("b", "csv", (Row("ann", 2, (("first_name", "Annabel"), ("company", "Bcorp"),
                                                   ("phone", "+1 555 0100"))),))),
            (4, Interaction("b", "ann", "checkin", 0))),
)


# --- running a program -------------------------------------------------------------------------------------


def _rows(isolation: Isolation, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(libpq_url(isolation.database_url)) as conn:
        return conn.execute(sql, params).fetchall()


@dataclass
class World:
    """One run: its own organizers, emails and clock windows in the shared services."""

    isolation: Isolation
    services: dict[str, ServiceProcess]
    token: str = field(default_factory=lambda: f"r{uuid.uuid4().hex[:8]}")
    imports: dict[str, str] = field(default_factory=dict)  # import id -> label
    interactions: list[str] = field(default_factory=list)
    windows: list[tuple[datetime, datetime, str]] = field(default_factory=list)
    now: datetime = PERSON_TIME  # when the interactions of the current step happen

    def organizer(self, name: str) -> str:
        return f"{name}-{self.token}"

    def email(self, person: str, spelling: int = 0) -> str:
        return SPELLINGS[spelling].format(p=person, P=person.capitalize(), t=self.token, T=self.token.upper())

    def auth(self, name: str) -> dict[str, str]:
        token = mint_token(secret=self.isolation.auth_secret, organizer_id=self.organizer(name), ttl_seconds=3600)
        return {"Authorization": f"Bearer {token}"}

    def url(self, service: str) -> str:
        return self.services[service].base_url

    def contact_ids(self) -> dict[str, str]:
        """Every contact of this world's people: id -> person (from identity's table, the test's knowledge)."""
        found = _rows(self.isolation, f'SELECT contact_id::text, email FROM "{self.isolation.schema("identity")}"'
                                      ".contacts WHERE email LIKE %s", f"%@{self.token}.example")
        return {contact_id: email.split("@")[0] for contact_id, email in found}

    def contact_id(self, person: str) -> str | None:
        return next((cid for cid, name in self.contact_ids().items() if name == person), None)

    async def quiescent(self) -> None:
        """Every published interaction applied by identity, and every contact event projected by profiles."""
        identity, profiles = self.isolation.schema("identity"), self.isolation.schema("profiles")

        def settled() -> bool:
            applied = _rows(self.isolation, f'SELECT count(*) FROM "{identity}".applied_interactions '
                                            "WHERE id = ANY(%s)", self.interactions)[0][0]
            behind = _rows(self.isolation, f'SELECT count(*) FROM "{identity}".contacts c LEFT JOIN "{profiles}"'
                                           ".contact_profiles p ON p.contact_id = c.contact_id::text "
                                           "WHERE p.contact_version IS DISTINCT FROM c.version")[0][0]
            return applied == len(self.interactions) and behind == 0

        await wait_until(settled, timeout=60, interval=0.05, description="identity and profiles caught up")

    # --- steps

    async def run(self, step: Step) -> Any:
        if isinstance(step, Import):
            return await self.import_(step)
        if isinstance(step, Interaction):
            return await self.interact(step)
        async with httpx.AsyncClient(base_url=self.url("profiles"), headers=self.auth(step.organizer),
                                     timeout=30) as client:
            if isinstance(step, Patch):
                contact_id = await self.find(client, step.person)
                headers = {"If-Match": step.if_match} if step.if_match else {}
                response = await client.patch(f"/v1/contacts/{contact_id}", content=step.body,
                                              headers={**headers, "Content-Type": "application/json"})
                return answer(response)
            if isinstance(step, Look):
                contact_id = await self.find(client, step.person)
                return [answer(await client.get(f"/v1/contacts/{contact_id}")),
                        answer(await client.get(f"/v1/contacts/{contact_id}/changes", params={"limit": 2}))]
            params = {key: value.format(t=self.token) for key, value in step.params}
            return await pages(client, params)

    async def find(self, client: httpx.AsyncClient, person: str) -> str:
        """The person's contact id as the organizer finds it by email, else their real id (a probe)."""
        found = (await client.get("/v1/contacts", params={"email": self.email(person)})).json()["items"]
        return found[0]["contact_id"] if found else self.contact_id(person) or str(uuid.uuid4())

    async def import_(self, step: Import) -> Any:
        contacts = [{"email": self.email(row.person, row.spelling), **dict(row.values),
                     **({"email_permission": row.permission} if row.permission else {})} for row in step.rows]
        ingest = self.url("ingest")
        auth = self.auth(step.organizer)
        tool_view: Any = None
        if step.channel == "mcp":
            async with mcp_session(ingest, auth) as session:
                started = await session.call_tool("import_contacts", {"contacts": contacts})
                import_id = str(started.structured_content["import_id"])
                self.imports[import_id] = self.import_label(step.organizer)

                async def status() -> Any:
                    result = (await session.call_tool("check_import_status", {"import_id": import_id}))
                    view = result.structured_content
                    return view if view["status"] in ("processed", "error") else None

                tool_view = await wait_until(status, timeout=60)
        async with httpx.AsyncClient(base_url=ingest, headers=auth, timeout=30) as client:
            if step.channel != "mcp":
                if step.channel == "json":
                    response = await client.post("/v1/imports", json=contacts)
                else:
                    header = ["email", *ROW_FIELDS]
                    lines = [",".join(header)] + [",".join(_csv(str(c.get(name, ""))) for name in header)
                                                  for c in contacts]
                    response = await client.post("/v1/imports", params={"auto_start": "true"}, files={
                        "file": ("people.csv", "\n".join(lines).encode(), "text/csv")})
                assert response.status_code == 202, response.text
                import_id = response.json()["import_id"]
                self.imports[import_id] = self.import_label(step.organizer)

            async def finished() -> Any:
                view = (await client.get(f"/v1/imports/{import_id}")).json()
                return view if view["status"] in ("processed", "error") else None

            view = await wait_until(finished, timeout=60, description=f"import {import_id}")
            rows_page = (await client.get(f"/v1/imports/{import_id}/rows")).json()
        return {"import": view, "rows": rows_page, "tool": tool_view}

    def import_label(self, organizer: str) -> str:
        """Imports are named by their organizer's own count of them."""
        return f"{organizer}-import#{sum(label.startswith(organizer) for label in self.imports.values())}"

    async def interact(self, step: Interaction) -> None:
        common: dict[str, Any] = {"organizer_id": self.organizer(step.organizer), "occurred_at": self.now,
                                  "email": self.email(step.person, step.spelling), **dict(step.values)}
        event_id = f"ev-{step.organizer}"
        order = f"o-{len(self.interactions)}"
        event: InteractionEvent = {
            "checkin": lambda: EventCheckedInV1(kagibag_event_id=event_id, **common),
            "waitlist": lambda: WaitlistRegisteredV1(kagibag_event_id=event_id, **common),
            "ticket": lambda: TicketPurchasedV1(kagibag_event_id=event_id, order_id=order, ticket_count=1, **common),
            "profile": lambda: AttendeeProfileCompletedV1(kagibag_event_id=event_id, **common),
            "account": lambda: UserAccountLinkedV1(user_account_id=f"u-{step.person}", **common),
        }[step.kind]()
        envelope = Envelope(id=str(uuid.uuid4()), type=event.TYPE, source="kagibag-platform/tests")
        self.interactions.append(envelope.id)
        await publish(self.isolation.kafka_bootstrap, [
            encode(event, envelope, topic=self.isolation.topic(INTERACTIONS), key=event.email.strip().lower())])

    # --- what A sees

    async def look(self) -> Any:
        """Everything organizer A can read right now."""
        async with httpx.AsyncClient(base_url=self.url("profiles"), headers=self.auth("a"), timeout=30) as client:
            by_id = await pages(client, {"limit": "2"})
            contacts = {}
            for item in by_id["items"]:
                contact_id = item["contact_id"]
                contacts[contact_id] = [answer(await client.get(f"/v1/contacts/{contact_id}")),
                                        answer(await client.get(f"/v1/contacts/{contact_id}/changes"))]
            by_engagement = await pages(client, {"sort": "engagement", "limit": "3"})
            engaged = listing((await client.get("/v1/insights/most-engaged")).json()["items"], engagement=True)
        async with httpx.AsyncClient(base_url=self.url("ingest"), headers=self.auth("a"), timeout=30) as client:
            imports = answer(await client.get("/v1/imports"))
        return {"contacts": by_id, "details": contacts, "engagement": by_engagement, "most_engaged": engaged,
                "imports": imports}

    async def execute(self, program: Program, *, with_others: bool) -> list[tuple[int | None, Any, Any]]:
        """Run the program; after each step: (its timeline index or None, what A's step answered, A's look)."""
        steps = program.interleaved() if with_others else list(enumerate(program.timeline))
        observed: list[tuple[int | None, Any, Any]] = []
        for index, step in steps:
            started = datetime.now(UTC)
            self.now = PERSON_TIME + (timedelta(minutes=index) if index is not None
                                      else timedelta(minutes=len(observed), seconds=30))
            answered = await self.run(step)
            await self.quiescent()
            seen = await self.look()
            self.windows.append((started, datetime.now(UTC), f"step{index}" if index is not None else "B-step"))
            observed.append((index, answered if step.organizer == "a" else None, seen))
        return self.normalized(observed)

    # --- normalizing

    def normalized(self, value: Any) -> Any:
        contacts = {cid: f"contact:{person}" for cid, person in self.contact_ids().items()}
        others: dict[str, str] = {}

        def label(text: str) -> str:
            if text in contacts:
                return contacts[text]
            if text in self.imports:
                return self.imports[text]
            if TIME.match(text):
                at = datetime.fromisoformat(text.replace("Z", "+00:00"))
                window = next((name for start, end, name in self.windows
                               if start - timedelta(milliseconds=5) <= at <= end + timedelta(milliseconds=5)), None)
                return f"time:{window}" if window else text
            if UUID.fullmatch(text):
                return others.setdefault(text, f"id#{len(others)}")
            return re.sub(self.token, "TOKEN", text, flags=re.IGNORECASE)

        def walk(node: Any) -> Any:
            if isinstance(node, dict):
                return {walk(key): "measured" if key in MEASURED and item is not None else walk(item)
                        for key, item in node.items()}
            if isinstance(node, list | tuple):
                return [walk(item) for item in node]
            return label(node) if isinstance(node, str) else node

        return walk(value)


MEASURED = frozenset({"rows_per_second", "estimated_seconds_left"})
"""An import's pace as measured while it ran: a function of time, like the times A's own actions produced."""
TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _csv(value: str) -> str:
    return '"' + value.replace('"', '""') + '"'


def answer(response: httpx.Response) -> dict[str, Any]:
    body = response.json() if response.content else None
    return {"status": response.status_code, "etag": response.headers.get("ETag"), "body": body}


def listing(items: list[dict[str, Any]], *, engagement: bool) -> dict[str, Any]:
    """A list of contacts as compared: ordered by person (contact ids, hence the id order and ties in the
    engagement order, are random per run), with the order of the engagement keys when sorted by them."""
    listed: dict[str, Any] = {"items": sorted(items, key=lambda item: item["email"])}
    if engagement:
        listed["engagement_order"] = [(i["insights"]["events_attended"], i["insights"]["tickets_purchased"],
                                       i["insights"]["last_active_at"]) for i in items]
    return listed


async def pages(client: httpx.AsyncClient, params: dict[str, str]) -> dict[str, Any]:
    """Every page of a list (how many pages, the items, or the first error)."""
    items: list[Any] = []
    count, cursor = 0, None
    while True:
        response = await client.get("/v1/contacts", params={**params, **({"cursor": cursor} if cursor else {})})
        count += 1
        if response.status_code != 200:
            return {"error": answer(response), "pages": count}
        page = response.json()
        items += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            return {**listing(items, engagement=params.get("sort") == "engagement"), "pages": count}


@asynccontextmanager
async def mcp_session(url: str, auth: dict[str, str]) -> Any:
    client = httpx2.AsyncClient(headers=auth, timeout=30)
    async with (
        client,
        streamable_http_client(f"{url}/mcp/", http_client=client) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        yield session


def expected_with_others(alone: list[Any], mixed: list[Any]) -> list[Any]:
    """What the interleaved run must observe: A's steps as alone; after B's, the look of A's step before."""
    expected, last_look = [], None
    steps = iter(alone)
    for index, _, _ in mixed:
        if index is None:
            expected.append([None, None, last_look])
        else:
            step = next(steps)
            expected.append(step)
            last_look = step[2]
    return expected


def first_difference(expected: Any, actual: Any, path: str = "") -> str | None:
    """Where two observations first differ, and how."""
    if isinstance(expected, dict) and isinstance(actual, dict):
        for key in sorted(set(expected) | set(actual), key=str):
            found = first_difference(expected.get(key, "<absent>"), actual.get(key, "<absent>"), f"{path}.{key}")
            if found:
                return found
        return None
    if isinstance(expected, list) and isinstance(actual, list) and len(expected) == len(actual):
        for number, (want, got) in enumerate(zip(expected, actual, strict=True)):
            found = first_difference(want, got, f"{path}[{number}]")
            if found:
                return found
        return None
    return None if expected == actual else f"{path}: expected {expected!r}, observed {actual!r}"


@pytest.mark.timeout(600 + 400 * EXAMPLES)
@settings(max_examples=max(EXAMPLES, 1), deadline=None, database=None,
          phases=(Phase.explicit, *((Phase.generate,) if EXAMPLES else ()), *((Phase.shrink,) if SHRINK else ())),
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@example(program=ISSUE_EXAMPLE)
@given(program=programs())
async def test_what_organizer_a_observes_does_not_depend_on_organizer_b(
    running_services: dict[str, ServiceProcess], migrated: Isolation, program: Program
) -> None:
    alone = await World(migrated, running_services).execute(program, with_others=False)
    mixed = await World(migrated, running_services).execute(program, with_others=True)

    expected = expected_with_others([list(step) for step in alone], mixed)
    actual = [list(step) for step in mixed]
    assert actual == expected, f"{program}\nfirst difference at {first_difference(expected, actual)}"
