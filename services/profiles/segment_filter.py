"""The segment filter grammar, free of I/O: a filter's JSON parsed into a tree (``parse``), the tree back to its
normalized JSON (``to_json``: what a segment stores and shows) and compiled to one SQL condition over the caller's
``organizer_contacts`` rows (``compile_filter``: every leaf reads a column of that row, behind an index).

    filter := {"and": [filter, ...]} | {"or": [filter, ...]} | {"not": filter}
            | {"tag": TAG} | {"permission": "subscribed" | "unsubscribed" | "unknown"} | {"company": NAME}
            | {"attended": EVENT_ID} | {"registered": EVENT_ID} | {"attended_at_least": N}
            | {"last_active": {"from": ISO 8601?, "to": ISO 8601?}} | {"import_id": IMPORT_ID}

Rules: every filter is an object with exactly one of these keys. A tag is normalized like the contacts API's tags
(case-insensitive); ``company`` compares case-insensitively; ``attended``: checked in at the event; ``registered``:
has a ticket for it, a waitlist place or a check-in; ``last_active``: the latest interaction with the organizer's
events at or after ``from`` and before ``to`` (at least one, with a time zone); ``not`` is true where its filter is
not (a contact without a company is "not company X"). At most ``MAX_NODES`` filters, nested ``MAX_DEPTH`` deep.
An invalid filter raises ``FilterError`` naming where (``("filter", "and", 1, "tag")``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from itertools import count
from typing import Any, Literal, get_args

from services.profiles.relationship import normalize_label
from shared.events import EmailPermission

MAX_DEPTH = 8
MAX_NODES = 100
MAX_TEXT = 200
MAX_ATTENDED = 100_000
Path = tuple[str | int, ...]


class FilterError(ValueError):
    def __init__(self, path: Path, message: str) -> None:
        super().__init__(f"{'.'.join(map(str, path))}: {message}")
        self.path = path
        self.message = message


@dataclass(frozen=True)
class AllOf:
    filters: tuple[Node, ...]


@dataclass(frozen=True)
class AnyOf:
    filters: tuple[Node, ...]


@dataclass(frozen=True)
class Not:
    filter: Node


@dataclass(frozen=True)
class Leaf:
    """A test of one value: ``kind`` is the JSON key, ``value`` the normalized operand."""

    kind: Literal["tag", "permission", "company", "attended", "registered", "attended_at_least", "import_id"]
    value: str | int


@dataclass(frozen=True)
class LastActive:
    start: datetime | None = None
    end: datetime | None = None


Node = AllOf | AnyOf | Not | Leaf | LastActive
TEXT_LEAVES = ("tag", "company", "attended", "registered", "import_id")
KEYS = ("and", "or", "not", *TEXT_LEAVES, "permission", "attended_at_least", "last_active")


@dataclass
class _Budget:
    nodes: int = 0


def parse(raw: object, path: Path = ("filter",)) -> Node:
    """The tree of a filter's JSON; ``FilterError`` for anything the grammar does not allow."""
    return _parse(raw, path, depth=1, budget=_Budget())


def _parse(raw: object, path: Path, *, depth: int, budget: _Budget) -> Node:
    budget.nodes += 1
    if budget.nodes > MAX_NODES:
        raise FilterError(path, f"a filter can combine at most {MAX_NODES} filters")
    if depth > MAX_DEPTH:
        raise FilterError(path, f"filters can be nested at most {MAX_DEPTH} deep")
    if not isinstance(raw, Mapping) or len(raw) != 1:
        raise FilterError(path, f"give an object with exactly one of: {', '.join(KEYS)}")
    ((key, value),) = raw.items()
    here = (*path, key)
    if key in ("and", "or"):
        if not isinstance(value, list) or not value:
            raise FilterError(here, "give a non-empty list of filters")
        parts = tuple(_parse(item, (*here, i), depth=depth + 1, budget=budget) for i, item in enumerate(value))
        return AllOf(parts) if key == "and" else AnyOf(parts)
    if key == "not":
        return Not(_parse(value, here, depth=depth + 1, budget=budget))
    if key in TEXT_LEAVES:
        return Leaf(key, _text(value, here, tag=key == "tag"))  # type: ignore[arg-type]
    if key == "permission":
        if value not in get_args(EmailPermission):
            raise FilterError(here, f"must be one of: {', '.join(get_args(EmailPermission))}")
        return Leaf("permission", value)
    if key == "attended_at_least":
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_ATTENDED:
            raise FilterError(here, f"must be a whole number from 0 to {MAX_ATTENDED}")
        return Leaf("attended_at_least", value)
    if key == "last_active":
        return _last_active(value, here)
    raise FilterError(here, f"unknown filter {key!r}: use one of {', '.join(KEYS)}")


