"""``contacts lag``: the consumer lag of every group as the lag monitor reports it, and an exit code for scripts."""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
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


def add_parser(commands: Any) -> None:
    """The ``lag`` subcommand of ``contacts``."""
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

