"""Cross-event insights of one organizer about one contact, free of I/O: a pure summary of the set of
interactions recorded with the organizer's events, so redelivery, replay and any arrival order give the same
numbers (each interaction counts once, by its id)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from shared.events import InteractionKind, InteractionRecordedV1


@dataclass(frozen=True)
class RecordedInteraction:
    """One row of ``organizer_interactions``: an interaction with one of ``organizer_id``'s events."""

    organizer_id: str
    contact_id: str
    interaction_id: str
    kind: InteractionKind
    kagibag_event_id: str | None
    order_id: str | None
    ticket_count: int | None
    occurred_at: datetime

    @classmethod
    def of(cls, event: InteractionRecordedV1) -> RecordedInteraction:
        return cls(
            organizer_id=event.source.organizer_id,
            contact_id=event.contact_id,
            interaction_id=event.interaction_id,
            kind=event.kind,
            kagibag_event_id=event.kagibag_event_id,
            order_id=event.order_id,
            ticket_count=event.ticket_count,
            occurred_at=event.occurred_at,
        )


@dataclass(frozen=True)
class Insights:
    events_attended: int = 0
    registrations: int = 0
    tickets_purchased: int = 0
    orders: int = 0
    last_active_at: datetime | None = None
    attended_events: tuple[str, ...] = ()


def summarize(interactions: Iterable[RecordedInteraction]) -> Insights:
    """Events attended: distinct events checked in at. Registrations: distinct events whose waitlist the
    contact joined. Orders: distinct orders; tickets purchased: the sum over distinct orders of the ticket
    count in each order's latest report (a re-sent report of the same order is not more tickets). Last
    active: the latest interaction of any kind. Attended events: their ids, the latest check-in first (then by
    id)."""
    attended: dict[str, datetime] = {}
    registered: set[str] = set()
    latest_report: dict[str, tuple[datetime, str, int]] = {}
    last_active: datetime | None = None
    for interaction in {i.interaction_id: i for i in interactions}.values():
        if last_active is None or interaction.occurred_at > last_active:
            last_active = interaction.occurred_at
        event = interaction.kagibag_event_id
        if interaction.kind == "event_checked_in" and event is not None:
            attended[event] = max(attended.get(event, interaction.occurred_at), interaction.occurred_at)
        elif interaction.kind == "waitlist_registered" and event is not None:
            registered.add(event)
        elif interaction.kind == "ticket_purchased" and interaction.order_id is not None:
            report = (interaction.occurred_at, interaction.interaction_id, interaction.ticket_count or 0)
            latest_report[interaction.order_id] = max(latest_report.get(interaction.order_id, report), report)
    return Insights(
        events_attended=len(attended),
        registrations=len(registered),
        tickets_purchased=sum(count for _, _, count in latest_report.values()),
        orders=len(latest_report),
        last_active_at=last_active,
        attended_events=tuple(sorted(sorted(attended), key=lambda event: attended[event], reverse=True)),
    )