def _text(value: object, path: Path, *, tag: bool) -> str:
    if not isinstance(value, str) or not value.strip():
        raise FilterError(path, "must be a non-blank string")
    if len(value) > MAX_TEXT:
        raise FilterError(path, f"must be at most {MAX_TEXT} characters")
    if tag:
        try:
            return normalize_label(value)
        except ValueError as error:
            raise FilterError(path, str(error)) from error
    return value.strip()


def _last_active(value: object, path: Path) -> LastActive:
    if not isinstance(value, Mapping) or not value or set(value) - {"from", "to"}:
        raise FilterError(path, 'give an object with "from", "to" or both')
    bounds: dict[str, datetime | None] = {}
    for name in ("from", "to"):
        given = value.get(name)
        if given is None:
            bounds[name] = None
            continue
        try:
            at = datetime.fromisoformat(given) if isinstance(given, str) else None
        except ValueError:
            at = None
        if at is None:
            raise FilterError((*path, name), "must be an ISO 8601 time, e.g. 2026-03-01T00:00:00Z")
        if at.tzinfo is None:
            raise FilterError((*path, name), "give a time zone (e.g. 2026-03-01T00:00:00Z)")
        bounds[name] = at
    start, end = bounds["from"], bounds["to"]
    if start is None and end is None:
        raise FilterError(path, 'give "from", "to" or both')
    if start is not None and end is not None and start >= end:
        raise FilterError((*path, "to"), 'must be later than "from"')
    return LastActive(start, end)


def to_json(node: Node) -> dict[str, Any]:
    """The normalized JSON of a tree: ``parse(to_json(t)) == t``."""
    if isinstance(node, AllOf | AnyOf):
        return {"and" if isinstance(node, AllOf) else "or": [to_json(part) for part in node.filters]}
    if isinstance(node, Not):
        return {"not": to_json(node.filter)}
    if isinstance(node, LastActive):
        bounds = {"from": node.start, "to": node.end}
        return {"last_active": {name: at.isoformat() for name, at in bounds.items() if at is not None}}
    return {node.kind: node.value}


@dataclass(frozen=True)
class Condition:
    """SQL over ``organizer_contacts o`` and its bound parameters (named ``seg_<n>``)."""

    sql: str
    params: dict[str, Any] = field(default_factory=dict)


_ARRAYS = {"tag": "o.tags", "attended": "o.attended_events", "registered": "o.registered_events",
           "import_id": "o.import_ids"}


def compile_filter(node: Node) -> Condition:
    params: dict[str, Any] = {}
    names = count()

    def bind(value: Any) -> str:
        name = f"seg_{next(names)}"
        params[name] = value
        return f":{name}"

    def sql(n: Node) -> str:
        if isinstance(n, AllOf | AnyOf):
            joiner = " AND " if isinstance(n, AllOf) else " OR "
            return "(" + joiner.join(sql(part) for part in n.filters) + ")"
        if isinstance(n, Not):
            return f"(({sql(n.filter)}) IS NOT TRUE)"  # unknown (null) values are "not" too
        if isinstance(n, LastActive):
            tests = []
            if n.start is not None:
                tests.append(f"o.last_active_at >= {bind(n.start)}")
            if n.end is not None:
                tests.append(f"o.last_active_at < {bind(n.end)}")
            return "(" + " AND ".join(tests) + ")"
        if n.kind in _ARRAYS:
            return f"{_ARRAYS[n.kind]} @> CAST({bind([n.value])} AS text[])"
        if n.kind == "permission":
            return f"o.email_permission = {bind(n.value)}"
        if n.kind == "company":
            return f"lower(o.company) = lower({bind(n.value)})"
        return f"o.events_attended >= {bind(n.value)}"

    return Condition(sql(node), params)
