"""profiles against the real broker and PostgreSQL: contact events in; each organizer's view, served only to
the organizers related to each contact; full snapshots of the canonical profile out, exactly once in effect."""

from __future__ import annotations

import contextlib
import functools
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest

from ops.local_postgres import libpq_url
from services.profiles.app import create_app
from services.profiles.config import ProfilesSettings
from shared import topics
from shared.auth import mint_token
from shared.codec import encode
from shared.envelope import Envelope
from shared.events import (
    ContactCreatedV1,
    ContactEvent,
    ContactMatchedV1,
    ContactProfileUpdatedV1,
    ContactSource,
    ContactUpdatedV1,
    EmailPermission,
    ImportRowReceivedV1,
)
from shared.producer import OutgoingMessage
from tests.support.isolation import Isolation
from tests.support.kafka import Consumed, consume_quiet, consume_until, publish
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def source(organizer: str, permission: EmailPermission | None = None) -> ContactSource:
    """``organizer``'s import."""
    return ContactSource(
        kind="import",
        organizer_id=organizer,
        import_id=f"imp-{organizer}",
        row_number=1,
        email_permission=permission,
    )


def person(organizer: str) -> ContactSource:
    """The person, through an interaction with ``organizer``'s event."""
    return ContactSource(kind="interaction", organizer_id=organizer, interaction_id=f"m-{uuid.uuid4().hex[:8]}")


def created(
    contact_id: str, email: str, organizer: str, permission: EmailPermission | None = None, **fields: str
) -> ContactCreatedV1:
    return ContactCreatedV1(
        contact_id=contact_id,
        version=1,
        occurred_at=T0,
        source=source(organizer, permission),
        email=email.strip().lower(),
        email_original=email.strip(),
        fields=fields,
    )  # type: ignore[arg-type]


def updated(
    contact_id: str, version: int, organizer: str, *, by_person: bool = False, **changes: str
) -> ContactUpdatedV1:
    """``organizer``'s import (or, ``by_person``, the person at its event) stating ``changes``."""
    return ContactUpdatedV1(
        contact_id=contact_id,
        version=version,
        occurred_at=T0 + timedelta(hours=version),
        source=person(organizer) if by_person else source(organizer),
        changes=changes,
    )  # type: ignore[arg-type]


def matched(
    contact_id: str, version: int, organizer: str, permission: EmailPermission | None = None
) -> ContactMatchedV1:
    return ContactMatchedV1(
        contact_id=contact_id,
        version=version,
        occurred_at=T0 + timedelta(hours=version),
        source=source(organizer, permission),
    )


def message(isolation: Isolation, event: ContactEvent) -> OutgoingMessage:
    """What identity would publish on the contact log, keyed by contact id."""
    envelope = Envelope(
        type=event.TYPE,
        source="kagibag-contacts/identity",
        subject=event.contact_id,
        correlation_id=f"corr-{uuid.uuid4().hex[:8]}",
    )
    return encode(event, envelope, topic=isolation.topic(topics.CONTACT_EVENTS), key=event.contact_id)


PROFILE_KEYS = (
    "contact_id", "email", "email_original", "first_name", "last_name", "company", "title", "phone",
    "display_name", "email_permission", "view_version", "created_at", "updated_at",
)


def new_id() -> str:
    return str(uuid.uuid4())


@contextlib.asynccontextmanager
async def profiles_api(isolation: Isolation) -> AsyncIterator[httpx.AsyncClient]:
    """profiles running in this process (subscribers, relay and API) inside ``isolation``."""
    isolation.migrate(("profiles",))
    settings = ProfilesSettings(
        db_schema=isolation.schema("profiles"),
        consumer_group=isolation.consumer_group("profiles"),
        platform=isolation.platform_settings(log_level="WARNING"),
    )
    app = create_app(settings)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://profiles") as client,
    ):
        yield client


def auth(isolation: Isolation, organizer: str) -> dict[str, str]:
    token = mint_token(secret=isolation.auth_secret, organizer_id=organizer, ttl_seconds=600)
    return {"Authorization": f"Bearer {token}"}


def rows(isolation: Isolation, sql: str, *params: object) -> list[tuple[Any, ...]]:
    with psycopg.connect(libpq_url(isolation.database_url)) as conn:
        conn.execute(f'SET search_path TO "{isolation.schema("profiles")}"')
        return conn.execute(sql, params).fetchall()


def consumed(isolation: Isolation) -> int:
    """How many records of the contact log profiles has applied (its stored positions, over every partition)."""
    return int(rows(isolation, "SELECT coalesce(sum(next_offset), 0) FROM consumer_positions")[0][0])


def snapshots(seen: list[Consumed], contact_id: str) -> list[ContactProfileUpdatedV1]:
    return [
        c.event
        for c in seen
        if isinstance(c.event, ContactProfileUpdatedV1) and c.event.contact_id == contact_id
    ]


