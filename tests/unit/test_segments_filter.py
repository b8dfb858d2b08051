"""The segment filter grammar: every filter the grammar allows parses to a tree whose normalized JSON parses back to
the same tree and compiles to SQL whose parameters are all bound; anything else is refused naming where."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.profiles.segment_filter import (
    MAX_DEPTH,
    MAX_NODES,
    AllOf,
    FilterError,
    LastActive,
    Leaf,
    Not,
    compile_filter,
    parse,
    to_json,
)

TEXT = st.text(alphabet="abcXYZ -_é", min_size=1, max_size=12).filter(lambda s: s.strip())
TIMES = st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2030, 1, 1), timezones=st.just(UTC))
leaves = st.one_of(
    st.builds(lambda v: {"tag": v}, TEXT),
    st.builds(lambda v: {"permission": v}, st.sampled_from(["subscribed", "unsubscribed", "unknown"])),
    st.builds(lambda v: {"company": v}, TEXT),
    st.builds(lambda v: {"attended": v}, TEXT),
    st.builds(lambda v: {"registered": v}, TEXT),
    st.builds(lambda v: {"attended_at_least": v}, st.integers(0, 50)),
    st.builds(lambda v: {"import_id": v}, TEXT),
    st.builds(lambda t: {"last_active": {"from": t.isoformat()}}, TIMES),
)
filters = st.recursive(
    leaves,
    lambda inner: st.one_of(
        st.builds(lambda fs: {"and": fs}, st.lists(inner, min_size=1, max_size=3)),
        st.builds(lambda fs: {"or": fs}, st.lists(inner, min_size=1, max_size=3)),
        st.builds(lambda f: {"not": f}, inner),
    ),
    max_leaves=12,
)


@given(filters)
def test_a_valid_filter_round_trips_through_its_normalized_json_and_compiles(raw: dict[str, Any]) -> None:
    tree = parse(raw)
    assert parse(to_json(tree)) == tree
    condition = compile_filter(tree)
    assert set(re.findall(r":(seg_\d+)", condition.sql)) == set(condition.params)
    assert condition.sql.count("(") == condition.sql.count(")")


def test_the_vip_attendees_segment() -> None:
    tree = parse({"and": [{"tag": " VIP "}, {"attended": "ev-1"}, {"not": {"permission": "unsubscribed"}}]})
    assert tree == AllOf((Leaf("tag", "vip"), Leaf("attended", "ev-1"), Not(Leaf("permission", "unsubscribed"))))
    condition = compile_filter(tree)
    assert condition.sql == ("(o.tags @> CAST(:seg_0 AS text[]) AND o.attended_events @> CAST(:seg_1 AS text[]) "
                             "AND ((o.email_permission = :seg_2) IS NOT TRUE))")
    assert condition.params == {"seg_0": ["vip"], "seg_1": ["ev-1"], "seg_2": "unsubscribed"}


def test_last_active_takes_either_bound_with_a_zone() -> None:
    assert parse({"last_active": {"to": "2026-03-01T00:00:00Z"}}) == LastActive(end=datetime(2026, 3, 1, tzinfo=UTC))


def _deep(depth: int) -> dict[str, Any]:
    node: dict[str, Any] = {"tag": "x"}
    for _ in range(depth - 1):
        node = {"not": node}
    return node


@pytest.mark.parametrize(("raw", "path", "message"), [
    ("vip", ("filter",), "exactly one of"),
    ({}, ("filter",), "exactly one of"),
    ({"tag": "a", "company": "b"}, ("filter",), "exactly one of"),
    ({"tags": "vip"}, ("filter", "tags"), "unknown filter 'tags'"),
    ({"and": []}, ("filter", "and"), "non-empty list"),
    ({"or": {"tag": "a"}}, ("filter", "or"), "non-empty list"),
    ({"and": [{"tag": "a"}, {"tag": "  "}]}, ("filter", "and", 1, "tag"), "non-blank"),
    ({"not": {"permission": "maybe"}}, ("filter", "not", "permission"), "one of"),
    ({"attended_at_least": -1}, ("filter", "attended_at_least"), "whole number"),
    ({"attended_at_least": True}, ("filter", "attended_at_least"), "whole number"),
    ({"attended": 12}, ("filter", "attended"), "non-blank string"),
    ({"company": "x" * 201}, ("filter", "company"), "at most 200"),
    ({"last_active": {}}, ("filter", "last_active"), '"from", "to"'),
    ({"last_active": {"since": "2026-01-01T00:00:00Z"}}, ("filter", "last_active"), '"from", "to"'),
    ({"last_active": {"from": "yesterday"}}, ("filter", "last_active", "from"), "ISO 8601"),
    ({"last_active": {"from": "2026-01-01T00:00:00"}}, ("filter", "last_active", "from"), "time zone"),
    ({"last_active": {"from": "2026-02-01T00:00:00Z", "to": "2026-01-01T00:00:00Z"}},
     ("filter", "last_active", "to"), "later"),
    (_deep(MAX_DEPTH + 1), ("filter", *(["not"] * MAX_DEPTH)), "nested"),
    ({"or": [{"tag": "a"}] * MAX_NODES}, ("filter", "or", MAX_NODES - 1), f"at most {MAX_NODES}"),
])
def test_an_invalid_filter_is_refused_naming_where(raw: Any, path: tuple[Any, ...], message: str) -> None:
    with pytest.raises(FilterError) as refused:
        parse(raw)
    assert refused.value.path == path
    assert message in refused.value.message
