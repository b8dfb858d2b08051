"""profiles' writes: a batch of contact events, COPYed into a staging table, merged into the read models
set-wise, in the caller's transaction: a fixed number of statements whatever the batch holds (window functions
fold several events of one contact in version order), no Python object per row.

The rules are ``domain.py``'s (its fold is the specification; ``tests/integration/test_profiles_merge.py`` checks
that this merge equals it on generated batches): the canonical profile takes what the person stated, each
organizer's layer what its imports brought, each view shows the person's value else the organizer's own, counts
its changes and keeps its times. The reads are in ``queries.py``; the API's own writes in ``relationships.py``."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.db import copy_rows
from shared.events import CONTACT_FIELDS

STAGE_COLUMNS = (
    "seq", "message_id", "correlation_id", "contact_id", "version", "type", "kind", "organizer_id", "reference",
    "email_permission", "occurred_at", "email", "spelled", "stated", "interaction_id", "interaction_kind",
    "kagibag_event_id", "order_id", "ticket_count",
)
"""One contact event as the merge reads it: ``type`` created | updated | matched | interaction; ``reference``
the import or interaction id of its source; ``spelled`` the email as its source wrote it; ``stated`` what it
states by value name (JSON); the ``interaction_*`` columns for an interaction's record."""

_TEMPORARY = (
    "CREATE TEMP TABLE IF NOT EXISTS contact_events_stage (seq int, message_id text, correlation_id text, "
    "contact_id text, version int, type text, kind text, organizer_id text, reference text, email_permission text, "
    "occurred_at timestamptz, email text, spelled text, stated jsonb, interaction_id text, interaction_kind text, "
    "kagibag_event_id text, order_id text, ticket_count int) ON COMMIT DELETE ROWS",
    # what the person said, and what each organizer brought: one row per event and value name
    "CREATE TEMP TABLE IF NOT EXISTS said (contact_id text, version int, name text, value text, changed bool, "
    "source jsonb) ON COMMIT DELETE ROWS",
    "CREATE TEMP TABLE IF NOT EXISTS brought (organizer_id text, contact_id text, version int, name text, value text, "
    "changed bool, source jsonb) ON COMMIT DELETE ROWS",
    # the events that changed a canonical profile, and the organizers' rows to write
    "CREATE TEMP TABLE IF NOT EXISTS changing (contact_id text, version int, occurred_at timestamptz) "
    "ON COMMIT DELETE ROWS",
    "CREATE TEMP TABLE IF NOT EXISTS own_stage (organizer_id text, contact_id text, first_version int, "
    "first_seen timestamptz, last_seen timestamptz) ON COMMIT DELETE ROWS",
    "CREATE TEMP TABLE IF NOT EXISTS pairs_stage (organizer_id text, contact_id text) ON COMMIT DELETE ROWS",
    "CREATE TEMP TABLE IF NOT EXISTS touched (organizer_id text, contact_id text, imported jsonb, view_version int, "
    "created_at timestamptz, updated_at timestamptz, first_seen_at timestamptz, last_seen_at timestamptz, "
    "permission text, permission_at timestamptz, permission_by text) ON COMMIT DELETE ROWS",
    # what a subscriber of the organizers' contacts had seen of each touched row before the batch
    "CREATE TEMP TABLE IF NOT EXISTS feed_before (organizer_id text, contact_id text, email text, status text, "
    "source text, changed_at timestamptz) ON COMMIT DELETE ROWS",
)

PERSON = "('interaction', 'attendee')"
RELATIONSHIP = "('import', 'interaction')"
SOURCE = (
    "jsonb_strip_nulls(jsonb_build_object('kind', e.kind, 'at', e.occurred_at, 'organizer_id', e.organizer_id, "
    "CASE WHEN e.kind = 'import' THEN 'import_id' ELSE 'interaction_id' END, e.reference))"
)
"""A field source as stored, of the staged event ``e`` (times in UTC: the transaction sets the time zone)."""


def display_name_sql(values: str, email: str) -> str:
    """The display-name rule (``domain.display_name``) over a JSON object of values."""
    full = f"concat_ws(' ', nullif(btrim({values} ->> 'first_name'), ''), nullif(btrim({values} ->> 'last_name'), ''))"
    local = f"nullif(btrim(regexp_replace(btrim({email}), '@[^@]*$', '')), '')"
    return f"coalesce(nullif({full}, ''), {local}, nullif(btrim({email}), ''))"


