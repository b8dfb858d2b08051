"""The set-based merge (``store.merge``, SQL on the real PostgreSQL) equals the pure fold (``domain``), its
specification: for generated logs of several contacts (imports of several organizers with values, spellings and
email permissions, the people's own statements, interactions), cut into batches of any size that redeliver part
of the batch before or a message twice, with explicit permissions set through the API between batches (and values
stated again, which identity never does but the fold defines), every canonical profile,
organizer's row (layer, view, versions, times, sightings, permissions, insights) and snapshot is the fold's."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.profiles import store
from services.profiles.domain import ContactState, FieldSource, Layer, evolve, fold, plan_batch, snapshot
from services.profiles.insights import RecordedInteraction, summarize
from services.profiles.intake import stage_row
from services.profiles.permission import Statement, effective
from shared import wire
from shared.db import create_engine
from shared.events import (
    CONTACT_FIELDS,
    ContactCreatedV1,
    ContactEvent,
    ContactMatchedV1,
    ContactProfileUpdatedV1,
    ContactSource,
    ContactUpdatedV1,
    InteractionRecordedV1,
)
from tests.support.isolation import Isolation

pytestmark = pytest.mark.integration

T0 = datetime(2026, 1, 1, tzinfo=UTC)
ORGANIZERS = ("org-a", "org-b", "org-c")
VALUES = st.sampled_from(["Ann", "Bo", "Acme", "CTO", "Lee"])
NAMES = st.sampled_from(["first_name", "last_name", "company", "title", "bio", "user_account_id",
                         "social_links.github"])
SPELLINGS = st.sampled_from([None, "ann@x.io", "Ann@X.io", "ANN@X.IO"])


@pytest.fixture
async def engine(isolation: Isolation) -> AsyncIterator[AsyncEngine]:
    isolation.migrate(("profiles",))
    created = create_engine(isolation.database_url, schema=isolation.schema("profiles"))
    yield created
    await created.dispose()


@dataclass(frozen=True)
class Step:
    """One record identity turned into events: whose (an import of ``organizer``, or the person at its event),
    what it states, how it spelled the email, when, and whether it is also an interaction."""

    organizer: str
    person: bool
    values: dict[str, str]
    spelled: str | None
    minutes: int
    permission: str | None
    interaction: tuple[str, str | None, int | None] | None  # kind, order id, tickets
    restate: bool = False  # state every value, not only what is new to the layer (identity never does)
    attendee: bool = False  # the person stated it directly (source kind attendee, no organizer)


steps = st.builds(
    Step,
    organizer=st.sampled_from(ORGANIZERS),
    person=st.booleans(),
    values=st.dictionaries(NAMES, VALUES, max_size=3),
    spelled=SPELLINGS,
    minutes=st.integers(0, 30),  # not in log order: times may go back
    permission=st.sampled_from([None, "subscribed", "unsubscribed", "unknown"]),
    interaction=st.one_of(st.none(), st.tuples(
        st.sampled_from(["event_checked_in", "ticket_purchased", "waitlist_registered"]),
        st.sampled_from([None, "o-1", "o-2"]), st.sampled_from([None, 1, 3]))),
    restate=st.booleans(),
    attendee=st.booleans(),
)


def log_of(contact_id: str, records: list[Step]) -> list[ContactEvent]:
    """The events identity writes for ``records``: created, else updated with what is new to the layer, else
    matched (imports) or nothing (interactions), then the interaction's record."""
    events: list[ContactEvent] = []
    layers: dict[str, dict[str, str]] = {}
    for number, step in enumerate(records):
        version = len(events) + 1
        message = f"m-{contact_id[:8]}-{number}"
        if step.person and step.attendee and not step.interaction:
            source = ContactSource(kind="attendee", organizer_id="", interaction_id=message)
        elif step.person or step.interaction:
            source = ContactSource(kind="interaction", organizer_id=step.organizer, interaction_id=message)
        else:
            source = ContactSource(kind="import", organizer_id=step.organizer, import_id=f"imp-{number}",
                                   row_number=1, email_permission=step.permission)  # type: ignore[arg-type]
        layer = layers.setdefault("person" if source.kind != "import" else step.organizer, {})
        new = {name: value for name, value in step.values.items() if step.restate or layer.get(name) != value}
        layer.update(new)
        fields = {name: value for name, value in new.items() if name in CONTACT_FIELDS}
        extra: dict[str, Any] = {"social_links": {n.removeprefix("social_links."): v for n, v in new.items()
                                                  if n.startswith("social_links.")},
                                 **{n: new[n] for n in ("bio", "user_account_id") if n in new}}
        common: dict[str, Any] = {"contact_id": contact_id, "version": version, "source": source,
                                  "occurred_at": T0 + timedelta(minutes=step.minutes)}
        if not events:
            events.append(ContactCreatedV1(email="ann@x.io", email_original=step.spelled or "ann@x.io",
                                           fields=fields, **extra, **common))
        elif new:
            events.append(ContactUpdatedV1(changes=fields, email_original=step.spelled, **extra, **common))
        elif source.kind == "import":
            events.append(ContactMatchedV1(email_original=step.spelled, **common))
        if step.interaction:
            kind, order, tickets = step.interaction
            events.append(InteractionRecordedV1(
                contact_id=contact_id, version=len(events) + 1, source=source, occurred_at=common["occurred_at"],
                kind=kind, interaction_id=message, kagibag_event_id=f"ev-{step.minutes % 3}",  # type: ignore[arg-type]
                order_id=order if kind == "ticket_purchased" else None,
                ticket_count=tickets if kind == "ticket_purchased" else None, email_original=step.spelled,
            ))
    return events


