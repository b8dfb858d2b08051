"""Migrations profiles_0003 and profiles_0004 on data written by the old model (one merged profile per contact,
tracking rows, a row-per-message outbox): every value goes where its stored source says (the person's statements
stay canonical, each organizer's imports go to its own layer and view), unpublished messages move to the new
outbox, and the profile versions published afterwards stay above the ones published before."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from alembic import command
from alembic.config import Config

from ops.catalog import migrations_dir
from ops.local_postgres import libpq_url
from shared import topics
from shared.events import ContactProfileUpdatedV1
from tests.integration.test_profiles_service import auth, message, profiles_api, rows, snapshots, updated
from tests.support.isolation import Isolation
from tests.support.kafka import consume_until, publish
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

T0 = datetime(2026, 3, 1, tzinfo=UTC)
ANN = "c-ann"


def migrate_to(isolation: Isolation, revision: str, *, down: bool = False) -> None:
    config = Config()
    config.set_main_option("script_location", str(migrations_dir("profiles")))
    config.attributes["database_url"] = isolation.database_url
    config.attributes["schema"] = isolation.schema("profiles")
    (command.downgrade if down else command.upgrade)(config, revision)


def source(kind: str, organizer: str, hours: int, reference: str) -> dict[str, str]:
    key = "import_id" if kind == "import" else "interaction_id"
    return {"kind": kind, "organizer_id": organizer, "at": (T0 + timedelta(hours=hours)).isoformat(), key: reference}


def old_model(isolation: Isolation) -> None:
    """Ann as the old model kept her: org-b imported her with a name, company, spelling and a link, org-a her
    title, and she stated her last name and GitHub handle herself at one of org-b's events; org-c knows her from
    a check-in. The name was resolved ahead of the contact events (version 11 published)."""
    by_b, by_a, by_ann = source("import", "org-b", 0, "imp-b"), source("import", "org-a", 1, "imp-a"), source(
        "interaction", "org-b", 2, "m-1")
    with psycopg.connect(libpq_url(isolation.database_url)) as conn:
        conn.execute(f'SET search_path TO "{isolation.schema("profiles")}"')
        conn.execute(
            "INSERT INTO contact_profiles (contact_id, email, email_original, first_name, last_name, company, title, "
            "display_name, display_name_version, contact_version, profile_version, created_at, updated_at, "
            "social_links, field_sources) VALUES (%s, 'ann@x.io', 'Ann@X.io', 'Ann', 'Lee', 'Bcorp', 'CTO', "
            "'Ann Lee', 8, 3, 11, %s, %s, %s, %s)",
            (ANN, T0, T0 + timedelta(hours=2), json.dumps({"github": "@ann", "x": "@bcorp"}), json.dumps({
                "email": by_b, "first_name": by_b, "company": by_b, "social_links.x": by_b, "title": by_a,
                "last_name": by_ann, "social_links.github": by_ann,
            })),
        )
        conn.execute(  # a snapshot written but not yet published when the service was stopped
            "INSERT INTO outbox (topic, key, value, headers) VALUES (%s, %s, %s, %s)",
            (isolation.topic(topics.PROFILE_UPDATES), ANN.encode(), b'{"legacy": true}',
             json.dumps([["ce_type", ContactProfileUpdatedV1.TYPE], ["ce_id", "legacy-1"]])),
        )
        for organizer, hours in (("org-b", 0), ("org-a", 1), ("org-c", 5)):
            conn.execute(
                "INSERT INTO organizer_contacts (organizer_id, contact_id, first_seen_at, last_seen_at) "
                "VALUES (%s, %s, %s, %s)", (organizer, ANN, T0 + timedelta(hours=hours), T0 + timedelta(hours=hours)),
            )


VIEW = ("first_name", "last_name", "company", "title", "email_original", "display_name", "social_links",
        "view_version", "created_at", "updated_at")


async def test_old_rows_become_canonical_profiles_and_views_by_their_sources(isolation: Isolation) -> None:
    migrate_to(isolation, "profiles_0002")
    old_model(isolation)

    migrate_to(isolation, "head")

    assert rows(isolation, "SELECT count FROM outbox_batches") == [(1,)]
    canonical = rows(isolation, "SELECT stated, profile_version FROM contact_profiles")
    assert canonical == [({"values": {"last_name": "Lee", "social_links.github": "@ann"}, "sources": {
        "last_name": source("interaction", "org-b", 2, "m-1"),
        "social_links.github": source("interaction", "org-b", 2, "m-1")}}, 11)]
    views = {row[0]: row[1:] for row in rows(
        isolation, f"SELECT organizer_id, {', '.join(VIEW)} FROM organizer_contacts ORDER BY organizer_id")}
    hours = [T0 + timedelta(hours=n) for n in range(6)]
    assert views == {
        "org-a": (None, "Lee", None, "CTO", "ann@x.io", "Lee", {"github": "@ann"}, 1, hours[1], hours[2]),
        "org-b": ("Ann", "Lee", "Bcorp", None, "Ann@X.io", "Ann Lee", {"github": "@ann", "x": "@bcorp"}, 1,
                  hours[0], hours[2]),
        "org-c": (None, "Lee", None, None, "ann@x.io", "Lee", {"github": "@ann"}, 1, hours[5], hours[5]),
    }
    (sources_a, layer_a), = rows(isolation, "SELECT field_sources, imported FROM organizer_contacts "
                                            "WHERE organizer_id = 'org-a'")
    assert sources_a == {"title": source("import", "org-a", 1, "imp-a"),
                         "last_name": {"kind": "interaction", "at": hours[2].isoformat()},
                         "social_links.github": {"kind": "interaction", "at": hours[2].isoformat()}}
    assert layer_a == {"values": {"title": "CTO"}, "sources": {"title": source("import", "org-a", 1, "imp-a")}}
    (layer_b,) = rows(isolation, "SELECT imported FROM organizer_contacts WHERE organizer_id = 'org-b'")[0]
    assert layer_b["email_original"] == "Ann@X.io" and sorted(layer_b["values"]) == [
        "company", "first_name", "social_links.x"]

    # the service carries on from the converted rows: the person's next statement is published above 11
    async with profiles_api(isolation) as api:
        await publish(isolation.kafka_bootstrap, [
            message(isolation, updated(ANN, 4, "org-c", by_person=True, first_name="Annabel")),
        ])
        seen = await consume_until(isolation.kafka_bootstrap, isolation.topic(topics.PROFILE_UPDATES),
                                   lambda seen: bool(snapshots(seen, ANN)), accepted=(ContactProfileUpdatedV1,))
        assert any(c.record.value == b'{"legacy": true}' for c in seen)  # relayed from the migrated outbox
        await wait_until(lambda: rows(isolation, "SELECT view_version FROM organizer_contacts "
                                                 "WHERE organizer_id = 'org-a'") == [(2,)], timeout=20)
        as_a = (await api.get(f"/v1/contacts/{ANN}", headers=auth(isolation, "org-a"))).json()

    (published,) = snapshots(seen, ANN)
    assert (published.profile_version, published.display_name, published.company) == (12, "Annabel Lee", None)
    assert (as_a["first_name"], as_a["title"], as_a["display_name"], as_a["view_version"]) == (
        "Annabel", "CTO", "Annabel Lee", 2)


def test_the_views_migration_goes_back_keeping_the_canonical_profiles(isolation: Isolation) -> None:
    migrate_to(isolation, "profiles_0002")
    old_model(isolation)
    migrate_to(isolation, "profiles_0003")  # profiles_0004 drops the tracking records: it has no way back

    migrate_to(isolation, "profiles_0002", down=True)

    assert rows(isolation, "SELECT first_name, last_name, email_original, display_name, display_name_version, "
                           "profile_version FROM contact_profiles") == [(None, "Lee", "ann@x.io", "Lee", 3, 11)]
    assert rows(isolation, "SELECT count(*) FROM organizer_contacts") == [(3,)]
    migrate_to(isolation, "head")
    assert rows(isolation, "SELECT count FROM outbox_batches") == [(1,)]