async def test_each_organizer_sees_only_the_contacts_it_has_a_relationship_with(isolation: Isolation) -> None:
    ann, bob = sorted([new_id(), new_id()])
    events: list[ContactEvent] = [
        created(
            ann, " Ann@Example.com", "org-a", "subscribed", first_name="Ann", last_name="Lee", company="Acme"
        ),
        created(bob, "bob_99@example.com", "org-a"),
        matched(ann, 2, "org-b", "unsubscribed"),
    ]
    async with profiles_api(isolation) as api:
        await publish(isolation.kafka_bootstrap, [message(isolation, e) for e in events])
        org_a, org_b, org_c = (auth(isolation, org) for org in ("org-a", "org-b", "org-c"))

        async def everything_projected() -> bool:
            page = (await api.get("/v1/contacts", headers=org_a)).json()["items"]
            seen_by_b = (await api.get(f"/v1/contacts/{ann}", headers=org_b)).status_code == 200
            return seen_by_b and [c["display_name"] for c in page] == ["Ann Lee", "bob_99"]

        await wait_until(everything_projected, timeout=30)

        by_email = (
            await api.get("/v1/contacts", params={"email": "  ANN@example.COM "}, headers=org_a)
        ).json()
        assert by_email["next_cursor"] is None
        (item,) = by_email["items"]
        assert {key: item[key] for key in PROFILE_KEYS} == {
            "contact_id": ann,
            "email": "ann@example.com",
            "email_original": "Ann@Example.com",
            "first_name": "Ann",
            "last_name": "Lee",
            "company": "Acme",
            "title": None,
            "phone": None,
            "display_name": "Ann Lee",
            "email_permission": "subscribed",
            "view_version": 1,  # org-b's match is not org-a's business
            "created_at": "2026-03-01T00:00:00Z",
            "updated_at": "2026-03-01T00:00:00Z",
        }
        as_b = (await api.get("/v1/contacts", params={"email": "ann@example.com"}, headers=org_b)).json()[
            "items"
        ]
        assert [(c["contact_id"], c["email_permission"]) for c in as_b] == [(ann, "unsubscribed")]
        assert {key: as_b[0][key] for key in ("first_name", "company", "display_name", "email_original",
                                              "view_version", "created_at")} == {
            "first_name": None, "company": None, "display_name": "ann", "email_original": "ann@example.com",
            "view_version": 1, "created_at": "2026-03-01T02:00:00Z",
        }  # none of org-a's values: org-b brought the bare email
        assert [c["contact_id"] for c in (await api.get("/v1/contacts", headers=org_b)).json()["items"]] == [
            ann
        ]
        assert (await api.get(f"/v1/contacts/{bob}", headers=org_b)).status_code == 404

        assert (await api.get("/v1/contacts", params={"email": "ann@example.com"}, headers=org_c)).json() == {
            "items": [],
            "next_cursor": None,
        }
        assert (await api.get("/v1/contacts", headers=org_c)).json()["items"] == []
        for contact_id in (ann, bob, new_id()):
            response = await api.get(f"/v1/contacts/{contact_id}", headers=org_c)
            assert (response.status_code, response.json()) == (404, {"detail": "contact not found"})

        async def search(q: str) -> list[str]:
            response = await api.get("/v1/contacts", params={"q": q}, headers=org_a)
            assert response.status_code == 200, response.text
            return [c["contact_id"] for c in response.json()["items"]]

        assert await search("an") == [ann]  # email, first and display name
        assert (await api.get("/v1/contacts", params={"q": "lee"}, headers=org_b)).json()["items"] == []
        assert await search("LEE") == [ann]  # last name, any case
        assert await search("bob_") == [bob]
        assert await search("b%") == [] and await search("_") == []  # LIKE wildcards are plain characters
        assert await search("example") == []  # a prefix, not a substring

        first = (await api.get("/v1/contacts", params={"limit": 1}, headers=org_a)).json()
        assert [c["contact_id"] for c in first["items"]] == [ann] and first["next_cursor"]
        second = (
            await api.get("/v1/contacts", params={"limit": 1, "cursor": first["next_cursor"]}, headers=org_a)
        ).json()
        assert [c["contact_id"] for c in second["items"]] == [bob] and second["next_cursor"] is None

    assert rows(
        isolation, "SELECT organizer_id, contact_id, email_permission FROM organizer_contacts ORDER BY 1, 2"
    ) == [("org-a", ann, "subscribed"), ("org-a", bob, "unknown"), ("org-b", ann, "unsubscribed")]