def social_links_sql(values: str) -> str:
    return (f"coalesce((SELECT jsonb_object_agg(substr(key, 14), value) FROM jsonb_each({values}) "
            "WHERE key LIKE 'social\\_links.%'), '{}')")


def anonymous_sql(sources: str) -> str:
    """The person's sources as others see them: kind and time."""
    return (f"coalesce((SELECT jsonb_object_agg(key, jsonb_build_object('kind', value -> 'kind', 'at', value -> 'at'))"
            f" FROM jsonb_each({sources})), '{{}}')")


_STEPS = (
    # lock: every contact of the batch (a blank row for a new one) and every organizer's row of them, in one order
    'INSERT INTO contact_profiles (contact_id) SELECT contact_id FROM (SELECT DISTINCT contact_id FROM '
    'contact_events_stage) s ORDER BY contact_id COLLATE "C" ON CONFLICT DO NOTHING',
    'SELECT count(*) FROM (SELECT 1 FROM contact_profiles WHERE contact_id IN (SELECT contact_id FROM '
    'contact_events_stage) ORDER BY contact_id COLLATE "C" FOR UPDATE) locked',
    # (LATERAL ... OFFSET 0: one index lookup per contact, whatever the planner believes about the statistics)
    'SELECT count(*) FROM (SELECT 1 FROM (SELECT DISTINCT contact_id FROM contact_events_stage) s '
    'CROSS JOIN LATERAL (SELECT o.organizer_id FROM organizer_contacts o WHERE o.contact_id = s.contact_id '
    'OFFSET 0) o '
    'ORDER BY s.contact_id COLLATE "C", o.organizer_id COLLATE "C" FOR UPDATE OF o) locked',
    # stale: at or below the applied version (redeliveries, replays), or a second copy in the batch
    "DELETE FROM contact_events_stage e USING contact_profiles p "
    "WHERE p.contact_id = e.contact_id AND e.version <= p.contact_version",
    "DELETE FROM contact_events_stage e USING contact_events_stage f "
    "WHERE f.contact_id = e.contact_id AND f.version = e.version AND f.seq < e.seq",
    # each value stated, and whether it changed its layer (against the value before it, in version order)
    f"""INSERT INTO said (contact_id, version, name, value, changed, source)
    SELECT e.contact_id, e.version, s.key, s.value,
           s.value IS DISTINCT FROM coalesce(lag(s.value) OVER w, p.stated -> 'values' ->> s.key), {SOURCE}
    FROM contact_events_stage e JOIN contact_profiles p USING (contact_id), jsonb_each_text(e.stated) s
    WHERE e.kind IN {PERSON}
    WINDOW w AS (PARTITION BY e.contact_id, s.key ORDER BY e.version)""",
    f"""INSERT INTO brought (organizer_id, contact_id, version, name, value, changed, source)
    SELECT e.organizer_id, e.contact_id, e.version, s.key, s.value,
           s.value IS DISTINCT FROM coalesce(lag(s.value) OVER w, o.imported -> 'values' ->> s.key), {SOURCE}
    FROM contact_events_stage e
    LEFT JOIN LATERAL (SELECT imported FROM organizer_contacts WHERE organizer_id = e.organizer_id
                       AND contact_id = e.contact_id OFFSET 0) o ON true
    CROSS JOIN LATERAL jsonb_each_text(e.stated) s
    WHERE e.kind = 'import'
    WINDOW w AS (PARTITION BY e.contact_id, e.organizer_id, s.key ORDER BY e.version)""",
    # the events that changed a canonical profile: its creation, a new value, the person's first spelling
    f"""INSERT INTO changing (contact_id, version, occurred_at)
    SELECT e.contact_id, e.version, e.occurred_at FROM contact_events_stage e JOIN contact_profiles p USING (contact_id)
    WHERE e.type = 'created'
       OR EXISTS (SELECT 1 FROM said s WHERE s.contact_id = e.contact_id AND s.version = e.version AND s.changed)
       OR (e.kind IN {PERSON} AND e.spelled IS NOT NULL AND p.stated ->> 'email_original' IS NULL
           AND NOT EXISTS (SELECT 1 FROM contact_events_stage f WHERE f.contact_id = e.contact_id
                           AND f.kind IN {PERSON} AND f.spelled IS NOT NULL AND f.version < e.version))""",
    # every organizer's row the batch changes: its own events', and every row of a contact whose person spoke
    f"""INSERT INTO own_stage (organizer_id, contact_id, first_version, first_seen, last_seen)
    SELECT organizer_id, contact_id, min(version), min(occurred_at), max(occurred_at)
    FROM contact_events_stage WHERE kind IN {RELATIONSHIP} GROUP BY 1, 2""",
    """INSERT INTO pairs_stage (organizer_id, contact_id)
    SELECT organizer_id, contact_id FROM own_stage
    UNION SELECT o.organizer_id, o.contact_id FROM (SELECT DISTINCT contact_id FROM changing) c
    CROSS JOIN LATERAL (SELECT organizer_id, contact_id FROM organizer_contacts WHERE contact_id = c.contact_id
                        OFFSET 0) o  -- OFFSET 0: a per-contact index lookup, never flattened into a scan""",
    f"""INSERT INTO touched (organizer_id, contact_id, imported, view_version, created_at, updated_at, first_seen_at,
                         last_seen_at, permission, permission_at, permission_by)
    WITH own AS (SELECT * FROM own_stage), pairs AS (SELECT * FROM pairs_stage),
    since AS (  -- changes count after the version the row appears at: before the batch, or its first event
        SELECT x.organizer_id, x.contact_id,
               CASE WHEN o.organizer_id IS NULL THEN own.first_version ELSE 0 END AS version
        FROM pairs x LEFT JOIN organizer_contacts o USING (organizer_id, contact_id)
        LEFT JOIN own USING (organizer_id, contact_id)
    ), latest AS (
        SELECT DISTINCT ON (organizer_id, contact_id, name) organizer_id, contact_id, name, value
        FROM brought ORDER BY organizer_id, contact_id, name, version DESC
    ), latest_change AS (
        SELECT DISTINCT ON (organizer_id, contact_id, name) organizer_id, contact_id, name, source
        FROM brought WHERE changed ORDER BY organizer_id, contact_id, name, version DESC
    ), layer AS (
        SELECT organizer_id, contact_id, jsonb_object_agg(name, value) AS "values" FROM latest GROUP BY 1, 2
    ), layer_sources AS (
        SELECT organizer_id, contact_id, jsonb_object_agg(name, source) AS sources FROM latest_change GROUP BY 1, 2
    ), spelled AS (
        SELECT DISTINCT ON (organizer_id, contact_id) organizer_id, contact_id, version, spelled, {SOURCE} AS source
        FROM contact_events_stage e WHERE kind = 'import' AND spelled IS NOT NULL
        ORDER BY organizer_id, contact_id, version
    ), person_spelled AS (
        SELECT contact_id, min(version) AS version FROM contact_events_stage
        WHERE kind IN {PERSON} AND spelled IS NOT NULL GROUP BY 1
    ), visible AS (
        -- an own import that changed a value the person had not stated (yet), or gave the first spelling
        -- while the person had given none (yet)
        SELECT b.organizer_id, b.contact_id, b.version FROM brought b JOIN contact_profiles p USING (contact_id)
        WHERE b.changed AND NOT (p.stated -> 'values' ? b.name)
          AND NOT EXISTS (SELECT 1 FROM said s WHERE s.contact_id = b.contact_id AND s.name = b.name
                          AND s.version < b.version)
        UNION
        SELECT s.organizer_id, s.contact_id, s.version FROM spelled s JOIN contact_profiles p USING (contact_id)
        LEFT JOIN organizer_contacts o USING (organizer_id, contact_id) LEFT JOIN person_spelled ps USING (contact_id)
        WHERE o.imported ->> 'email_original' IS NULL AND p.stated ->> 'email_original' IS NULL
          AND (ps.version IS NULL OR ps.version > s.version)
    ), shown_changes AS (
        SELECT x.organizer_id, x.contact_id, c.version, c.occurred_at FROM pairs x JOIN changing c USING (contact_id)
        UNION
        SELECT v.organizer_id, v.contact_id, v.version, e.occurred_at
        FROM visible v JOIN contact_events_stage e USING (contact_id, version)
    ), counted AS (
        SELECT c.organizer_id, c.contact_id, count(DISTINCT c.version) AS n, max(c.occurred_at) AS at
        FROM shown_changes c JOIN since s USING (organizer_id, contact_id) WHERE c.version > s.version GROUP BY 1, 2
    ), permission AS (
        -- the import statement that stands: unsubscribes first, then the latest (permission.latest_imported)
        SELECT DISTINCT ON (organizer_id, contact_id) organizer_id, contact_id, status, at, by FROM (
            SELECT o.organizer_id, o.contact_id, o.import_permission AS status, o.import_permission_at AS at,
                   coalesce(o.import_permission_by, '') AS by
            FROM organizer_contacts o JOIN pairs USING (organizer_id, contact_id)
            WHERE o.import_permission IS NOT NULL AND o.import_permission_at IS NOT NULL
            UNION ALL
            SELECT organizer_id, contact_id, email_permission, occurred_at,
                   coalesce(nullif(reference, ''), organizer_id)
            FROM contact_events_stage WHERE kind = 'import' AND email_permission IS NOT NULL
        ) statements
        ORDER BY organizer_id, contact_id, status = 'unsubscribed' DESC, at DESC, by COLLATE "C" DESC,
                 status COLLATE "C" DESC
    )
    SELECT x.organizer_id, x.contact_id,
        jsonb_strip_nulls(jsonb_build_object(
            'values', coalesce(o.imported -> 'values', '{{}}') || coalesce(l."values", '{{}}'),
            'sources', coalesce(o.imported -> 'sources', '{{}}') || coalesce(ls.sources, '{{}}')
                       || CASE WHEN o.imported ->> 'email_original' IS NULL AND sp.spelled IS NOT NULL
                               THEN jsonb_build_object('email', sp.source) ELSE '{{}}' END,
            'email_original', coalesce(o.imported ->> 'email_original', sp.spelled))),
        CASE WHEN o.organizer_id IS NULL THEN 1 ELSE o.view_version END + coalesce(ch.n, 0),
        CASE WHEN o.organizer_id IS NULL THEN created.occurred_at ELSE coalesce(o.created_at, o.first_seen_at) END,
        greatest(CASE WHEN o.organizer_id IS NULL THEN created.occurred_at
                      ELSE coalesce(o.updated_at, o.first_seen_at) END, ch.at),
        least(o.first_seen_at, own.first_seen), greatest(o.last_seen_at, own.last_seen),
        permission.status, permission.at, permission.by
    FROM pairs x
    LEFT JOIN organizer_contacts o USING (organizer_id, contact_id)
    LEFT JOIN own USING (organizer_id, contact_id)
    LEFT JOIN layer l USING (organizer_id, contact_id)
    LEFT JOIN layer_sources ls USING (organizer_id, contact_id)
    LEFT JOIN spelled sp USING (organizer_id, contact_id)
    LEFT JOIN counted ch USING (organizer_id, contact_id)
    LEFT JOIN permission USING (organizer_id, contact_id)
    LEFT JOIN contact_events_stage created ON o.organizer_id IS NULL AND created.organizer_id = x.organizer_id
         AND created.contact_id = x.contact_id AND created.version = own.first_version""",
    # the canonical profiles
    f"""UPDATE contact_profiles p SET
        contact_version = b.last_version,
        email = coalesce(p.email, b.email),
        created_at = coalesce(p.created_at, b.created_at),
        stated = jsonb_strip_nulls(jsonb_build_object(
            'values', (p.stated -> 'values') || coalesce(v."values", '{{}}'),
            'sources', (p.stated -> 'sources') || coalesce(vs.sources, '{{}}')
                       || CASE WHEN p.stated ->> 'email_original' IS NULL AND w.spelled IS NOT NULL
                               THEN jsonb_build_object('email', w.source) ELSE '{{}}' END,
            'email_original', coalesce(p.stated ->> 'email_original', w.spelled))),
        updated_at = CASE WHEN c.n > 0 THEN greatest(p.updated_at, c.at) ELSE p.updated_at END,
        profile_version = CASE WHEN c.n > 0 THEN greatest(2 * c.last, p.profile_version + c.n)
                               ELSE p.profile_version END
    FROM (SELECT contact_id, max(version) AS last_version, max(email) FILTER (WHERE type = 'created') AS email,
                 max(occurred_at) FILTER (WHERE type = 'created') AS created_at
          FROM contact_events_stage GROUP BY 1) b
    LEFT JOIN (SELECT contact_id, count(*) AS n, max(version) AS last, max(occurred_at) AS at
               FROM changing GROUP BY 1) c USING (contact_id)
    LEFT JOIN (SELECT contact_id, jsonb_object_agg(name, value) AS "values" FROM (
                   SELECT DISTINCT ON (contact_id, name) contact_id, name, value FROM said
                   ORDER BY contact_id, name, version DESC) latest GROUP BY 1) v USING (contact_id)
    LEFT JOIN (SELECT contact_id, jsonb_object_agg(name, source) AS sources FROM (
                   SELECT DISTINCT ON (contact_id, name) contact_id, name, source FROM said WHERE changed
                   ORDER BY contact_id, name, version DESC) latest GROUP BY 1) vs USING (contact_id)
    LEFT JOIN (SELECT DISTINCT ON (contact_id) contact_id, spelled, {SOURCE} AS source
               FROM contact_events_stage e WHERE kind IN {PERSON} AND spelled IS NOT NULL
               ORDER BY contact_id, version) w USING (contact_id)
    WHERE p.contact_id = b.contact_id""",
    # the interactions, each once
    "INSERT INTO organizer_interactions (organizer_id, contact_id, interaction_id, kind, kagibag_event_id, order_id, "
    "ticket_count, occurred_at) SELECT organizer_id, contact_id, interaction_id, interaction_kind, kagibag_event_id, "
    "order_id, ticket_count, occurred_at FROM contact_events_stage WHERE type = 'interaction' ON CONFLICT DO NOTHING",
    "INSERT INTO feed_before (organizer_id, contact_id, email, status, source, changed_at) "
    "SELECT t.organizer_id, t.contact_id, o.email, o.email_permission, o.permission_source, o.permission_changed_at "
    "FROM touched t LEFT JOIN organizer_contacts o USING (organizer_id, contact_id)",
    # the organizers' rows: layer, view (from the final canonical profile), sightings, permission, insights
    f"""WITH interacted AS (
        SELECT DISTINCT organizer_id, contact_id FROM contact_events_stage WHERE type = 'interaction'
    ), insights AS (
        SELECT i.organizer_id, i.contact_id,
               count(DISTINCT i.kagibag_event_id) FILTER (WHERE i.kind = 'event_checked_in') AS attended,
               count(DISTINCT i.kagibag_event_id) FILTER (WHERE i.kind = 'waitlist_registered') AS registered,
               max(i.occurred_at) AS last_active
        FROM organizer_interactions i JOIN interacted USING (organizer_id, contact_id) GROUP BY 1, 2
    ), orders AS (
        -- each order counts with the ticket count of its latest report
        SELECT organizer_id, contact_id, count(*) AS orders, sum(tickets) AS tickets FROM (
            SELECT DISTINCT ON (i.organizer_id, i.contact_id, i.order_id) i.organizer_id, i.contact_id,
                   coalesce(i.ticket_count, 0) AS tickets
            FROM organizer_interactions i JOIN interacted USING (organizer_id, contact_id)
            WHERE i.kind = 'ticket_purchased' AND i.order_id IS NOT NULL
            ORDER BY i.organizer_id, i.contact_id, i.order_id, i.occurred_at DESC, i.interaction_id COLLATE "C" DESC,
                     coalesce(i.ticket_count, 0) DESC
        ) latest GROUP BY 1, 2
    ), events AS (
        -- the events attended (the latest check-in first) and registered for (ticket, waitlist or check-in)
        SELECT organizer_id, contact_id,
               coalesce(array_agg(kagibag_event_id ORDER BY last_check_in DESC, kagibag_event_id COLLATE "C")
                        FILTER (WHERE last_check_in IS NOT NULL), '{{}}') AS attended,
               array_agg(kagibag_event_id ORDER BY kagibag_event_id COLLATE "C") AS registered
        FROM (SELECT i.organizer_id, i.contact_id, i.kagibag_event_id,
                     max(i.occurred_at) FILTER (WHERE i.kind = 'event_checked_in') AS last_check_in
              FROM organizer_interactions i JOIN interacted USING (organizer_id, contact_id)
              WHERE i.kagibag_event_id IS NOT NULL
                AND i.kind IN ('event_checked_in', 'ticket_purchased', 'waitlist_registered')
              GROUP BY 1, 2, 3) per_event
        GROUP BY 1, 2
    ), imports AS (
        SELECT organizer_id, contact_id, array_agg(DISTINCT reference) AS ids FROM contact_events_stage
        WHERE kind = 'import' AND coalesce(reference, '') <> '' GROUP BY 1, 2
    )
    INSERT INTO organizer_contacts (organizer_id, contact_id, email, email_original, {", ".join(CONTACT_FIELDS)},
        display_name, bio, social_links, user_account_id, field_sources, view_version, created_at, updated_at,
        imported, first_seen_at, last_seen_at, import_permission, import_permission_at, import_permission_by,
        email_permission, permission_source, permission_changed_at, permission_changed_by, events_attended,
        registrations, tickets_purchased, orders, last_active_at, attended_events, registered_events, import_ids)
    SELECT t.organizer_id, t.contact_id, p.email,
        coalesce(p.stated ->> 'email_original', t.imported ->> 'email_original', p.email),
        {", ".join(f"shown.v ->> '{name}'" for name in CONTACT_FIELDS)},
        {display_name_sql("shown.v", "p.email")}, shown.v ->> 'bio', {social_links_sql("shown.v")},
        shown.v ->> 'user_account_id', (t.imported -> 'sources') || {anonymous_sql("p.stated -> 'sources'")},
        t.view_version, t.created_at, t.updated_at, t.imported, t.first_seen_at, t.last_seen_at,
        t.permission, t.permission_at, t.permission_by,
        CASE applies.source WHEN 'api' THEN o.explicit_permission WHEN 'import' THEN t.permission ELSE 'unknown' END,
        applies.source,
        CASE applies.source WHEN 'api' THEN o.explicit_permission_at WHEN 'import' THEN t.permission_at END,
        CASE applies.source WHEN 'api' THEN o.explicit_permission_by WHEN 'import' THEN t.permission_by END,
        CASE WHEN i.organizer_id IS NULL THEN coalesce(o.events_attended, 0) ELSE i.attended END,
        CASE WHEN i.organizer_id IS NULL THEN coalesce(o.registrations, 0) ELSE i.registered END,
        CASE WHEN i.organizer_id IS NULL THEN coalesce(o.tickets_purchased, 0) ELSE coalesce(r.tickets, 0) END,
        CASE WHEN i.organizer_id IS NULL THEN coalesce(o.orders, 0) ELSE coalesce(r.orders, 0) END,
        CASE WHEN i.organizer_id IS NULL THEN o.last_active_at ELSE i.last_active END,
        CASE WHEN i.organizer_id IS NULL THEN coalesce(o.attended_events, '{{}}')
             ELSE coalesce(ev.attended, '{{}}') END,
        CASE WHEN i.organizer_id IS NULL THEN coalesce(o.registered_events, '{{}}')
             ELSE coalesce(ev.registered, '{{}}') END,
        CASE WHEN im.ids IS NULL THEN coalesce(o.import_ids, '{{}}')
             ELSE ARRAY(SELECT x FROM unnest(coalesce(o.import_ids, '{{}}') || im.ids) x GROUP BY x
                        ORDER BY x COLLATE "C") END
    FROM touched t JOIN contact_profiles p USING (contact_id)
    LEFT JOIN organizer_contacts o USING (organizer_id, contact_id)
    LEFT JOIN insights i USING (organizer_id, contact_id)
    LEFT JOIN orders r USING (organizer_id, contact_id)
    LEFT JOIN events ev USING (organizer_id, contact_id)
    LEFT JOIN imports im USING (organizer_id, contact_id)
    CROSS JOIN LATERAL (SELECT (t.imported -> 'values') || (p.stated -> 'values') AS v) shown
    CROSS JOIN LATERAL (
        -- the explicit statement applies when it is an unsubscribe or the later one (permission.effective)
        SELECT CASE
            WHEN o.explicit_permission IS NOT NULL AND o.explicit_permission_at IS NOT NULL
                 AND (o.explicit_permission = 'unsubscribed' OR t.permission IS NULL
                      OR (o.explicit_permission_at, coalesce(o.explicit_permission_by, '') COLLATE "C",
                          o.explicit_permission COLLATE "C")
                         >= (t.permission_at, t.permission_by COLLATE "C", t.permission COLLATE "C"))
                 THEN 'api'
            WHEN t.permission IS NOT NULL THEN 'import' END AS source
    ) applies
    ORDER BY t.organizer_id COLLATE "C", t.contact_id COLLATE "C"
    ON CONFLICT (organizer_id, contact_id) DO UPDATE SET
        email = excluded.email, email_original = excluded.email_original,
        {", ".join(f"{name} = excluded.{name}" for name in CONTACT_FIELDS)},
        display_name = excluded.display_name, bio = excluded.bio, social_links = excluded.social_links,
        user_account_id = excluded.user_account_id, field_sources = excluded.field_sources,
        view_version = excluded.view_version, created_at = excluded.created_at, updated_at = excluded.updated_at,
        imported = excluded.imported, first_seen_at = excluded.first_seen_at, last_seen_at = excluded.last_seen_at,
        import_permission = excluded.import_permission, import_permission_at = excluded.import_permission_at,
        import_permission_by = excluded.import_permission_by, email_permission = excluded.email_permission,
        permission_source = excluded.permission_source, permission_changed_at = excluded.permission_changed_at,
        permission_changed_by = excluded.permission_changed_by, events_attended = excluded.events_attended,
        registrations = excluded.registrations, tickets_purchased = excluded.tickets_purchased,
        orders = excluded.orders, last_active_at = excluded.last_active_at,
        attended_events = excluded.attended_events, registered_events = excluded.registered_events,
        import_ids = excluded.import_ids""",
)

