"""The publishing scheduler (``services.ingest.fairness``), given/when/then: pacing by unanswered rows, the
interactive lane first, weighted fair shares between organizers and between one organizer's imports, no credit
for waiting; and, simulated against a lane identity answers in publication order, imports finishing in their
shares."""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Callable

from hypothesis import given
from hypothesis import strategies as st

from services.ingest.fairness import Claim, Shares, Windows, forget, may_send, next_turn, served, weights

WINDOWS = Windows(per_import=3000, total=4000)
EVEN = weights({})


def claim(import_id: str, organizer: str | None = None, *, rows: int = 1000, in_flight: int = 0,
          interactive: bool = False) -> Claim:
    return Claim(import_id, organizer or f"org-{import_id}", rows, in_flight, interactive)


def turns(
    claims: list[Claim], count: int, *, weight_of: Callable[[str], float] = EVEN, shares: Shares | None = None
) -> list[str]:
    """Who is served in ``count`` turns when every claim always has room and claims again at once."""
    shares = shares or Shares()
    order = []
    for _ in range(count):
        chosen = next_turn(shares, claims, windows=Windows(10**9, 10**9), bulk_in_flight=0)
        assert chosen is not None
        shares = served(shares, chosen, weight_of=weight_of)
        order.append(chosen.import_id)
    return order


def test_given_an_import_with_a_full_window_when_asked_then_it_waits_and_another_goes() -> None:
    full = claim("a", in_flight=2500)
    room = claim("b", in_flight=1000)
    assert not may_send(full, windows=WINDOWS, bulk_in_flight=1000)
    assert next_turn(Shares(), [full, room], windows=WINDOWS, bulk_in_flight=1000) == room


def test_given_nothing_in_flight_when_the_batch_exceeds_the_window_then_it_is_sent_anyway() -> None:
    big = claim("a", rows=10_000)
    assert next_turn(Shares(), [big], windows=WINDOWS, bulk_in_flight=0) == big


def test_given_the_bulk_lane_full_when_asked_then_bulk_waits_but_interactive_goes() -> None:
    bulk = claim("a", in_flight=0)
    small = claim("b", rows=10, interactive=True)
    assert next_turn(Shares(), [bulk], windows=WINDOWS, bulk_in_flight=3500) is None
    assert next_turn(Shares(), [bulk, small], windows=WINDOWS, bulk_in_flight=3500) == small


def test_given_a_small_import_and_bulk_imports_far_behind_when_asked_then_the_small_one_goes_first() -> None:
    shares = served(Shares(), claim("small", "org-s", interactive=True, rows=5000), weight_of=EVEN)
    bulk = [claim("a", "org-a"), claim("b", "org-b")]
    small = claim("small", "org-s", rows=10, interactive=True)
    assert next_turn(shares, [*bulk, small], windows=WINDOWS, bulk_in_flight=0) == small


def test_given_two_organizers_of_equal_weight_then_they_take_turns() -> None:
    assert turns([claim("a"), claim("b")], 6) == ["a", "b", "a", "b", "a", "b"]


def test_given_weights_two_to_one_then_turns_are_two_to_one() -> None:
    order = turns([claim("a", "heavy"), claim("b", "light")], 300, weight_of=weights({"heavy": 2}))
    assert Counter(order) == {"a": 200, "b": 100}


def test_given_batches_of_different_sizes_then_rows_are_shared_not_turns() -> None:
    shares, rows = Shares(), Counter[str]()
    claims = [claim("a", rows=5000), claim("b", rows=500)]
    for _ in range(220):
        chosen = next_turn(shares, claims, windows=Windows(10**9, 10**9), bulk_in_flight=0)
        assert chosen is not None
        shares = served(shares, chosen, weight_of=EVEN)
        rows[chosen.import_id] += chosen.rows
    assert abs(rows["a"] - rows["b"]) <= 5000


def test_given_one_organizer_with_three_imports_and_another_with_one_then_organizers_share_not_imports() -> None:
    order = turns([claim("a1", "org-a"), claim("a2", "org-a"), claim("a3", "org-a"), claim("b", "org-b")], 600)
    per_import = Counter(order)
    assert per_import["b"] == 300
    assert {per_import["a1"], per_import["a2"], per_import["a3"]} == {100}


def test_given_an_organizer_that_waited_when_it_comes_back_then_it_gets_no_burst() -> None:
    shares = Shares()
    for _ in range(50):  # a alone for a while
        shares = served(shares, claim("a"), weight_of=EVEN)
    order = turns([claim("a"), claim("b")], 10, shares=shares)
    assert Counter(order) == {"a": 5, "b": 5}


