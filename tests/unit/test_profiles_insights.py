"""Cross-event insights, given/when/then, without I/O: what a set of interactions adds up to."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from services.profiles.insights import Insights, RecordedInteraction, summarize
from shared.events import InteractionKind

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def interaction(
    message: str, kind: InteractionKind, minute: int, *, event: str | None = "ev-1", order: str | None = None,
    tickets: int | None = None,
) -> RecordedInteraction:
    return RecordedInteraction("org-a", "c1", message, kind, event, order, tickets, T0 + timedelta(minutes=minute))


def test_nothing_recorded_is_all_zero() -> None:
    assert summarize([]) == Insights()


def test_check_ins_count_distinct_events_attended() -> None:
    insights = summarize([
        interaction("m1", "event_checked_in", 1, event="ev-1"),
        interaction("m2", "event_checked_in", 2, event="ev-1"),  # checked in twice at the same event
        interaction("m3", "event_checked_in", 3, event="ev-2"),
    ])

    assert (insights.events_attended, insights.registrations, insights.last_active_at) == (
        2, 0, T0 + timedelta(minutes=3))


def test_waitlist_registrations_count_distinct_events() -> None:
    insights = summarize([
        interaction("m1", "waitlist_registered", 1, event="ev-1"),
        interaction("m2", "waitlist_registered", 2, event="ev-1"),
        interaction("m3", "waitlist_registered", 3, event="ev-3"),
    ])

    assert (insights.registrations, insights.events_attended) == (2, 0)


def test_tickets_add_up_over_distinct_orders_each_counted_by_its_latest_report() -> None:
    insights = summarize([
        interaction("m1", "ticket_purchased", 1, order="o-1", tickets=2),
        interaction("m2", "ticket_purchased", 2, order="o-2", tickets=1),
        interaction("m3", "ticket_purchased", 3, order="o-1", tickets=3),  # o-1 reported again: 3 now
    ])

    assert (insights.orders, insights.tickets_purchased) == (2, 4)


def test_any_interaction_makes_the_contact_active() -> None:
    insights = summarize([
        interaction("m1", "ticket_purchased", 5, order="o-1", tickets=1),
        interaction("m2", "user_account_linked", 9, event=None),
        interaction("m3", "attendee_profile_completed", 7, event=None),
    ])

    assert insights.last_active_at == T0 + timedelta(minutes=9)


kinds = st.sampled_from(["ticket_purchased", "waitlist_registered", "event_checked_in", "user_account_linked"])
recorded = st.builds(
    lambda n, kind, minute, event, order, tickets: interaction(
        f"m{n}", kind, minute, event=f"ev-{event}", order=f"o-{order}" if kind == "ticket_purchased" else None,
        tickets=tickets if kind == "ticket_purchased" else None),
    st.integers(0, 20), kinds, st.integers(0, 50), st.integers(0, 3), st.integers(0, 3), st.integers(1, 5),
)


@given(st.lists(recorded, max_size=15), st.randoms())
def test_redelivery_and_any_order_give_the_same_insights(interactions: list[RecordedInteraction], rnd: object) -> None:
    """Each interaction counts once by its id (the first stored wins, as ``ON CONFLICT DO NOTHING`` does)."""
    unique = list({i.interaction_id: i for i in reversed(interactions)}.values())
    shuffled = unique + unique[: len(unique) // 2]
    rnd.shuffle(shuffled)  # type: ignore[attr-defined]

    assert summarize(shuffled) == summarize(unique)