def layer(stored: dict[str, Any]) -> Layer:
    return Layer(
        values=stored.get("values") or {},
        sources={name: FieldSource(kind=s["kind"], at=datetime.fromisoformat(s["at"]),
                                   organizer_id=s.get("organizer_id"),
                                   reference=s.get("import_id") or s.get("interaction_id"))
                 for name, s in (stored.get("sources") or {}).items()},
        email_original=stored.get("email_original"),
    )


def sources(stored: dict[str, Any]) -> dict[str, FieldSource]:
    return dict(layer({"sources": stored}).sources)


async def merged(engine: AsyncEngine, batch: list[ContactEvent]) -> list[store.Snapshot]:
    rows = [stage_row(seq, wire.from_model(event), message_id=f"id-{seq}", correlation_id=None)
            for seq, event in enumerate(batch)]
    async with engine.begin() as conn:
        return await store.merge(conn, rows)


async def explicit(engine: AsyncEngine, contact_id: str, organizer: str, status: str, minutes: int) -> Statement:
    """What a PATCH setting the email permission stores (as ``relationships.save`` does): the explicit
    statement, and the permission that applies with the imports' statement."""
    statement = Statement(status=status, at=T0 + timedelta(minutes=minutes), by="alice")  # type: ignore[arg-type]
    key = {"o": organizer, "c": contact_id}
    async with engine.begin() as conn:
        row = (await conn.execute(text(
            "SELECT import_permission, import_permission_at, import_permission_by FROM organizer_contacts "
            "WHERE organizer_id = :o AND contact_id = :c FOR UPDATE"), key)).one()
        imported = Statement(row[0], row[1], row[2] or "") if row[0] is not None else None
        applies = effective(imported, statement)
        await conn.execute(text(
            "UPDATE organizer_contacts SET explicit_permission = :s, explicit_permission_at = :at, "
            "explicit_permission_by = 'alice', email_permission = :status, permission_source = :source, "
            "permission_changed_at = :changed_at, permission_changed_by = :changed_by "
            "WHERE organizer_id = :o AND contact_id = :c"),
            {**key, "s": status, "at": statement.at, "status": applies.status, "source": applies.source,
             "changed_at": applies.changed_at, "changed_by": applies.changed_by})
    return statement


def imported_by(organizer: str, minutes: int, *, permission: str | None = None, spelled: str | None = None,
                **values: str) -> Step:
    return Step(organizer, False, values, spelled, minutes, permission, None)


