"""Session servers (Tansu, PostgreSQL), per-test isolation, migrations and the four services as processes."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Generator, Iterator
from pathlib import Path

import pytest

from ops.catalog import SERVICES
from ops.local_broker import BrokerError, start_broker
from tests.support.databases import NoDatabase, session_database
from tests.support.isolation import Isolation
from tests.support.ports import free_port
from tests.support.processes import SERVICE_PROCESSES, ServiceProcess


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A memory-only Tansu broker on a free loopback port for the whole session: ``"127.0.0.1:PORT"``."""
    log_path = tmp_path_factory.mktemp("tansu") / "tansu.log"
    for attempt in range(3):  # a free port can be taken before Tansu binds it
        try:
            broker = start_broker(port=free_port(), log_path=log_path)
            break
        except BrokerError:
            if attempt == 2:
                raise
    try:
        yield broker.bootstrap_servers
    finally:
        broker.stop()


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    """SQLAlchemy URL of the session's PostgreSQL (see ``tests.support.databases`` for the order tried)."""
    with contextlib.ExitStack() as stack:
        try:
            url, _ = session_database(stack)
        except NoDatabase as error:
            pytest.skip(str(error))
        yield url


@pytest.fixture
def isolation(database_url: str, kafka_bootstrap: str) -> Iterator[Isolation]:
    """A unique id for this test: topic prefix ``t<id>.``, schemas ``t<id>_<service>`` (dropped afterwards),
    consumer groups and free HTTP ports; ``isolation.env()`` is the services' environment."""
    isolated = Isolation(database_url=database_url, kafka_bootstrap=kafka_bootstrap)
    yield isolated
    isolated.drop_schemas()


@pytest.fixture
def migrated(isolation: Isolation) -> Isolation:
    """``isolation`` with all four services' migrations applied to its schemas."""
    isolation.migrate()
    return isolation


@pytest.fixture
async def running_services(
    migrated: Isolation, request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[dict[str, ServiceProcess]]:
    """The four services as processes in ``migrated``'s isolation, all ready; stopped (SIGTERM) afterwards.
    Logs go to ``<tmp_path>/<service>.log``; a failed test's report ends with their last lines."""
    processes = {
        service: ServiceProcess.for_isolation(migrated, service, log_dir=tmp_path) for service in SERVICES
    }
    request.node.stash[SERVICE_PROCESSES] = processes
    try:
        started = await asyncio.gather(*(p.start() for p in processes.values()), return_exceptions=True)
        failures = [result for result in started if isinstance(result, BaseException)]
        if failures:  # raised only once every start has finished, so none is left half-started
            raise failures[0]
        yield processes
    finally:
        await asyncio.gather(*(process.stop() for process in processes.values()), return_exceptions=True)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Append each service's log tail to the report of a test that failed while services ran."""
    report = yield
    processes = item.stash.get(SERVICE_PROCESSES, None)
    if processes and report.failed and report.when in ("setup", "call"):
        for name, process in processes.items():
            report.sections.append((f"{name} log, last lines ({process.log_path})", process.log_tail()))
    return report
