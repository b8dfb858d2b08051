"""Migration identity_0003 on data written by the old model (one merged contact whose values came from any source,
tracking rows, a row-per-message outbox): each value an organizer imported moves to that organizer's layer, what
the person stated stays canonical, every organizer on the stream gets a layer, the event store gets positions in
stream order, and the legacy outbox's unpublished messages move to the new outbox."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import psycopg
import pytest
from alembic import command
from alembic.config import Config

from ops.catalog import migrations_dir
from ops.local_postgres import libpq_url
from shared.outbox_batches import unpack
from tests.support.isolation import Isolation

pytestmark = pytest.mark.integration

T0 = datetime(2026, 3, 1, tzinfo=UTC)
ANN = "00000000-0000-4000-8000-0000000000a1"
BOB = "00000000-0000-4000-8000-0000000000b2"


def migrate_to(isolation: Isolation, revision: str) -> None:
    config = Config()
    config.set_main_option("script_location", str(migrations_dir("identity")))
    config.attributes["database_url"] = isolation.database_url
    config.attributes["schema"] = isolation.schema("identity")
    command.upgrade(config, revision)


def origin(kind: str, organizer: str) -> dict[str, str]:
    return {"kind": kind, "organizer_id": organizer, "reference": "r", "at": T0.isoformat()}


def event(contact: str, version: int, organizer: str, kind: str = "import") -> tuple[object, ...]:
    payload = {"contact_id": contact, "version": version, "occurred_at": T0.isoformat(),
               "source": {"kind": kind, "organizer_id": organizer}}
    event_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{contact}/{version}"))
    return contact, version, event_id, "com.kagibag.contacts.contact.matched.v1", json.dumps(payload), T0


def test_old_contacts_split_into_canonical_values_and_organizer_layers(isolation: Isolation) -> None:
    migrate_to(isolation, "identity_0002")
    with psycopg.connect(libpq_url(isolation.database_url)) as conn:
        conn.execute(f'SET search_path TO "{isolation.schema("identity")}"')
        conn.execute(
            "INSERT INTO contacts (contact_id, email, email_original, first_name, last_name, company, title, origins, "
            "version, created_at, updated_at, bio) VALUES "
            "(%s, 'ann@x.io', 'Ann@X.io', 'Ann', 'Lee', 'Bcorp', 'CTO', %s, 3, %s, %s, 'Poet'), "
            "(%s, 'bob@x.io', 'bob@x.io', 'Bob', NULL, NULL, NULL, %s, 1, %s, %s, NULL)",
            (ANN, json.dumps({"first_name": origin("import", "org-b"), "company": origin("import", "org-b"),
                              "title": origin("import", "org-a"), "last_name": origin("interaction", "org-b"),
                              "bio": origin("interaction", "org-b")}), T0, T0,
             BOB, json.dumps({"first_name": origin("import", "org-a")}), T0, T0),
        )
        with conn.cursor() as cursor:
            cursor.executemany(
                "INSERT INTO contact_events (contact_id, version, event_id, type, payload, occurred_at) "
                "VALUES (%s, %s, %s, %s, %s, %s)",
                [event(ANN, 1, "org-b"), event(ANN, 2, "org-a"), event(ANN, 3, "org-b", "interaction"),
                 event(BOB, 1, "org-a")],
            )
        conn.execute("INSERT INTO outbox (topic, key, value, headers) VALUES ('t', 'k', 'v', %s)",
                     (json.dumps([["ce_id", "unpublished-1"]]),))
        conn.commit()

    migrate_to(isolation, "head")

    with psycopg.connect(libpq_url(isolation.database_url)) as conn:
        conn.execute(f'SET search_path TO "{isolation.schema("identity")}"')
        contacts = conn.execute("SELECT email, email_original, first_name, last_name, company, title, bio "
                                "FROM contacts ORDER BY email").fetchall()
        layers = conn.execute("SELECT c.email, l.organizer_id, l.email_original, l.first_name, l.company, l.title "
                              "FROM contact_layers l JOIN contacts c USING (contact_id) ORDER BY 1, 2").fetchall()
        positions = conn.execute("SELECT contact_id::text, version, position FROM contact_events "
                                 "ORDER BY position").fetchall()
        cursors: dict[str, int] = dict(conn.execute("SELECT stream, position FROM relay_cursors").fetchall())
        batch = conn.execute("SELECT messages FROM outbox_batches").fetchone()
        legacy = conn.execute("SELECT to_regclass('outbox'), to_regclass('processed_messages')").fetchone()

    assert contacts == [
        ("ann@x.io", "Ann@X.io", None, "Lee", None, None, "Poet"),  # she stated her last name and bio herself
        ("bob@x.io", None, None, None, None, None, None),  # nothing stated by Bob himself
    ]
    assert layers == [
        ("ann@x.io", "org-a", "Ann@X.io", None, None, "CTO"),
        ("ann@x.io", "org-b", "Ann@X.io", "Ann", "Bcorp", None),
        ("bob@x.io", "org-a", "bob@x.io", "Bob", None, None),
    ]
    ann_versions = [version for contact, version, _ in positions if contact == ANN]
    assert ann_versions == [1, 2, 3] and [p for *_, p in positions] == [1, 2, 3, 4]
    assert cursors == {"contact-events": 4, "row-answers": 0}  # what was in the store was published before
    assert batch is not None, "the legacy outbox's messages were not moved"
    assert [m.headers for m in unpack(batch[0])] == [[("ce_id", b"unpublished-1")]]
    assert legacy == (None, None)