def checked_in(organizer: str, minutes: int, *, spelled: str | None = None, **values: str) -> Step:
    return Step(organizer, True, values, spelled, minutes, None, ("event_checked_in", None, None))


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@example(  # an import's unsubscribe stands against a later import's subscribe, in one batch and across batches
    histories=[[imported_by("org-a", 5, permission="unsubscribed"), imported_by("org-a", 10, permission="subscribed"),
                imported_by("org-a", 1, permission="subscribed")]] * 2,
    cuts=[1, 6], overlap=0, twice=False, patches=[(1, 0, "org-a", "subscribed", 3)],
)
@example(  # the person spells the email first, then an organizer's import does, in one batch: not visible
    histories=[[imported_by("org-a", 1, spelled="ann@x.io"), imported_by("org-b", 2),
                checked_in("org-c", 3, spelled="Ann@X.io"), imported_by("org-b", 4, spelled="ANN@X.IO")]],
    cuts=[2, 2], overlap=0, twice=True, patches=[],
)
@given(
    histories=st.lists(st.lists(steps, min_size=1, max_size=7), min_size=1, max_size=3),
    cuts=st.lists(st.integers(1, 6), min_size=1, max_size=8),
    overlap=st.integers(0, 2),
    twice=st.booleans(),
    patches=st.lists(st.tuples(st.integers(0, 8), st.integers(0, 2), st.sampled_from(ORGANIZERS),
                               st.sampled_from(["subscribed", "unsubscribed"]), st.integers(0, 40)), max_size=3),
)
async def test_the_set_based_merge_equals_the_fold(
    engine: AsyncEngine, histories: list[list[Step]], cuts: list[int], overlap: int, twice: bool,
    patches: list[tuple[int, int, str, str, int]],
) -> None:
    contacts = [str(uuid.uuid4()) for _ in histories]
    logs = {cid: log_of(cid, records) for cid, records in zip(contacts, histories, strict=True)}
    stream = sorted((e for events in logs.values() for e in events), key=lambda e: (e.version, e.contact_id))

    known: dict[str, ContactState] = {}
    published: list[tuple[str, int, dict[str, Any]]] = []
    expected_published: list[tuple[str, int, dict[str, Any]]] = []
    statements: dict[tuple[str, str], Statement] = {}
    start, number = 0, 0
    while start < len(stream):
        size = cuts[number % len(cuts)]
        batch = stream[max(0, start - overlap): start + size]  # the end of the batch before, again
        batch += batch[:1] if twice else []  # and a message delivered twice in the batch
        plan = plan_batch(known, batch)
        for event in sorted(batch, key=lambda e: e.version):
            known[event.contact_id] = evolve(known.get(event.contact_id) or fold(event.contact_id, []), event)
        expected_published += [(cid, plan.canonicals[cid].profile_version,
                                snapshot(plan.canonicals[cid]).model_dump(mode="json"))
                               for cid in sorted(plan.snapshots)]
        published += sorted((s.contact_id, s.profile_version,
                             ContactProfileUpdatedV1.model_validate_json(s.payload).model_dump(mode="json"))
                            for s in await merged(engine, batch))
        for when, which, organizer, status, minutes in patches:
            cid = contacts[which % len(contacts)]
            if when == number and organizer in known.get(cid, fold(cid, [])).views:
                statements[(organizer, cid)] = await explicit(engine, cid, organizer, status, minutes)
        start += size
        number += 1

    assert published == expected_published
    async with engine.connect() as conn:
        canonical = {row.contact_id: row for row in await conn.execute(
            text("SELECT * FROM contact_profiles WHERE contact_id = ANY(:ids)"), {"ids": contacts})}
        rows = {(row.organizer_id, row.contact_id): row for row in await conn.execute(
            text("SELECT * FROM organizer_contacts WHERE contact_id = ANY(:ids)"), {"ids": contacts})}
    for cid in contacts:
        state = fold(cid, logs[cid])
        assert known[cid] == state  # batching and redelivery do not change the fold either
        row = canonical[cid]
        assert (row.contact_version, row.email, row.created_at, row.updated_at, row.profile_version,
                layer(row.stated)) == (state.canonical.version, state.canonical.email, state.canonical.created_at,
                                       state.canonical.updated_at, state.canonical.profile_version,
                                       state.canonical.stated)
        assert {org for org, contact in rows if contact == cid} == set(state.views)
        for organizer, view in state.views.items():
            row = rows[(organizer, cid)]
            shown = state.shown(organizer)
            imported = view.import_permission
            permission = effective(imported, statements.get((organizer, cid)))
            interactions = [RecordedInteraction.of(e) for e in logs[cid]
                            if isinstance(e, InteractionRecordedV1) and e.source.organizer_id == organizer]
            insights = summarize(interactions)
            assert {
                "layer": layer(row.imported), "version": row.view_version, "created": row.created_at,
                "updated": row.updated_at, "seen": (row.first_seen_at, row.last_seen_at),
                "imported": (row.import_permission, row.import_permission_at, row.import_permission_by),
                "permission": (row.email_permission, row.permission_source, row.permission_changed_at,
                               row.permission_changed_by),
                "shown": (row.email, row.email_original, *(getattr(row, n) for n in CONTACT_FIELDS),
                          row.display_name, row.bio, row.social_links, row.user_account_id,
                          sources(row.field_sources)),
                "insights": (row.events_attended, row.registrations, row.tickets_purchased, row.orders,
                             row.last_active_at, tuple(row.attended_events)),
            } == {
                "layer": view.imported, "version": view.version, "created": view.created_at,
                "updated": view.updated_at, "seen": (view.first_seen_at, view.last_seen_at),
                "imported": (imported.status, imported.at, imported.by) if imported else (None, None, None),
                "permission": (permission.status, permission.source, permission.changed_at, permission.changed_by),
                "shown": (shown.email, shown.email_original, *(shown.value(n) for n in CONTACT_FIELDS),
                          shown.display_name, shown.value("bio"), shown.social_links, shown.value("user_account_id"),
                          dict(shown.sources)),
                "insights": (insights.events_attended, insights.registrations, insights.tickets_purchased,
                             insights.orders, insights.last_active_at, insights.attended_events),
            }, (organizer, json.dumps([repr(e) for e in logs[cid]]))