async def test_snapshots_carry_the_canonical_profile_with_increasing_versions_and_a_redelivery_changes_nothing(
    isolation: Isolation,
) -> None:
    contact = new_id()
    history: list[ContactEvent] = [
        created(contact, "Zoe@Example.com", "org-a", first_name="Zo", company="Acme"),
        updated(contact, 2, "org-b", by_person=True, first_name="Zoë", title="CTO"),
        matched(contact, 3, "org-b", "subscribed"),
        updated(contact, 4, "org-a", phone="+1 555"),
        updated(contact, 5, "org-a", by_person=True, last_name="Ōkubo"),
    ]
    messages = [message(isolation, event) for event in history]
    profile_updates = isolation.topic(topics.PROFILE_UPDATES)
    async with profiles_api(isolation):
        for applied, single in enumerate(messages, start=1):  # one by one: each its own batch and snapshot
            await publish(isolation.kafka_bootstrap, [single])
            await wait_until(
                functools.partial(lambda n: consumed(isolation) >= n, applied),
                timeout=20,
            )
        seen = await consume_until(
            isolation.kafka_bootstrap, profile_updates, lambda seen: len(snapshots(seen, contact)) >= 3
        )
        before = (
            rows(isolation, "SELECT * FROM contact_profiles"),
            rows(isolation, "SELECT * FROM organizer_contacts"),
        )

        marker = new_id()
        await publish(
            isolation.kafka_bootstrap, [*messages, message(isolation, created(marker, "m@x.io", "org-m"))]
        )
        again = await consume_until(
            isolation.kafka_bootstrap, profile_updates, lambda seen: len(snapshots(seen, marker)) == 1
        )
        again = await consume_quiet(isolation.kafka_bootstrap, profile_updates, quiet_seconds=1.5)
        after = (
            rows(isolation, "SELECT * FROM contact_profiles WHERE contact_id <> %s", marker),
            rows(isolation, "SELECT * FROM organizer_contacts WHERE contact_id <> %s", marker),
        )

    published = snapshots(seen, contact)
    # created (by an import: the email alone), then each statement of the person; the imports and the
    # match changed nothing the person said
    assert [s.profile_version for s in published] == [2, 4, 10]
    assert [s.display_name for s in published] == ["zoe", "Zoë", "Zoë Ōkubo"]
    assert published[-1].model_dump() == {
        "contact_id": contact,
        "profile_version": 10,
        "email": "zoe@example.com",
        "email_original": "zoe@example.com",
        "first_name": "Zoë",
        "last_name": "Ōkubo",
        "company": None,
        "title": "CTO",
        "phone": None,
        "display_name": "Zoë Ōkubo",
        "created_at": T0,
        "updated_at": T0 + timedelta(hours=5),
        "bio": None,
        "social_links": {},
        "user_account_id": None,
        "field_sources": {
            "first_name": {"kind": "interaction", "at": T0 + timedelta(hours=2)},
            "title": {"kind": "interaction", "at": T0 + timedelta(hours=2)},
            "last_name": {"kind": "interaction", "at": T0 + timedelta(hours=5)},
        },
    }
    assert all(c.key == contact for c in seen if c.event and c.event.contact_id == contact)  # type: ignore[attr-defined]
    assert snapshots(again, contact) == published
    assert after == before
    assert sorted(r[0] for r in before[1]) == ["org-a", "org-b"]


async def test_a_message_of_the_wrong_type_is_dead_lettered_and_the_rest_applied(
    isolation: Isolation,
) -> None:
    contact = new_id()
    row = ImportRowReceivedV1(import_id="imp-1", organizer_id="org-a", row_number=1, email="x@x.io")
    misplaced = encode(row, Envelope(type=row.TYPE, source="kagibag-contacts/ingest"),
                       topic=isolation.topic(topics.CONTACT_EVENTS), key="x@x.io")
    dead_letters = isolation.topic(topics.dead_letter_topic("profiles"))
    async with profiles_api(isolation) as api:
        await publish(
            isolation.kafka_bootstrap, [misplaced, message(isolation, created(contact, "early@x.io", "org-a"))]
        )
        (letter,) = await consume_until(isolation.kafka_bootstrap, dead_letters, lambda seen: len(seen) >= 1)

        async def named() -> bool:
            response = await api.get(f"/v1/contacts/{contact}", headers=auth(isolation, "org-a"))
            return response.status_code == 200 and response.json()["display_name"] == "early"

        await wait_until(named, timeout=20)

    assert letter.headers["dlq_error_code"] == b"UNEXPECTED_TYPE"
    assert letter.record.value == misplaced.value


async def test_an_event_the_database_refuses_is_dead_lettered_alone_and_the_rest_applied(isolation: Isolation) -> None:
    """A NUL character decodes as JSON but PostgreSQL refuses it: after retries the batch is split until that
    event stands alone, which goes to the dead letters; its neighbours are applied."""
    poisoned, fine = new_id(), new_id()
    bad = message(isolation, created(poisoned, "nul@x.io", "org-a", first_name="A\u0000nn"))
    dead_letters = isolation.topic(topics.dead_letter_topic("profiles"))
    async with profiles_api(isolation) as api:
        await publish(isolation.kafka_bootstrap, [bad, message(isolation, created(fine, "fine@x.io", "org-a"))])
        (letter,) = await consume_until(isolation.kafka_bootstrap, dead_letters, lambda seen: len(seen) >= 1,
                                        timeout=60)

        async def fine_applied() -> bool:
            return (await api.get(f"/v1/contacts/{fine}", headers=auth(isolation, "org-a"))).status_code == 200

        await wait_until(fine_applied, timeout=30)
        assert (await api.get(f"/v1/contacts/{poisoned}", headers=auth(isolation, "org-a"))).status_code == 404

    assert letter.headers["dlq_error_code"] == b"PROCESSING_FAILED"
    assert letter.record.value == bad.value
