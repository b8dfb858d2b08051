"""``rebuild`` in-process against the real broker and PostgreSQL: it publishes nothing, refuses to overwrite
an existing schema unless asked, and ``swap`` puts the rebuilt schema in the live one's place."""

from __future__ import annotations

import psycopg
import pytest

from ops.local_postgres import libpq_url
from services.profiles.config import ProfilesSettings
from services.profiles.rebuild import RebuildError, rebuild
from shared import topics
from tests.integration.test_profiles_service import (
    consumed,
    created,
    matched,
    message,
    new_id,
    profiles_api,
    rows,
    updated,
)
from tests.support.isolation import Isolation
from tests.support.kafka import consume_quiet, publish
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration


def settings(isolation: Isolation) -> ProfilesSettings:
    return ProfilesSettings(
        db_schema=isolation.schema("profiles"),
        consumer_group=isolation.consumer_group("profiles"),
        platform=isolation.platform_settings(),
    )


def schema_exists(isolation: Isolation, schema: str) -> bool:
    with psycopg.connect(libpq_url(isolation.database_url)) as conn:
        return conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,)).fetchone() is not None


def drop(isolation: Isolation, *schemas: str) -> None:
    with psycopg.connect(libpq_url(isolation.database_url), autocommit=True) as conn:
        for schema in schemas:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


async def test_a_rebuild_publishes_nothing_refuses_an_existing_schema_and_swaps_in(isolation: Isolation) -> None:
    contact = new_id()
    events = [
        created(contact, "kim@example.com", "org-a", "subscribed", first_name="Kim"),
        updated(contact, 2, "org-a", company="Acme"),
        matched(contact, 3, "org-b", "unsubscribed"),
        updated(contact, 4, "org-b", by_person=True, last_name="Lee"),
    ]
    async with profiles_api(isolation):
        await publish(isolation.kafka_bootstrap, [message(isolation, event) for event in events])
        await wait_until(lambda: consumed(isolation) == 4, timeout=30)
    live_profiles = rows(isolation, "SELECT * FROM contact_profiles")
    live_relationships = rows(isolation, "SELECT * FROM organizer_contacts ORDER BY organizer_id")
    snapshots_before = await consume_quiet(isolation.kafka_bootstrap, isolation.topic(topics.PROFILE_UPDATES),
                                           quiet_seconds=1)
    live = isolation.schema("profiles")
    target = f"{live}_rebuild"
    retired: str | None = None
    try:
        summary = await rebuild(settings(isolation), quiet_seconds=1)
        assert (summary.target_schema, summary.messages, summary.applied) == (target, 4, 4)
        assert (summary.profiles, summary.organizer_contacts, summary.interactions) == (1, 2, 0)

        with pytest.raises(RebuildError, match="already exists"):
            await rebuild(settings(isolation), quiet_seconds=1)
        with pytest.raises(RebuildError, match="must not be the live schema"):
            await rebuild(settings(isolation), target_schema=live)

        summary = await rebuild(settings(isolation), replace=True, swap=True, quiet_seconds=1)
        retired = summary.swapped_out
        assert retired is not None and retired.startswith(f"{live}_replaced_")
        assert schema_exists(isolation, retired) and not schema_exists(isolation, target)
        # the live schema is now the rebuilt one: the same read model, nothing in its outbox
        assert rows(isolation, "SELECT * FROM contact_profiles") == live_profiles
        assert rows(isolation, "SELECT * FROM organizer_contacts ORDER BY organizer_id") == live_relationships
        assert rows(isolation, "SELECT count(*) FROM outbox_batches") == [(0,)]
        assert consumed(isolation) == 4  # the rebuild's positions, under the live group: nothing applied twice
        snapshots_after = await consume_quiet(isolation.kafka_bootstrap, isolation.topic(topics.PROFILE_UPDATES),
                                              quiet_seconds=1)
        assert snapshots_before and len(snapshots_after) == len(snapshots_before)
    finally:
        drop(isolation, target, *([retired] if retired else []))


async def test_a_rebuild_against_a_database_without_the_live_schema_says_so_and_creates_nothing(
    isolation: Isolation,
) -> None:
    """The usual mistake: running the command without the service's database settings."""
    target = f"{isolation.schema('profiles')}_rebuild"

    with pytest.raises(RebuildError, match=r"live schema .* is not in the database .*CONTACTS_DATABASE_URL"):
        await rebuild(settings(isolation))

    assert not schema_exists(isolation, isolation.schema("profiles"))
    assert not schema_exists(isolation, target)
