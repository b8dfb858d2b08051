"""Migration profiles_0005 on rows written before it: each organizer's row gets the events the contact attended
(the latest check-in first) and registered for from its own interactions only, and the imports its layer and
import permission name; other organizers' interactions and imports stay out of it."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from alembic import command
from alembic.config import Config

from ops.catalog import migrations_dir
from ops.local_postgres import libpq_url
from tests.support.isolation import Isolation

pytestmark = pytest.mark.integration

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def migrate_to(isolation: Isolation, revision: str) -> None:
    config = Config()
    config.set_main_option("script_location", str(migrations_dir("profiles")))
    config.attributes["database_url"] = isolation.database_url
    config.attributes["schema"] = isolation.schema("profiles")
    command.upgrade(config, revision)


def test_rows_get_their_own_events_and_imports(isolation: Isolation) -> None:
    migrate_to(isolation, "profiles_0004")
    layer = {"values": {"company": "Acme"}, "sources": {
        "company": {"kind": "import", "organizer_id": "org-a", "import_id": "imp-2", "at": T0.isoformat()},
        "first_name": {"kind": "interaction", "at": T0.isoformat()}}}
    interactions = [  # organizer, interaction, kind, event, hours
        ("org-a", "i1", "ticket_purchased", "ev-1", 1), ("org-a", "i2", "event_checked_in", "ev-1", 2),
        ("org-a", "i3", "event_checked_in", "ev-2", 5), ("org-a", "i4", "waitlist_registered", "ev-3", 3),
        ("org-a", "i5", "attendee_profile_completed", "ev-4", 4), ("org-b", "i6", "event_checked_in", "ev-9", 6),
    ]
    with psycopg.connect(libpq_url(isolation.database_url)) as conn:
        conn.execute(f'SET search_path TO "{isolation.schema("profiles")}"')
        for organizer, imported, permission_by in (("org-a", layer, "imp-1"), ("org-b", {}, None)):
            conn.execute(
                "INSERT INTO organizer_contacts (organizer_id, contact_id, first_seen_at, last_seen_at, imported, "
                "import_permission, import_permission_at, import_permission_by) VALUES (%s, 'c1', %s, %s, %s, %s, "
                "%s, %s)", (organizer, T0, T0, json.dumps(imported or {"values": {}, "sources": {}}),
                            permission_by and "subscribed", permission_by and T0, permission_by))
        for organizer, interaction, kind, event, hours in interactions:
            conn.execute(
                "INSERT INTO organizer_interactions (organizer_id, contact_id, interaction_id, kind, kagibag_event_id, "
                "occurred_at) VALUES (%s, 'c1', %s, %s, %s, %s)",
                (organizer, interaction, kind, event, T0 + timedelta(hours=hours)))

    migrate_to(isolation, "profiles_0005")

    with psycopg.connect(libpq_url(isolation.database_url)) as conn:
        conn.execute(f'SET search_path TO "{isolation.schema("profiles")}"')
        rows = conn.execute("SELECT organizer_id, attended_events, registered_events, import_ids "
                            "FROM organizer_contacts ORDER BY organizer_id").fetchall()
    assert rows == [("org-a", ["ev-2", "ev-1"], ["ev-1", "ev-2", "ev-3"], ["imp-1", "imp-2"]),
                    ("org-b", ["ev-9"], ["ev-9"], [])]
