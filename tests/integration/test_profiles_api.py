"""The contacts API against the running profiles service (its subscribers, relay and API on the real broker and
PostgreSQL): organizers' changes through PATCH are recorded with who and when and applied, an explicit
unsubscribe survives a later import, and search, filters, engagement order and cursors over the read model."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest

from ops.local_postgres import libpq_url
from services.profiles import relationships
from shared import topics
from shared.auth import mint_token
from shared.codec import encode
from shared.db import create_engine
from shared.envelope import Envelope
from shared.events import (
    ContactCreatedV1,
    ContactEvent,
    ContactMatchedV1,
    ContactSource,
    ContactUpdatedV1,
    EmailPermission,
    InteractionKind,
    InteractionRecordedV1,
)
from shared.producer import OutgoingMessage
from tests.integration.test_profiles_service import profiles_api
from tests.support.isolation import Isolation
from tests.support.kafka import publish
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def new_id() -> str:
    return str(uuid.uuid4())


def imported(
    organizer: str, permission: EmailPermission | None = None, *, import_id: str | None = None
) -> ContactSource:
    return ContactSource(
        kind="import", organizer_id=organizer, import_id=import_id or f"imp-{organizer}", row_number=1,
        email_permission=permission,
    )


def created(
    contact_id: str, email: str, source: ContactSource, *, at: datetime = T0, **fields: str
) -> ContactCreatedV1:
    return ContactCreatedV1(
        contact_id=contact_id, version=1, occurred_at=at, source=source, email=email.lower(), email_original=email,
        fields=fields,  # type: ignore[arg-type]
    )


def updated(contact_id: str, version: int, source: ContactSource, **changes: str) -> ContactUpdatedV1:
    return ContactUpdatedV1(
        contact_id=contact_id, version=version, occurred_at=T0 + timedelta(hours=version), source=source,
        changes=changes,  # type: ignore[arg-type]
    )


def matched(contact_id: str, version: int, source: ContactSource, *, at: datetime) -> ContactMatchedV1:
    return ContactMatchedV1(contact_id=contact_id, version=version, occurred_at=at, source=source)


def interaction(
    contact_id: str, version: int, organizer: str, kind: InteractionKind, *, event: str, hours: int,
    order_id: str | None = None, tickets: int | None = None,
) -> InteractionRecordedV1:
    interaction_id = new_id()
    return InteractionRecordedV1(
        contact_id=contact_id, version=version, occurred_at=T0 + timedelta(hours=hours),
        source=ContactSource(kind="interaction", organizer_id=organizer, interaction_id=interaction_id),
        kind=kind, interaction_id=interaction_id, kagibag_event_id=event, order_id=order_id, ticket_count=tickets,
    )


def message(isolation: Isolation, event: ContactEvent) -> OutgoingMessage:
    """What identity would publish on the contact log, keyed by contact id."""
    envelope = Envelope(type=event.TYPE, source="kagibag-contacts/identity", subject=event.contact_id)
    return encode(event, envelope, topic=isolation.topic(topics.CONTACT_EVENTS), key=event.contact_id)


async def publish_contact_events(isolation: Isolation, events: Sequence[ContactEvent]) -> None:
    await publish(isolation.kafka_bootstrap, [message(isolation, event) for event in events])


def auth(isolation: Isolation, organizer: str, user: str | None = None) -> dict[str, str]:
    token = mint_token(secret=isolation.auth_secret, organizer_id=organizer, ttl_seconds=600, user=user)
    return {"Authorization": f"Bearer {token}"}


def rows(isolation: Isolation, sql: str, *params: object) -> list[tuple[Any, ...]]:
    with psycopg.connect(libpq_url(isolation.database_url)) as conn:
        conn.execute(f'SET search_path TO "{isolation.schema("profiles")}"')
        return conn.execute(sql, params).fetchall()


async def visible(api: httpx.AsyncClient, headers: dict[str, str], *contact_ids: str) -> None:
    """Wait until every contact is served to the organizer (the projection is asynchronous)."""

    async def all_there() -> bool:
        for contact_id in contact_ids:
            if (await api.get(f"/v1/contacts/{contact_id}", headers=headers)).status_code != 200:
                return False
        return True

    await wait_until(all_there, timeout=45, description=f"contacts {contact_ids} projected")


async def test_a_patch_is_recorded_with_who_and_when_and_applied(isolation: Isolation) -> None:
    ann = new_id()
    async with profiles_api(isolation) as api:
        await publish_contact_events(
            isolation, [created(ann, "Ann@Example.com", imported("org-a", "subscribed"), first_name="Ann")]
        )
        alice = auth(isolation, "org-a", user="alice@org-a")
        await visible(api, alice, ann)
        before = await api.get(f"/v1/contacts/{ann}", headers=alice)
        assert before.headers["ETag"] == '"0"'
        assert before.json()["relationship"] == {
            "email_permission": {"status": "subscribed", "source": "import", "changed_at": "2026-03-01T00:00:00Z",
                                 "changed_by": "imp-org-a"},
            "tags": [], "preferences": {"channels": {}, "frequency": None, "topics": [], "language": None},
            "notes": None, "first_seen_at": "2026-03-01T00:00:00Z", "last_seen_at": "2026-03-01T00:00:00Z",
            "version": 0,
        }

        started = datetime.now(UTC)
        response = await api.patch(
            f"/v1/contacts/{ann}",
            json={"tags": {"add": [" VIP ", "Speaker", "vip"]}, "notes": "Met at the Berlin meetup",
                  "preferences": {"channels": {"email": True, "sms": False}, "frequency": "weekly",
                                  "topics": ["Jazz"]}},
            headers={**alice, "If-Match": '"0"'},
        )
        assert response.status_code == 200, response.text
        assert response.headers["ETag"] == '"1"'
        relationship = response.json()["relationship"]
        assert (relationship["tags"], relationship["notes"], relationship["version"]) == (
            ["vip", "speaker"], "Met at the Berlin meetup", 1
        )
        assert relationship["preferences"] == {"channels": {"email": True, "sms": False}, "frequency": "weekly",
                                               "topics": ["jazz"], "language": None}
        assert (await api.get(f"/v1/contacts/{ann}", headers=alice)).json()["relationship"] == relationship

        stale = await api.patch(f"/v1/contacts/{ann}", json={"notes": "lost"}, headers={**alice, "If-Match": '"0"'})
        assert (stale.status_code, stale.json()) == (412, {"detail": "the relationship is at version 1, not 0"})
        too_many = await api.patch(
            f"/v1/contacts/{ann}", json={"tags": {"add": [f"t{i}" for i in range(99)]}}, headers=alice
        )
        assert too_many.status_code == 422
        assert too_many.json()["detail"][0]["loc"] == ["body", "tags"]

        bob = auth(isolation, "org-a", user="bob@org-a")
        unsubscribe = await api.patch(
            f"/v1/contacts/{ann}",
            json={"email_permission": "unsubscribed", "tags": {"remove": ["SPEAKER"]}, "notes": None,
                  "preferences": {"channels": {"email": None}, "topics": None}},
            headers=bob,
        )
        assert unsubscribe.status_code == 200, unsubscribe.text
        after = unsubscribe.json()
        permission = after["relationship"]["email_permission"]
        assert (permission["status"], permission["source"], permission["changed_by"]) == (
            "unsubscribed", "api", "bob@org-a"
        )
        assert after["email_permission"] == "unsubscribed"
        assert (after["relationship"]["tags"], after["relationship"]["notes"], after["relationship"]["version"]) == (
            ["vip"], None, 2
        )
        assert after["relationship"]["preferences"]["channels"] == {"sms": False}
        assert after["relationship"]["preferences"]["frequency"] == "weekly"
        without_user = await api.patch(f"/v1/contacts/{ann}", json={"notes": "n"}, headers=auth(isolation, "org-a"))
        assert without_user.status_code == 200

        history = (await api.get(f"/v1/contacts/{ann}/changes", params={"limit": 2}, headers=alice)).json()
        older = (await api.get(f"/v1/contacts/{ann}/changes", params={"cursor": history["next_cursor"]},
                               headers=alice)).json()
        assert [c["changed_by"] for c in history["items"] + older["items"]] == ["org-a", "bob@org-a", "alice@org-a"]
        assert older["next_cursor"] is None
        assert history["items"][0]["changes"] == {"notes": "n"}

    log = rows(
        isolation,
        "SELECT organizer_id, contact_id, changed_by, changed_at, changes FROM organizer_contact_changes "
        "ORDER BY sequence",
    )
    assert [(r[0], r[1], r[2]) for r in log] == [
        ("org-a", ann, "alice@org-a"), ("org-a", ann, "bob@org-a"), ("org-a", ann, "org-a")
    ]  # the refused changes (412, 422) left nothing
    assert all(started <= r[3] <= datetime.now(UTC) for r in log)
    assert log[0][4] == {
        "tags": {"add": ["vip", "speaker"]}, "notes": "Met at the Berlin meetup",
        "preferences": {"channels": {"email": True, "sms": False}, "frequency": "weekly", "topics": ["jazz"]},
    }
    assert log[1][4]["email_permission"] == "unsubscribed"
    assert rows(
        isolation,
        "SELECT explicit_permission, explicit_permission_by, permission_source, relationship_version "
        "FROM organizer_contacts WHERE contact_id = %s", ann,
    ) == [("unsubscribed", "bob@org-a", "api", 3)]


async def test_an_explicit_unsubscribe_survives_a_later_import_and_a_later_import_still_applies(
    isolation: Isolation,
) -> None:
    stays, follows = new_id(), new_id()
    org_a = auth(isolation, "org-a", user="alice")
    async with profiles_api(isolation) as api:
        await publish_contact_events(isolation, [
            created(stays, "stays@example.com", imported("org-a", "subscribed")),
            created(follows, "follows@example.com", imported("org-a", "unsubscribed")),
        ])
        await visible(api, org_a, stays, follows)
        for contact_id, status in ((stays, "unsubscribed"), (follows, "subscribed")):
            response = await api.patch(f"/v1/contacts/{contact_id}", json={"email_permission": status}, headers=org_a)
            assert response.status_code == 200, response.text

        reimport_at = datetime.now(UTC) + timedelta(minutes=1)  # later than the explicit statements
        await publish_contact_events(isolation, [
            matched(stays, 2, imported("org-a", "subscribed", import_id="imp-2"), at=reimport_at),
            matched(follows, 2, imported("org-a", "unsubscribed", import_id="imp-2"), at=reimport_at),
        ])

        def reimport_applied() -> bool:
            return rows(
                isolation, "SELECT count(*) FROM organizer_contacts WHERE import_permission_by = 'imp-2'"
            )[0][0] == 2

        await wait_until(reimport_applied, timeout=45)
        stayed = (await api.get(f"/v1/contacts/{stays}", headers=org_a)).json()["relationship"]["email_permission"]
        followed = (await api.get(f"/v1/contacts/{follows}", headers=org_a)).json()["relationship"]["email_permission"]
        listed = (await api.get("/v1/contacts", params={"permission": "unsubscribed"}, headers=org_a)).json()

    assert (stayed["status"], stayed["source"], stayed["changed_by"]) == ("unsubscribed", "api", "alice")
    assert (followed["status"], followed["source"], followed["changed_by"]) == ("unsubscribed", "import", "imp-2")
    assert sorted(c["contact_id"] for c in listed["items"]) == sorted([stays, follows])


async def test_an_unsubscribe_from_an_import_survives_a_reimport_until_the_organizer_opts_the_person_back_in(
    isolation: Isolation,
) -> None:
    person = new_id()
    org_a = auth(isolation, "org-a", user="alice")

    def contact_version() -> int:
        found = rows(isolation, "SELECT contact_version FROM contact_profiles WHERE contact_id = %s", person)
        return int(found[0][0]) if found else 0

    async def permission() -> dict[str, Any]:
        contact = (await api.get(f"/v1/contacts/{person}", headers=org_a)).json()
        return dict(contact["relationship"]["email_permission"])

    async with profiles_api(isolation) as api:
        await publish_contact_events(isolation, [
            created(person, "opted-out@example.com", imported("org-a", "unsubscribed", import_id="imp-1")),
            matched(person, 2, imported("org-a", "subscribed", import_id="imp-2"), at=T0 + timedelta(days=1)),
        ])
        await wait_until(lambda: contact_version() == 2, timeout=45)
        after_reimport = await permission()

        response = await api.patch(f"/v1/contacts/{person}", json={"email_permission": "subscribed"}, headers=org_a)
        assert response.status_code == 200, response.text
        opted_back_in = await permission()

    assert (after_reimport["status"], after_reimport["source"], after_reimport["changed_by"]) == (
        "unsubscribed", "import", "imp-1"
    )
    assert (opted_back_in["status"], opted_back_in["source"], opted_back_in["changed_by"]) == (
        "subscribed", "api", "alice"
    )


async def test_search_filters_engagement_order_and_cursors(isolation: Isolation) -> None:
    ids = sorted(new_id() for _ in range(6))
    ann, bea, cid, dan, eve, fay = ids
    org_a = auth(isolation, "org-a")
    source = imported("org-a")
    events: list[ContactEvent] = [
        created(ann, "ann@example.com", imported("org-a", "subscribed"), first_name="Ann", company="Acme"),
        created(bea, "bea@example.com", source, first_name="Bea", last_name="Annan", company="ACME"),
        created(cid, "cid@example.com", source, company="acme"),
        created(dan, "dan@example.com", imported("org-a", "unsubscribed"), company="Globex"),
        created(eve, "eve@example.com", source),
        created(fay, "fay@example.com", source),
        # engagement: cid 2 events, dan 2 events (more tickets), ann 1 event, bea only a ticket, eve only
        # registered (active, nothing attended), fay never active
        interaction(cid, 2, "org-a", "event_checked_in", event="e1", hours=1),
        interaction(cid, 3, "org-a", "event_checked_in", event="e2", hours=30),
        interaction(dan, 2, "org-a", "event_checked_in", event="e1", hours=2),
        interaction(dan, 3, "org-a", "event_checked_in", event="e2", hours=3),
        interaction(dan, 4, "org-a", "ticket_purchased", event="e2", hours=1, order_id="o-dan", tickets=2),
        interaction(ann, 2, "org-a", "event_checked_in", event="e1", hours=5),
        interaction(bea, 2, "org-a", "ticket_purchased", event="e3", hours=48, order_id="o-bea", tickets=4),
        interaction(eve, 2, "org-a", "waitlist_registered", event="e3", hours=50),
    ]
    async with profiles_api(isolation) as api:
        await publish_contact_events(isolation, events)
        await visible(api, org_a, *ids)

        async def engaged() -> bool:
            active = rows(isolation, "SELECT count(*) FROM organizer_contacts WHERE last_active_at IS NOT NULL")
            return active[0][0] == 5

        await wait_until(engaged, timeout=45)
        for contact_id, tags in ((ann, ["VIP", "speaker"]), (bea, ["vip"]), (dan, ["vip", "sponsor"])):
            response = await api.patch(f"/v1/contacts/{contact_id}", json={"tags": {"set": tags}}, headers=org_a)
            assert response.status_code == 200, response.text

        async def found(**params: Any) -> list[str]:
            response = await api.get("/v1/contacts", params=params, headers=org_a)
            assert response.status_code == 200, response.text
            assert response.json()["next_cursor"] is None
            return [c["contact_id"] for c in response.json()["items"]]

        assert await found() == ids
        assert await found(q="ann") == [ann, bea]  # first name Ann, last name Annan
        assert await found(email="BEA@example.com") == [bea]
        assert await found(tag=" vip") == [ann, bea, dan]
        assert await found(tag=["VIP", "sponsor"]) == [dan]  # all of them
        assert await found(tag="nobody-has-it") == []
        assert await found(permission="subscribed") == [ann]
        assert await found(permission="unknown") == [bea, cid, eve, fay]
        assert await found(company="aCME") == [ann, bea, cid]
        assert await found(company="acme", tag="vip") == [ann, bea]
        assert await found(min_events_attended=2) == [cid, dan]
        assert await found(min_events_attended=1, tag="vip") == [ann, dan]
        assert await found(last_active_after=(T0 + timedelta(hours=24)).isoformat()) == [bea, cid, eve]
        assert await found(last_active_before=(T0 + timedelta(hours=5)).isoformat()) == [dan]
        assert await found(
            last_active_after=(T0 + timedelta(hours=3)).isoformat(),
            last_active_before=(T0 + timedelta(hours=48, minutes=1)).isoformat(),
        ) == [ann, bea, cid, dan]

        by_engagement = [dan, cid, ann, bea, eve, fay]
        assert await found(sort="engagement") == by_engagement
        for sort, expected in (("id", ids), ("engagement", by_engagement)):
            for limit in (1, 2, 4):
                paged: list[str] = []
                cursor: str | None = None
                while True:
                    params: dict[str, Any] = {"sort": sort, "limit": limit, **({"cursor": cursor} if cursor else {})}
                    page = (await api.get("/v1/contacts", params=params, headers=org_a)).json()
                    paged += [c["contact_id"] for c in page["items"]]
                    cursor = page["next_cursor"]
                    if cursor is None:
                        break
                assert paged == expected, (sort, limit)
        filtered = (await api.get("/v1/contacts", params={"sort": "engagement", "tag": "vip", "limit": 2},
                                  headers=org_a)).json()
        rest = (await api.get("/v1/contacts", params={"sort": "engagement", "tag": "vip", "limit": 2,
                                                      "cursor": filtered["next_cursor"]}, headers=org_a)).json()
        assert [c["contact_id"] for c in filtered["items"] + rest["items"]] == [dan, ann, bea]

        most = (await api.get("/v1/insights/most-engaged", params={"limit": 4}, headers=org_a)).json()["items"]
        assert [c["contact_id"] for c in most] == [dan, cid, ann, bea]
        assert most[0]["insights"] == {
            "events_attended": 2, "registrations": 0, "tickets_purchased": 2, "orders": 1,
            "first_seen_at": "2026-03-01T00:00:00Z", "last_active_at": "2026-03-01T03:00:00Z",
            "attended_events": ["e2", "e1"],  # the latest check-in first
        }
        everyone_active = (await api.get("/v1/insights/most-engaged", params={"limit": 50}, headers=org_a)).json()
        assert [c["contact_id"] for c in everyone_active["items"]] == [dan, cid, ann, bea, eve]


async def test_replaying_the_change_log_reproduces_the_relationships(isolation: Isolation) -> None:
    ann, bob = sorted([new_id(), new_id()])
    org_a = auth(isolation, "org-a", user="alice")
    async with profiles_api(isolation) as api:
        await publish_contact_events(isolation, [
            created(ann, "ann@example.com", imported("org-a", "subscribed")),
            created(bob, "bob@example.com", imported("org-a")),
        ])
        await visible(api, org_a, ann, bob)
        for contact_id, body in (
            (ann, {"tags": {"add": ["vip", "speaker"]}, "notes": "first"}),
            (bob, {"preferences": {"channels": {"sms": True}, "language": "de"}}),
            (ann, {"email_permission": "unsubscribed", "tags": {"remove": ["vip"]}}),
            (ann, {"preferences": {"frequency": "monthly"}, "notes": "second"}),
            (bob, {"email_permission": "subscribed"}),
        ):
            assert (await api.patch(f"/v1/contacts/{contact_id}", json=body, headers=org_a)).status_code == 200

    everything = "SELECT * FROM organizer_contacts ORDER BY organizer_id, contact_id"
    before = rows(isolation, everything)
    rows(  # what the contact log alone gives: the API's changes undone
        isolation,
        "UPDATE organizer_contacts SET tags = '{}', notes = NULL, preferences = '{}', relationship_version = 0, "
        "explicit_permission = NULL, explicit_permission_at = NULL, explicit_permission_by = NULL, "
        "email_permission = coalesce(import_permission, 'unknown'), "
        "permission_source = CASE WHEN import_permission IS NULL THEN NULL ELSE 'import' END, "
        "permission_changed_at = import_permission_at, permission_changed_by = import_permission_by RETURNING 1",
    )
    assert rows(isolation, everything) != before

    engine = create_engine(isolation.database_url, schema=isolation.schema("profiles"))
    try:
        async with engine.begin() as conn:
            replayed = await relationships.replay_changes(conn, await relationships.load_changes(conn))
    finally:
        await engine.dispose()

    assert replayed == relationships.Replayed(applied=5)
    assert rows(isolation, everything) == before


async def test_concurrent_patches_to_one_relationship_all_apply_in_some_order(isolation: Isolation) -> None:
    ann = new_id()
    org_a = auth(isolation, "org-a")
    async with profiles_api(isolation) as api:
        await publish_contact_events(isolation, [created(ann, "ann@example.com", imported("org-a"))])
        await visible(api, org_a, ann)

        async def tag(n: int) -> int:
            response = await api.patch(f"/v1/contacts/{ann}", json={"tags": {"add": [f"t{n}"]}}, headers=org_a)
            return response.status_code

        assert await asyncio.gather(*(tag(n) for n in range(12))) == [200] * 12
        final = (await api.get(f"/v1/contacts/{ann}", headers=org_a)).json()["relationship"]

    assert sorted(final["tags"]) == sorted(f"t{n}" for n in range(12))
    assert final["version"] == 12
    assert rows(isolation, "SELECT count(*) FROM organizer_contact_changes")[0][0] == 12
