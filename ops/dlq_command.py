"""``contacts dlq``: dead letters counted, shown and re-driven to their original topics."""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import sys
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.table import Table


def _printable(value: bytes | None) -> str | None:
    if value is None:
        return None
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return "base64:" + base64.b64encode(value).decode()


def _letter_json(letter: Any, redriven_at: Any) -> dict[str, Any]:
    return {
        "dead_letter": letter.coordinates,
        "failed_at": letter.dlq.get("dlq_failed_at"),
        "error_code": letter.error_code,
        "error": letter.dlq.get("dlq_error"),
        "original": {
            "topic": letter.original_topic,
            "partition": letter.dlq.get("dlq_original_partition"),
            "offset": letter.dlq.get("dlq_original_offset"),
        },
        "key": _printable(letter.key),
        "headers": {key: _printable(value) for key, value in letter.headers},
        "value": _printable(letter.value),
        "redriven_at": redriven_at.isoformat() if redriven_at else None,
    }


async def _dlq(args: argparse.Namespace) -> int:
    from ops import dead_letters as dlq
    from ops.catalog import load_settings
    from shared.db import create_engine
    from shared.producer import create_producer
    from shared.topics import CONSUMING_SERVICES

    settings = load_settings("ops")
    platform = settings.platform
    services = [args.service] if isinstance(args.service, str) else args.service or list(CONSUMING_SERVICES)
    letters = await dlq.read_dead_letters(
        platform.kafka_bootstrap_servers, dlq.dead_letter_topics(platform.topic_prefix, services)
    )
    engine = create_engine(platform.database_url, schema=settings.db_schema)
    try:
        try:
            redriven = await dlq.redriven_coordinates(engine)
        except Exception as error:
            if args.action == "redrive":
                print(f"contacts dlq: cannot read {settings.db_schema}.redriven_dead_letters ({type(error).__name__});"
                      " run 'contacts migrate' first", file=sys.stderr)
                return 2
            print(f"(re-driven dead letters unknown: {type(error).__name__}; run 'contacts migrate')", file=sys.stderr)
            redriven = {}
        if args.action == "list":
            counts = dlq.count(letters, set(redriven))
            if args.json:
                print(json.dumps([c.__dict__ for c in counts], indent=2))
            else:
                table = Table(title=f"dead letters ({len(letters)})", title_justify="left")
                for column in ("dead-letter topic", "original topic", "error code", "count", "re-driven"):
                    table.add_column(column)
                for c in counts:
                    table.add_row(c.topic, c.original_topic, c.error_code, str(c.count), str(c.redriven))
                Console().print(table)
            return 0
        chosen = [
            letter for letter in letters
            if (not args.error_code or letter.error_code in args.error_code)
            and (not args.offset or letter.offset in args.offset)
        ]
        if args.action == "show":
            shown = chosen[-args.limit:]
            documents = [
                _letter_json(letter, redriven.get((letter.topic, letter.partition, letter.offset)))
                for letter in shown
            ]
            if args.json:
                print(json.dumps(documents, indent=2, ensure_ascii=False))
            else:
                for document in documents:
                    print(json.dumps(document, indent=2, ensure_ascii=False))
            if len(chosen) > len(shown):
                print(f"({len(chosen) - len(shown)} older ones not shown: --limit)", file=sys.stderr)
            return 0
        # redrive
        if not args.all and not args.offset:
            print("contacts dlq redrive: choose the dead letters: --offset N (repeatable) or --all", file=sys.stderr)
            return 2
        if args.offset and (missing := sorted(set(args.offset) - {letter.offset for letter in chosen})):
            print(f"contacts dlq redrive: no such dead letter at offset(s) {missing}", file=sys.stderr)
            return 2
        if args.dry_run:
            for letter in chosen:
                done = redriven.get((letter.topic, letter.partition, letter.offset))
                state = f"already re-driven at {done.isoformat()}" if done else "would be re-driven"
                print(f"{letter.coordinates} -> {letter.original_topic}: {state}")
            return 0
        producer = create_producer(platform.kafka_bootstrap_servers)
        await producer.start()
        try:
            result = await dlq.redrive(chosen, engine=engine, producer=producer)
        finally:
            await producer.stop()
        for letter in result.redriven:
            print(f"re-driven {letter.coordinates} -> {letter.original_topic}")
        for letter in result.skipped:
            print(f"skipped   {letter.coordinates}: already re-driven (or no original topic)")
        print(f"{len(result.redriven)} re-driven, {len(result.skipped)} skipped")
        return 0
    finally:
        await engine.dispose()


def run_dlq(args: argparse.Namespace) -> int:
    return asyncio.run(_dlq(args))


def add_parser(commands: Any, *, services: Sequence[str]) -> None:
    """The ``dlq`` subcommand of ``contacts``."""
    dlq = commands.add_parser("dlq", help="dead letters: count, show, re-drive")
    actions = dlq.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="dead letters per topic and error code")
    show = actions.add_parser("show", help="dead letters with their original headers, value and error")
    redrive = actions.add_parser(
        "redrive", help="republish chosen dead letters to their original topic (each at most once, ever)"
    )
    for sub in (listing, show):
        sub.add_argument("--service", action="append", choices=services,
                         help="whose dead-letter topic (repeatable; default all)")
        sub.add_argument("--json", action="store_true", help="JSON output")
    redrive.add_argument("--service", required=True, choices=services, help="whose dead-letter topic")
    for sub in (listing, show, redrive):
        sub.set_defaults(handler=run_dlq)
    for sub in (show, redrive):
        sub.add_argument("--error-code", action="append", help="only this dlq_error_code (repeatable)")
        sub.add_argument("--offset", action="append", type=int, help="only the dead letter at this offset of the "
                         "dead-letter topic (repeatable)")
    show.add_argument("--limit", type=int, default=20, help="the newest N (default 20)")
    redrive.add_argument("--all", action="store_true", help="every dead letter matching --error-code")
    redrive.add_argument("--dry-run", action="store_true", help="say what would be re-driven, publish nothing")