def test_given_finished_imports_when_forgotten_then_their_tags_go_and_the_others_stay() -> None:
    shares = Shares()
    for c in (claim("a1", "org-a"), claim("a2", "org-a"), claim("b", "org-b")):
        shares = served(shares, c, weight_of=EVEN)
    kept = forget(shares, active=[("org-a", "a2")])
    assert set(kept.organizers.finish) == {"org-a"}
    assert set(kept.imports) == {"org-a"} and set(kept.imports["org-a"].finish) == {"a2"}
    assert kept.organizers.clock == shares.organizers.clock


@given(
    st.lists(st.tuples(st.integers(0, 5), st.integers(1, 5000), st.integers(0, 9000), st.booleans()), max_size=12),
    st.integers(0, 9000),
)
def test_a_turn_is_only_ever_given_to_a_claim_with_room(raw: list[tuple[int, int, int, bool]], bulk: int) -> None:
    claims = [claim(f"i{n}", f"o{o}", rows=rows, in_flight=fl, interactive=i) for n, (o, rows, fl, i) in
              enumerate(raw)]
    chosen = next_turn(Shares(), claims, windows=WINDOWS, bulk_in_flight=bulk)
    allowed = [c for c in claims if may_send(c, windows=WINDOWS, bulk_in_flight=bulk)]
    assert (chosen is None) == (not allowed)
    if chosen is not None:
        assert chosen in allowed
        assert chosen.interactive or not any(c.interactive for c in allowed)


def simulate(
    sizes: dict[str, int], *, arrivals: dict[str, int], weight_of: Callable[[str], float] = EVEN,
    answer_per_tick: int = 500, batch: int = 1000, windows: Windows = WINDOWS,
) -> dict[str, int]:
    """Imports (one organizer each) handing on batches through the scheduler to a lane that answers
    ``answer_per_tick`` rows per tick in publication order; the tick each import is fully answered."""
    sent, answered = dict.fromkeys(sizes, 0), dict.fromkeys(sizes, 0)
    lane: deque[list[int | str]] = deque()
    shares, finished, tick = Shares(), dict[str, int](), 0
    while len(finished) < len(sizes):
        tick += 1
        budget = answer_per_tick
        while budget and lane:
            head = lane[0]
            taken = min(budget, int(head[1]))
            answered[str(head[0])] += taken
            head[1] = int(head[1]) - taken
            budget -= taken
            if not head[1]:
                lane.popleft()
        for name in sizes:
            if name not in finished and answered[name] == sizes[name]:
                finished[name] = tick
        while True:
            claims = [Claim(n, f"org-{n}", min(batch, sizes[n] - sent[n]), sent[n] - answered[n])
                      for n in sizes if arrivals[n] <= tick and sent[n] < sizes[n]]
            chosen = next_turn(shares, claims, windows=windows,
                               bulk_in_flight=sum(sent[n] - answered[n] for n in sizes))
            if chosen is None:
                break
            shares = served(shares, chosen, weight_of=weight_of)
            sent[chosen.import_id] += chosen.rows
            lane.append([chosen.import_id, chosen.rows])
    return finished


def test_two_equal_imports_the_second_started_later_take_about_as_long_as_each_other() -> None:
    finished = simulate({"a": 30_000, "b": 30_000}, arrivals={"a": 0, "b": 10})
    took_a, took_b = finished["a"], finished["b"] - 10
    assert 0.8 < took_b / took_a < 1.25, finished


def test_in_flight_never_exceeds_the_windows_by_more_than_a_batch() -> None:
    sizes = {"a": 20_000, "b": 20_000, "c": 20_000}
    shares, sent = Shares(), dict.fromkeys(sizes, 0)
    for _ in range(100):  # no answers at all: everyone stops at the windows
        claims = [Claim(n, f"org-{n}", 1000, sent[n]) for n in sizes]
        chosen = next_turn(shares, claims, windows=WINDOWS, bulk_in_flight=sum(sent.values()))
        if chosen is None:
            break
        shares = served(shares, chosen, weight_of=EVEN)
        sent[chosen.import_id] += chosen.rows
    assert sum(sent.values()) <= WINDOWS.total and max(sent.values()) <= WINDOWS.per_import


def test_weights_share_the_lane_two_to_one_while_both_run() -> None:
    finished = simulate({"a": 40_000, "b": 40_000}, arrivals={"a": 0, "b": 0}, weight_of=weights({"org-a": 2}))
    # a runs at 2/3 of the lane: done after 60,000 rows went through; b at the end (80,000)
    assert abs(finished["a"] - 60_000 / 500) <= 8 and abs(finished["b"] - 80_000 / 500) <= 2, finished
