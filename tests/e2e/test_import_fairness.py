"""No one waits behind someone else's big import: ingest and identity as processes on Tansu and PostgreSQL, with
pacing windows small enough to show the effect in seconds. Two large imports of two organizers, the second started
once the first is under way, share the bulk lane and take about as long as each other (first come, first served,
the second would wait for all of the first); a small import of a third organizer started meanwhile is
processed while both are still running; ``GET /v1/imports/{id}`` shows each one's place and progress. And the
ordering rule across lanes (README, "Lanes"): a person in a bulk import who buys a ticket at the same moment ends
the same whichever is applied first."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from shared.auth import mint_token
from shared.events import TicketPurchasedV1
from tests.support.identity import interaction_message, query, stream
from tests.support.isolation import Isolation
from tests.support.kafka import publish
from tests.support.processes import SERVICE_PROCESSES, ServiceProcess
from tests.support.waiting import wait_until

pytestmark = pytest.mark.e2e

ROWS = 24_000
PACING = {
    "CONTACTS_INGEST_PUBLISH_BATCH_SIZE": "1000",
    "CONTACTS_INGEST_WINDOW_ROWS": "4000",
    "CONTACTS_INGEST_TOTAL_WINDOW_ROWS": "6000",
    "CONTACTS_INGEST_PACING_POLL_SECONDS": "0.2",
}
"""A lane window of a few identity batches: the imports in flight share it, so their rows reach identity in
their shares."""


class Stack:
    def __init__(self, isolation: Isolation, ingest: ServiceProcess, identity: ServiceProcess) -> None:
        self.isolation, self.ingest, self.identity = isolation, ingest, identity
        self.client = httpx.AsyncClient(base_url=ingest.base_url, timeout=30)

    def auth(self, organizer: str) -> dict[str, str]:
        token = mint_token(secret=self.isolation.auth_secret, organizer_id=organizer, ttl_seconds=600)
        return {"Authorization": f"Bearer {token}"}

    async def upload(self, organizer: str, content: str) -> str:
        response = await self.client.post("/v1/imports", params={"auto_start": "true"}, headers=self.auth(organizer),
                                          files={"file": ("c.csv", content.encode(), "text/csv")})
        assert response.status_code == 202, response.text
        return str(response.json()["import_id"])

    async def view(self, organizer: str, import_id: str) -> dict[str, Any]:
        response = await self.client.get(f"/v1/imports/{import_id}", headers=self.auth(organizer))
        assert response.status_code == 200, response.text
        return dict(response.json())

    async def finished(self, organizer: str, import_id: str, *, timeout: float = 60) -> dict[str, Any]:  # noqa: ASYNC109
        async def done() -> dict[str, Any] | None:
            view = await self.view(organizer, import_id)
            return view if view["status"] in ("processed", "error") else None

        return await wait_until(done, timeout=timeout, interval=0.1, description=f"{import_id} finished")


@pytest.fixture(scope="module")
async def stack(database_url: str, kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory,
                request: pytest.FixtureRequest) -> AsyncIterator[Stack]:
    isolation = Isolation(database_url=database_url, kafka_bootstrap=kafka_bootstrap)
    isolation.migrate(("ingest", "identity"))
    logs = tmp_path_factory.mktemp("fairness")
    ingest = ServiceProcess("ingest", env={**isolation.env(), **PACING}, base_url=isolation.base_url("ingest"),
                            log_path=logs / "ingest.log")
    identity = ServiceProcess.for_isolation(isolation, "identity", log_dir=logs)
    try:
        await asyncio.gather(ingest.start(), identity.start())
        stack = Stack(isolation, ingest, identity)
        yield stack
        await stack.client.aclose()
    finally:
        await asyncio.gather(ingest.stop(), identity.stop(), return_exceptions=True)
        isolation.drop_schemas()


@pytest.fixture(autouse=True)
def service_logs(stack: Stack, request: pytest.FixtureRequest) -> None:
    """A failed test's report ends with the services' log tails."""
    request.node.stash[SERVICE_PROCESSES] = {"ingest": stack.ingest, "identity": stack.identity}


def csv_of(emails: list[str]) -> str:
    return "email,first_name,last_name\n" + "".join(f"{email},Imported,Importer\n" for email in emails)


def people(organizer: str, count: int) -> list[str]:
    return [f"p{n}@{organizer}.example" for n in range(count)]


def seconds(view: dict[str, Any]) -> float:
    started, finished = (datetime.fromisoformat(view[key]) for key in ("started_at", "finished_at"))
    return (finished - started).total_seconds()


async def test_two_large_imports_share_the_bulk_lane_and_a_small_import_overtakes_both(stack: Stack) -> None:
    run = uuid.uuid4().hex[:6]
    org_a, org_b, org_c = f"a{run}", f"b{run}", f"c{run}"
    first = await stack.upload(org_a, csv_of(people(org_a, ROWS)))

    async def under_way() -> dict[str, Any] | None:  # first come, first served: by now all of it would be out
        view = await stack.view(org_a, first)
        return view if view["processed_rows"] >= 1000 else None

    early = await wait_until(under_way, timeout=30, interval=0.1)
    assert early["status"] == "parsing", "paced: the file is handed on as identity answers, not all at once"
    assert early["place"] == {"lane": "bulk", "position": 1, "running": 1}
    assert early["progress"]["rows_expected"] == ROWS and early["progress"]["rows_per_second"] > 0
    assert early["progress"]["estimated_seconds_left"] > 0

    second = await stack.upload(org_b, csv_of(people(org_b, ROWS)))
    a_at_start = (await stack.view(org_a, first))["processed_rows"]
    small = await stack.upload(org_c, csv_of(people(org_c, 10)))
    small_done = await stack.finished(org_c, small, timeout=20)
    a_then, b_then = await stack.view(org_a, first), await stack.view(org_b, second)
    assert (small_done["status"], small_done["created"]) == ("processed", 10)
    assert a_then["status"] != "processed" and b_then["status"] != "processed", "the small one overtook both"
    assert b_then["place"] == {"lane": "bulk", "position": 1, "running": 1}  # its organizer's imports only

    halfway = a_at_start + (ROWS - a_at_start) // 2

    async def a_halfway() -> int | None:
        view = await stack.view(org_a, first)
        return int(view["processed_rows"]) if view["processed_rows"] >= halfway else None

    a_mid = await wait_until(a_halfway, timeout=60, interval=0.05)
    b_mid = (await stack.view(org_b, second))["processed_rows"]
    done_a = await stack.finished(org_a, first)
    done_b = await stack.finished(org_b, second)
    assert (done_a["status"], done_a["created"], done_b["status"], done_b["created"]) == (
        "processed", ROWS, "processed", ROWS
    )
    assert done_a["place"] is None and done_a["progress"]["estimated_seconds_left"] == 0
    # equal shares while both ran: halfway through the rest of the first, the second had about as many rows
    # answered as the first since it started (first come, first served: few, the first's rows being ahead)
    assert b_mid > 0.4 * (a_mid - a_at_start), (a_at_start, a_mid, b_mid)
    took_a, took_b = seconds(done_a), seconds(done_b)
    assert 1 / 1.5 < took_b / took_a < 1.5, (took_a, took_b)


async def test_a_person_in_a_bulk_import_who_buys_a_ticket_at_the_same_moment_ends_the_same_either_way(
    stack: Stack,
) -> None:
    """The rule: an organizer's import writes that organizer's layer, the person's ticket the canonical one. Ada is
    the file's first row, answered before her ticket comes; Bob its last, handed on (paced) long after his ticket
    was applied. Both end alike: the ticket's names canonical, the import's in the organizer's layer (and no
    trace of either in the other's)."""
    run = uuid.uuid4().hex[:6]
    organizer, ticketing = f"x{run}", f"t{run}"
    ada, bob = f"ada@{run}.example", f"bob@{run}.example"
    emails = [ada, *people(organizer, 11_998), bob]
    import_id = await stack.upload(organizer, csv_of(emails))

    async def ada_answered() -> bool:
        response = await stack.client.get(f"/v1/imports/{import_id}/rows", headers=stack.auth(organizer),
                                          params={"limit": 1})
        return bool(response.json()["items"])

    await wait_until(ada_answered, timeout=30, interval=0.05)
    now = datetime.now(UTC)
    tickets = [
        TicketPurchasedV1(email=email, first_name="Buyer", last_name="Ticketed", kagibag_event_id="ev-1",
                          order_id=f"o-{email}", ticket_count=1, organizer_id=ticketing, occurred_at=now)
        for email in (ada, bob)
    ]
    await publish(stack.isolation.kafka_bootstrap, [interaction_message(stack.isolation, t) for t in tickets])
    done = await stack.finished(organizer, import_id)
    assert (done["status"], done["created"]) == ("processed", len(emails))

    def kinds(email: str) -> list[str]:
        return ["import" if payload.get("source", {}).get("kind") == "import" else "ticket"
                for _, event_type, payload in stream(stack.isolation, email) if "interaction" not in event_type]

    assert kinds(ada)[0] == "import" and kinds(bob)[0] == "ticket", "both orders happened"
    for email in (ada, bob):
        canonical = query(stack.isolation, f"SELECT first_name, last_name FROM contacts WHERE email = '{email}'")
        layers = {organizer_id: names for organizer_id, *names in query(
            stack.isolation, "SELECT l.organizer_id, l.first_name, l.last_name FROM contact_layers l JOIN contacts c "
                             f"USING (contact_id) WHERE c.email = '{email}'")}
        assert canonical == [("Buyer", "Ticketed")], email
        assert layers[organizer] == ["Imported", "Importer"], email
        assert layers.get(ticketing, [None, None]) == [None, None], email
