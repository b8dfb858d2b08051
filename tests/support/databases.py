"""Which PostgreSQL the test session uses: an explicit URL, the local server, embedded, or a container."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path

from ops.local_postgres import embedded_postgres, reachable

LOCAL_TEST_DATABASE = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


class NoDatabase(Exception):
    """No PostgreSQL could be found or started; the message lists every attempt."""


def _embedded(stack: contextlib.ExitStack) -> str:
    folder = Path(tempfile.mkdtemp(prefix="contacts-pg-"))
    stack.callback(shutil.rmtree, folder, ignore_errors=True)
    return stack.enter_context(embedded_postgres(folder / "pgdata", cleanup_mode="delete"))


def _container(stack: contextlib.ExitStack) -> str:
    import docker
    from testcontainers.postgres import PostgresContainer

    docker.from_env().ping()
    container = stack.enter_context(PostgresContainer("postgres:16", driver="psycopg"))
    url: str = container.get_connection_url()
    return url


def session_database(stack: contextlib.ExitStack) -> tuple[str, str]:
    """``(SQLAlchemy URL, where it came from)``; whatever was started is stopped when ``stack`` closes.

    Order: ``CONTACTS_TEST_DATABASE_URL``; 127.0.0.1:5432 database ``test``; embedded-postgres in a temporary
    folder; a testcontainers PostgreSQL when a Docker engine answers."""
    explicit = os.environ.get("CONTACTS_TEST_DATABASE_URL")
    if explicit:
        return explicit, "CONTACTS_TEST_DATABASE_URL"
    if reachable(LOCAL_TEST_DATABASE):
        return LOCAL_TEST_DATABASE, "local server"
    failures = [f"nothing answers at {LOCAL_TEST_DATABASE}"]
    for name, start in (("embedded-postgres", _embedded), ("testcontainers", _container)):
        attempt = contextlib.ExitStack()
        try:
            url = start(attempt)
        except Exception as error:  # try the next way; the reasons are reported together
            attempt.close()
            failures.append(f"{name}: {type(error).__name__}: {error}")
            continue
        stack.push(attempt)
        return url, name
    raise NoDatabase("no PostgreSQL for the tests: " + "; ".join(failures))
