"""``contacts``: the operational command line (tokens, migrations, topics, event schemas and the AsyncAPI document,
read-model rebuilds, consumer lag, dead letters, the local dev stack)."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from pydantic import ValidationError

from ops import dlq_command, lag_command
from ops.catalog import SCHEMAS, migrate
from shared.auth import mint_attendee_token, mint_token
from shared.config import PlatformSettings
from shared.lifecycle import create_topics
from shared.schemas import write_schemas
from shared.topics import ALL_TOPICS, CONSUMING_SERVICES


def _token(args: argparse.Namespace) -> int:
    platform = PlatformSettings()
    ttl = args.ttl if args.ttl is not None else platform.token_ttl_seconds
    secret = platform.auth_secret.get_secret_value()
    try:
        if args.attendee is not None:
            if args.user is not None:
                raise ValueError("--user names who acts for an organizer: not with --attendee")
            print(mint_attendee_token(secret=secret, email=args.attendee, ttl_seconds=ttl))
        else:
            print(mint_token(secret=secret, organizer_id=args.organizer, ttl_seconds=ttl, user=args.user))
    except ValueError as error:
        print(f"contacts token: {error}", file=sys.stderr)
        return 2
    return 0


def _migrate(args: argparse.Namespace) -> int:
    platform = PlatformSettings()
    for service in args.services or SCHEMAS:
        schema = migrate(service, platform=platform)
        print(f"{service}: migrated schema {schema!r}")
    return 0


def _topics(_: argparse.Namespace) -> int:
    platform = PlatformSettings()
    created = asyncio.run(create_topics(platform, platform.kafka_clients("topics")))
    print(f"created {len(created)} of {len(ALL_TOPICS)} topics" + "".join(f"\n  {name}" for name in created))
    return 0


def _schemas(args: argparse.Namespace) -> int:
    written = write_schemas(args.out)
    print(f"wrote {len(written)} schemas to {args.out}")
    return 0


def _rebuild(args: argparse.Namespace) -> int:
    from ops.catalog import load_settings
    from services.profiles.rebuild import RebuildError, rebuild
    from shared.logging import configure_logging

    settings = load_settings("profiles")
    platform = settings.platform
    configure_logging(level=platform.log_level, fmt=platform.log_format, service="profiles-rebuild")
    try:
        summary = asyncio.run(
            rebuild(settings, target_schema=args.target_schema, replace=args.replace, swap=args.swap)
        )
    except (RebuildError, ValueError) as error:
        print(f"contacts rebuild: {error}", file=sys.stderr)
        return 1
    print("\n".join(summary.lines()))
    return 0


def _republish(args: argparse.Namespace) -> int:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from ops.catalog import load_settings
    from services.identity.republish import count_events, republish
    from shared.db import create_engine
    from shared.topics import CONTACT_EVENTS

    settings = load_settings("identity")
    platform = settings.platform

    async def run() -> int:
        engine = create_engine(platform.database_url, schema=settings.db_schema)
        try:
            total = await count_events(engine, from_position=args.from_position, contact_id=args.contact)
            columns = (TextColumn("contact events"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
            with Progress(*columns, transient=not sys.stderr.isatty(), console=None) as bar:
                task = bar.add_task("republish", total=total)
                return await republish(
                    engine, bootstrap_servers=platform.kafka_bootstrap_servers,
                    topic=CONTACT_EVENTS.qualified(platform.topic_prefix), from_position=args.from_position,
                    contact_id=args.contact, progress=lambda done: bar.update(task, completed=done),
                )
        finally:
            await engine.dispose()

    published = asyncio.run(run())
    print(f"republished {published:,} contact events from identity's event store")
    return 0


def _asyncapi(args: argparse.Namespace) -> int:
    from shared.asyncapi import document_yaml

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(document_yaml())
    print(f"wrote {args.out}")
    return 0


def _dev(_: argparse.Namespace) -> int:
    from ops.local_stack import DevSettings, run

    return run(DevSettings())


def _mcp(args: argparse.Namespace) -> int:
    from services.ingest.mcp_server import serve_stdio

    token = args.token or os.environ.get("CONTACTS_TOKEN", "")
    if not token.strip():
        print("contacts mcp: no token: set CONTACTS_TOKEN or pass --token (see 'contacts token')", file=sys.stderr)
        return 2
    asyncio.run(serve_stdio(url=args.url, token=token.strip()))
    return 0


def _positive(value: str) -> int:
    number = int(value)
    if number <= 0:
        raise argparse.ArgumentTypeError("must be a positive number of seconds")
    return number


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="contacts",
        description="Operate Kagibag Contacts. Settings come from CONTACTS_* environment variables.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    token = commands.add_parser("token", help="print a bearer token (signed with CONTACTS_AUTH_SECRET)")
    speaks_for = token.add_mutually_exclusive_group(required=True)
    speaks_for.add_argument("--organizer", help="the organizer_id the token speaks for (organizer routes)")
    speaks_for.add_argument("--attendee", metavar="EMAIL",
                            help="the attendee's verified email (the attendee_email claim; the /v1/me routes)")
    token.add_argument("--user", help="who acts for the organizer (the sub claim; recorded on API changes)")
    token.add_argument("--ttl", type=_positive, help="lifetime (default CONTACTS_TOKEN_TTL_SECONDS)")
    token.set_defaults(handler=_token)

    migrate_cmd = commands.add_parser("migrate", help="apply each service's migrations into its own schema")
    migrate_cmd.add_argument("services", nargs="*", choices=SCHEMAS, metavar="SERVICE",
                             help=f"schemas to migrate (default all: {' '.join(SCHEMAS)})")
    migrate_cmd.set_defaults(handler=_migrate)

    topics = commands.add_parser("topics", help="create every topic that does not exist yet")
    topics.set_defaults(handler=_topics)

    schemas = commands.add_parser("schemas", help="write the JSON Schema of every event, one <TYPE>.json each")
    schemas.add_argument("--out", type=Path, default=Path("docs/schemas"), help="folder (default docs/schemas)")
    schemas.set_defaults(handler=_schemas)

    asyncapi = commands.add_parser("asyncapi", help="write the AsyncAPI 3.0 document of every topic and event")
    asyncapi.add_argument("--out", type=Path, default=Path("docs/asyncapi.yaml"),
                          help="file (default docs/asyncapi.yaml)")
    asyncapi.set_defaults(handler=_asyncapi)

    lag_command.add_parser(commands)
    dlq_command.add_parser(commands, services=CONSUMING_SERVICES)

    mcp = commands.add_parser(
        "mcp", help="serve the MCP tools (import_contacts, check_import_status) over stdio, through the ingest API"
    )
    mcp.add_argument("--url", default="http://127.0.0.1:8001", help="the ingest service (default %(default)s)")
    mcp.add_argument("--token", help="bearer token (default: the CONTACTS_TOKEN environment variable)")
    mcp.set_defaults(handler=_mcp)

    rebuild = commands.add_parser(
        "rebuild", help="rebuild a service's read models by replaying its input topics into a fresh schema"
    )
    rebuild.add_argument("read_model", choices=["profiles"], help="what to rebuild (profiles)")
    rebuild.add_argument("--target-schema",
                         help="schema to rebuild into (default <CONTACTS_PROFILES_DB_SCHEMA>_rebuild)")
    rebuild.add_argument("--replace", action="store_true", help="drop the target schema first if it exists")
    rebuild.add_argument("--swap", action="store_true",
                         help="then make the rebuilt schema the live one (stop the service first); the old one is "
                         "kept as <schema>_replaced_<time>")
    rebuild.set_defaults(handler=_rebuild)

    republish = commands.add_parser(
        "republish", help="publish identity's event store again to the contact log (idempotent for consumers)"
    )
    republish.add_argument("log", choices=["contact-events"], help="what to publish again (contact-events)")
    scope = republish.add_mutually_exclusive_group()
    scope.add_argument("--from", dest="from_position", type=int, default=0, metavar="VERSION",
                       help="start at this position of the event store (the log's version; default: all)")
    scope.add_argument("--contact", metavar="ID", help="only this contact's stream")
    republish.set_defaults(handler=_republish)

    dev = commands.add_parser("dev", help="run the local stack: Tansu, PostgreSQL, the services, the lag monitor")
    dev.set_defaults(handler=_dev)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args))
    except ValidationError as error:
        print(f"contacts {args.command}: invalid settings\n{error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
