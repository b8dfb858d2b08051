from datetime import UTC, datetime, timedelta
from random import Random

from hypothesis import given
from hypothesis import strategies as st

from services.profiles.permission import UNKNOWN, Statement, effective, latest, latest_imported

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


def test_nothing_stated_is_unknown() -> None:
    assert effective(None, None) == UNKNOWN


def test_an_explicit_unsubscribe_survives_a_later_import() -> None:
    explicit = Statement("unsubscribed", at(1), "api:alice")
    imported = Statement("subscribed", at(60), "import-2")
    permission = effective(imported, explicit)
    assert (permission.status, permission.source, permission.changed_by) == ("unsubscribed", "api", "api:alice")


def test_a_later_import_replaces_an_explicit_subscribe() -> None:
    explicit = Statement("subscribed", at(1), "api:alice")
    imported = Statement("unsubscribed", at(2), "import-2")
    assert effective(imported, explicit).status == "unsubscribed"
    assert effective(imported, explicit).source == "import"


def test_a_later_explicit_statement_replaces_an_import() -> None:
    imported = Statement("unsubscribed", at(1), "import-1")
    explicit = Statement("subscribed", at(2), "api:alice")
    assert effective(imported, explicit).status == "subscribed"


statements = st.builds(
    Statement,
    st.sampled_from(["subscribed", "unsubscribed", "unknown"]),
    st.integers(0, 20).map(at),
    st.sampled_from(["import-1", "import-2", "api:alice", "api:bob"]),
)


@given(st.lists(statements, max_size=6), st.randoms())
def test_the_latest_statement_does_not_depend_on_arrival_order(items: list[Statement], rnd: Random) -> None:
    shuffled = list(items)
    rnd.shuffle(shuffled)
    folded = None
    for item in items:
        folded = latest(folded, item)
    refolded = None
    for item in shuffled:
        refolded = latest(refolded, item)
    assert folded == refolded


def test_an_imported_unsubscribe_stands_against_a_later_import_saying_subscribed() -> None:
    opted_out = Statement("unsubscribed", at(1), "import-1")
    old_list = Statement("subscribed", at(60), "import-2")

    imported = latest_imported(latest_imported(None, opted_out), old_list)

    assert imported == opted_out
    assert effective(imported, None).status == "unsubscribed"


def test_after_an_imported_unsubscribe_only_a_later_explicit_subscribe_opts_back_in() -> None:
    imported = latest_imported(Statement("unsubscribed", at(1), "import-1"), Statement("subscribed", at(5), "import-2"))
    assert effective(imported, Statement("subscribed", at(3), "api:alice")).status == "subscribed"
    assert effective(imported, Statement("subscribed", at(0), "api:alice")).status == "unsubscribed"
    later_opt_out = latest_imported(imported, Statement("unsubscribed", at(9), "import-3"))
    assert effective(later_opt_out, Statement("subscribed", at(3), "api:alice")).status == "unsubscribed"


def test_without_an_unsubscribe_the_latest_import_wins() -> None:
    standing = latest_imported(Statement("subscribed", at(1), "i1"), Statement("unknown", at(2), "i2"))
    assert standing is not None and standing.status == "unknown"


@given(st.lists(statements, max_size=6), st.randoms())
def test_the_standing_import_statement_does_not_depend_on_arrival_order(items: list[Statement], rnd: Random) -> None:
    shuffled = list(items)
    rnd.shuffle(shuffled)
    folded = refolded = None
    for item in items:
        folded = latest_imported(folded, item)
    for item in shuffled:
        refolded = latest_imported(refolded, item)
    assert folded == refolded
    if any(item.status == "unsubscribed" for item in items):
        assert folded is not None and folded.status == "unsubscribed"