SNAPSHOTS = f"""
    SELECT p.contact_id, p.profile_version, cause.message_id, cause.correlation_id,
        CAST(jsonb_build_object(
            'contact_id', p.contact_id, 'profile_version', p.profile_version, 'email', p.email,
            'email_original', coalesce(p.stated ->> 'email_original', p.email),
            {", ".join(f"'{name}', p.stated -> 'values' ->> '{name}'" for name in CONTACT_FIELDS)},
            'display_name', {display_name_sql("(p.stated -> 'values')", "p.email")},
            'created_at', p.created_at, 'updated_at', coalesce(p.updated_at, p.created_at),
            'bio', p.stated -> 'values' ->> 'bio', 'social_links', {social_links_sql("p.stated -> 'values'")},
            'user_account_id', p.stated -> 'values' ->> 'user_account_id',
            'field_sources', {anonymous_sql("p.stated -> 'sources'")}) AS text) AS payload
    FROM (SELECT DISTINCT ON (contact_id) contact_id, version FROM changing ORDER BY contact_id, version DESC) last
    JOIN contact_profiles p USING (contact_id)
    JOIN contact_events_stage cause ON cause.contact_id = last.contact_id AND cause.version = last.version
    WHERE p.email IS NOT NULL AND p.created_at IS NOT NULL
    ORDER BY cause.seq"""


