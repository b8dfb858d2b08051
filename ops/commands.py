"""``contacts lag`` and ``contacts dlq``: what the operator commands print and their exit codes."""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import re
import sys
import time
from collections.abc import Sequence
from typing import Any

import httpx
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

EXIT_FAILING = 1
"""``contacts lag``: some group is STALL or STOP."""
EXIT_UNREADABLE = 3
"""``contacts lag``: the monitor could not be reached, or a group's offsets could not be read (ERR)."""

STATUS_STYLE = {"OK": "green", "WARN": "yellow", "STALL": "bold red", "STOP": "bold red", "ERR": "bold magenta"}


# --- contacts lag ------------------------------------------------------------------------------------------------


class MonitorUnreachable(Exception):
    pass


def fetch_lag(url: str, group: str | None) -> dict[str, Any]:
    params = {"group": group} if group else None
    try:
        response = httpx.get(f"{url.rstrip('/')}/v1/lag", params=params, timeout=5.0)
    except httpx.HTTPError as error:
        raise MonitorUnreachable(f"the lag monitor at {url} did not answer ({error}); is it running "
                                 "(make run starts it; or python -m services.monitor)?") from error
    if response.status_code == 404 and group:
        raise MonitorUnreachable(f"consumer group {group!r} is not watched by the monitor at {url}")
    if response.status_code != 200:
        raise MonitorUnreachable(f"the lag monitor at {url} answered {response.status_code}: {response.text[:200]}")
    body: dict[str, Any] = response.json()
    return body


def exit_code(body: dict[str, Any]) -> int:
    statuses = {group["status"] for group in body["groups"]}
    if statuses & {"STALL", "STOP"}:
        return EXIT_FAILING
    if "ERR" in statuses:
        return EXIT_UNREADABLE
    return 0


def _seconds(value: float | None) -> str:
    if value is None:
        return "?"
    if value < 60:
        return f"{value:.1f}"
    minutes, seconds = divmod(int(value), 60)
    return f"{minutes}m{seconds:02d}s" if minutes < 60 else f"{minutes // 60}h{minutes % 60:02d}m"


def short_topic(name: str) -> str:
    """``t1.contacts.import-rows.v1`` -> ``import-rows``: tables stay narrow; ``--json`` has the full names."""
    return re.sub(r"^(.*\.)?contacts\.|\.v\d+$", "", name)


def lag_table(body: dict[str, Any], *, partitions: bool) -> Group:
    """Groups, then (for a lagging or unhealthy group, or all with ``partitions``) each partition."""
    table = Table(title=f"consumer lag ({body['cluster_name']}, polled {body.get('polled_at') or 'never'})",
                  title_justify="left")
    for column in ("group", "service", "status", "lag", "max lag (s)", "detail"):
        table.add_column(column, justify="right" if column in ("lag", "max lag (s)") else "left")
    detail = Table(title="partitions", title_justify="left")
    for column in ("group", "topic", "partition", "committed", "end", "lag", "lag (s)", "status", "reason"):
        detail.add_column(column)
    for group in body["groups"]:
        status = Text(group["status"], style=STATUS_STYLE.get(group["status"], ""))
        note = group["error"] or ""
        if not note and any(p["approximate"] for p in group["partitions"]):
            note = "end offsets approximate (broker reports low ends)"
        table.add_row(group["group"], group["service"] or "-", status, f"{group['sum_lag']:,}",
                      _seconds(group["max_lag_seconds"]), note)
        for p in group["partitions"]:
            if partitions or p["lag"] or p["status"] != "OK":
                committed = "-" if p["committed_offset"] is None else f"{p['committed_offset']:,}"
                detail.add_row(group["group"], short_topic(p["topic"]), str(p["partition"]), committed,
                               f"{p['end_offset']:,}",
                               f"{p['lag']:,}", _seconds(p["lag_seconds"]),
                               Text(p["status"], style=STATUS_STYLE.get(p["status"], "")), p["reason"])
    return Group(table, detail) if detail.row_count else Group(table)


def run_lag(args: argparse.Namespace) -> int:
    console = Console() if sys.stdout.isatty() else Console(width=160)  # piped: no 80-column squeeze
    if not args.watch:
        try:
            body = fetch_lag(args.url, args.group)
        except MonitorUnreachable as error:
            print(f"contacts lag: {error}", file=sys.stderr)
            return EXIT_UNREADABLE
        if args.json:
            print(json.dumps(body, indent=2))
        else:
            console.print(lag_table(body, partitions=args.partitions))
        return exit_code(body)
    code = 0
    with Live(Text("reading the lag monitor…"), console=console, refresh_per_second=4) as live:
        try:
            while True:
                try:
                    body = fetch_lag(args.url, args.group)
                    code = exit_code(body)
                    live.update(Group(lag_table(body, partitions=args.partitions),
                                      Text(f"every {args.interval:g} s; Ctrl-C to stop", style="dim")))
                except MonitorUnreachable as error:
                    code = EXIT_UNREADABLE
                    live.update(Text(str(error), style="bold magenta"))
                time.sleep(args.interval)
        except KeyboardInterrupt:
            pass
    return code


# --- contacts dlq ------------------------------------------------------------------------------------------------


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


def add_parsers(commands: Any, *, services: Sequence[str]) -> None:
    """The ``lag`` and ``dlq`` subcommands of ``contacts``."""
    lag = commands.add_parser(
        "lag", help="consumer lag of every group, from the lag monitor (exit 1 if a group is STALL or STOP)"
    )
    lag.add_argument("--url", default="http://127.0.0.1:8005", help="the lag monitor (default %(default)s)")
    lag.add_argument("--group", help="only this consumer group")
    lag.add_argument("--json", action="store_true", help="print the monitor's JSON instead of a table")
    lag.add_argument("--partitions", action="store_true", help="list every partition, not only lagging ones")
    lag.add_argument("--watch", action="store_true", help="refresh the table until Ctrl-C")
    lag.add_argument("--interval", type=float, default=2.0, help="seconds between refreshes (default 2)")
    lag.set_defaults(handler=run_lag)

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
