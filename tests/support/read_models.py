"""What the read models must hold given identity's event store: each service's pure fold of every contact's events
(``services/profiles/domain.py``, ``services/enrichment/domain.py``), the state one instance applying the contact
log in order reaches, whatever batches, instances, crashes and redeliveries it went through."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import text

from services.enrichment import domain as enrichment
from services.enrichment import store as enrichment_store
from services.profiles.domain import FieldSource, Layer, fold
from services.profiles.insights import RecordedInteraction, summarize
from services.profiles.permission import Statement, effective
from shared import wire
from shared.db import create_engine
from shared.events import CONTACT_FIELDS, ContactEvent, InteractionRecordedV1
from tests.support.isolation import Isolation

Streams = Mapping[str, Sequence[wire.Wire]]
"""Contact id -> its events in version order, as identity stored them (``tests.support.identity.contact_streams``)."""


def stored_layer(stored: Mapping[str, Any]) -> Layer:
    """A layer as profiles stores it (JSON: values, sources, email_original)."""
    return Layer(
        values=stored.get("values") or {},
        sources=stored_sources(stored.get("sources") or {}),
        email_original=stored.get("email_original"),
    )


def stored_sources(stored: Mapping[str, Any]) -> dict[str, FieldSource]:
    return {name: FieldSource(kind=s["kind"], at=datetime.fromisoformat(s["at"]), organizer_id=s.get("organizer_id"),
                              reference=s.get("import_id") or s.get("interaction_id"))
            for name, s in stored.items()}


def _mismatches(found: list[str], what: str) -> str:
    return f"{len(found)} {what} differ from the fold, e.g.:\n" + "\n".join(found[:3])


async def assert_profiles_are_the_fold(isolation: Isolation, streams: Streams) -> None:
    """Every canonical profile and every organizer's row (layer, view, versions, times, sightings, permissions,
    insights) in profiles' schema equals ``services.profiles.domain.fold`` of the contact's events."""
    engine = create_engine(isolation.database_url, schema=isolation.schema("profiles"))
    try:
        async with engine.connect() as conn:
            canonical = {row.contact_id: row for row in await conn.execute(text("SELECT * FROM contact_profiles"))}
            rows = {(row.organizer_id, row.contact_id): row
                    for row in await conn.execute(text("SELECT * FROM organizer_contacts"))}
    finally:
        await engine.dispose()
    assert set(canonical) == set(streams), "profiles has other contacts than identity"
    expected_pairs: set[tuple[str, str]] = set()
    wrong: list[str] = []
    for contact_id, structs in streams.items():
        events: list[ContactEvent] = [wire.to_model(struct) for struct in structs]  # type: ignore[misc]
        state = fold(contact_id, events)
        row = canonical[contact_id]
        if (row.contact_version, row.email, row.created_at, row.updated_at, row.profile_version,
                stored_layer(row.stated)) != (
                state.canonical.version, state.canonical.email, state.canonical.created_at,
                state.canonical.updated_at, state.canonical.profile_version, state.canonical.stated):
            wrong.append(f"canonical {contact_id}: stored {row}, folded {state.canonical}")
        for organizer, view in state.views.items():
            expected_pairs.add((organizer, contact_id))
            found = rows.get((organizer, contact_id))
            if found is None:
                wrong.append(f"view ({organizer}, {contact_id}) missing")
                continue
            row = found
            shown = state.shown(organizer)
            imported = view.import_permission
            explicit = (Statement(row.explicit_permission, row.explicit_permission_at, row.explicit_permission_by)
                        if row.explicit_permission is not None else None)
            permission = effective(imported, explicit)
            insights = summarize(RecordedInteraction.of(e) for e in events
                                 if isinstance(e, InteractionRecordedV1) and e.source.organizer_id == organizer)
            stored = {
                "layer": stored_layer(row.imported), "version": row.view_version, "created": row.created_at,
                "updated": row.updated_at, "seen": (row.first_seen_at, row.last_seen_at),
                "imported": (row.import_permission, row.import_permission_at, row.import_permission_by),
                "permission": (row.email_permission, row.permission_source, row.permission_changed_at,
                               row.permission_changed_by),
                "shown": (row.email, row.email_original, *(getattr(row, n) for n in CONTACT_FIELDS),
                          row.display_name, row.bio, row.social_links, row.user_account_id,
                          stored_sources(row.field_sources)),
                "insights": (row.events_attended, row.registrations, row.tickets_purchased, row.orders,
                             row.last_active_at),
            }
            folded = {
                "layer": view.imported, "version": view.version, "created": view.created_at,
                "updated": view.updated_at, "seen": (view.first_seen_at, view.last_seen_at),
                "imported": (imported.status, imported.at, imported.by) if imported else (None, None, None),
                "permission": (permission.status, permission.source, permission.changed_at, permission.changed_by),
                "shown": (shown.email, shown.email_original, *(shown.value(n) for n in CONTACT_FIELDS),
                          shown.display_name, shown.value("bio"), shown.social_links, shown.value("user_account_id"),
                          dict(shown.sources)),
                "insights": (insights.events_attended, insights.registrations, insights.tickets_purchased,
                             insights.orders, insights.last_active_at),
            }
            if stored != folded:
                differing = {key: (stored[key], folded[key]) for key in stored if stored[key] != folded[key]}
                wrong.append(f"view ({organizer}, {contact_id}) (stored, folded): {differing}")
    assert not wrong, _mismatches(wrong, "profiles rows")
    unrelated = sorted(set(rows) - expected_pairs)
    assert not unrelated, f"{len(unrelated)} organizer rows without a relationship, e.g. {unrelated[:3]}"


async def assert_enrichment_is_the_fold(isolation: Isolation, streams: Streams) -> None:
    """What enrichment keeps per contact (email, the person's own values and their sources, organizers, version,
    time) equals ``services.enrichment.domain.evolve`` folded over the contact's events."""
    engine = create_engine(isolation.database_url, schema=isolation.schema("enrichment"))
    try:
        async with engine.connect() as conn:
            kept = await enrichment_store.load_people(conn, streams)
    finally:
        await engine.dispose()
    assert set(kept) == set(streams), "enrichment has other contacts than identity"
    wrong = []
    for contact_id, events in streams.items():
        person: enrichment.Person | None = None
        for event in events:
            person, _ = enrichment.evolve(person, event)  # type: ignore[arg-type]
        if kept[contact_id] != person:
            wrong.append(f"{contact_id}: kept {kept[contact_id]}, folded {person}")
    assert not wrong, _mismatches(wrong, "enrichment contacts")