_ANALYZE_AFTER = {
    "INSERT INTO brought (org": "said, brought",
    "INSERT INTO changing (co": "changing",
    "INSERT INTO own_stage (o": "own_stage",
    "INSERT INTO pairs_stage ": "pairs_stage",
    "INSERT INTO touched (org": "touched",
}
"""Temporary tables have no statistics until analyzed: without them the planner expects thousands of rows where a
batch holds a few, or the reverse, and scans the whole of ``organizer_contacts`` to join a batch (quadratic over an
import) instead of looking its rows up by key."""


@dataclass(frozen=True)
class Snapshot:
    """A canonical profile to publish (the JSON of ``ContactProfileUpdatedV1``) and the event that caused it."""

    contact_id: str
    profile_version: int
    cause_id: str
    correlation_id: str | None
    payload: str


async def merge(conn: AsyncConnection, staged: Iterable[Sequence[Any]]) -> list[Snapshot]:
    """Merge the staged contact events (rows of ``STAGE_COLUMNS``) into the read models, in the caller's
    transaction; returns the snapshots of the canonical profiles that changed, one per contact."""
    await conn.execute(text("SET LOCAL TimeZone = 'UTC'"))
    for statement in _TEMPORARY:
        await conn.execute(text(statement))
    await copy_rows(conn, table="contact_events_stage", columns=STAGE_COLUMNS, rows=staged)
    await conn.execute(text("ANALYZE contact_events_stage"))
    for statement in _STEPS:
        await conn.execute(text(statement))
        analyzed = _ANALYZE_AFTER.get(statement.lstrip()[:24])
        if analyzed:
            await conn.execute(text(f"ANALYZE {analyzed}"))
    result = await conn.execute(text(SNAPSHOTS))
    return [Snapshot(row.contact_id, row.profile_version, row.message_id, row.correlation_id, row.payload)
            for row in result]
