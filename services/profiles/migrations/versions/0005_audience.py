"""profiles: what organizers use their audience with. Each organizer's row lists the events the contact attended
and registered for and the imports that brought it (arrays behind GIN indexes, for segments); the email permission
is indexed per organizer; interactions are indexed for each contact's history, newest first; saved segments get a
table.

Existing rows are filled from what is stored: the events from ``organizer_interactions``, the imports from the
import ids the organizer's layer and import permission name (an import that matched a contact without changing a
value left no trace before: ``contacts rebuild profiles --swap`` replays the log and restores it).

Revision ID: profiles_0005
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

revision = "profiles_0005"
down_revision = "profiles_0004"

ARRAYS = {
    "attended_events": "the organizer's events the contact checked in at, the latest check-in first",
    "registered_events": "the organizer's events the contact registered for: ticket, waitlist or check-in",
    "import_ids": "the organizer's imports that brought the contact",
}


def upgrade() -> None:
    oc = "organizer_contacts"
    for name, comment in ARRAYS.items():
        op.add_column(oc, sa.Column(name, ARRAY(sa.Text), nullable=False, server_default="{}", comment=comment))
    op.execute(
        """UPDATE organizer_contacts o SET attended_events = e.attended, registered_events = e.registered
        FROM (SELECT organizer_id, contact_id,
                     coalesce(array_agg(kagibag_event_id ORDER BY last_check_in DESC, kagibag_event_id COLLATE "C")
                              FILTER (WHERE last_check_in IS NOT NULL), '{}') AS attended,
                     array_agg(kagibag_event_id ORDER BY kagibag_event_id COLLATE "C") AS registered
              FROM (SELECT organizer_id, contact_id, kagibag_event_id,
                           max(occurred_at) FILTER (WHERE kind = 'event_checked_in') AS last_check_in
                    FROM organizer_interactions
                    WHERE kagibag_event_id IS NOT NULL
                      AND kind IN ('event_checked_in', 'ticket_purchased', 'waitlist_registered')
                    GROUP BY 1, 2, 3) per_event
              GROUP BY 1, 2) e
        WHERE o.organizer_id = e.organizer_id AND o.contact_id = e.contact_id"""
    )
    op.execute(
        """UPDATE organizer_contacts o SET import_ids = i.ids
        FROM (SELECT organizer_id, contact_id, array_agg(id ORDER BY id COLLATE "C") AS ids FROM (
                  SELECT organizer_id, contact_id, s.value ->> 'import_id' AS id
                  FROM organizer_contacts, jsonb_each(imported -> 'sources') s
                  UNION
                  SELECT organizer_id, contact_id, import_permission_by FROM organizer_contacts
              ) named WHERE id IS NOT NULL AND id <> organizer_id GROUP BY 1, 2) i
        WHERE o.organizer_id = i.organizer_id AND o.contact_id = i.contact_id"""
    )
    op.create_index("ix_organizer_contacts_permission", oc, ["organizer_id", "email_permission"])
    for name in ARRAYS:
        op.create_index(f"ix_organizer_contacts_{name}", oc, [name], postgresql_using="gin")
    op.create_index("ix_organizer_interactions_history", "organizer_interactions",
                    ["organizer_id", "contact_id", "occurred_at", "interaction_id"])
    op.create_table(
        "segments",
        sa.Column("organizer_id", sa.Text, nullable=False),
        sa.Column("segment_id", sa.Text, nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("filter", JSONB, nullable=False,
                  comment="the filter as the organizer gave it (segment_filter grammar)"),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("organizer_id", "segment_id"),
        comment="An organizer's saved filters: membership is evaluated on read, so always current.",
    )
    op.create_index("ix_segments_listed", "segments", ["organizer_id", "created_at", "segment_id"])


def downgrade() -> None:
    op.drop_table("segments")
    op.drop_index("ix_organizer_interactions_history", table_name="organizer_interactions")
    op.drop_index("ix_organizer_contacts_permission", table_name="organizer_contacts")
    for name in ARRAYS:
        op.drop_index(f"ix_organizer_contacts_{name}", table_name="organizer_contacts")
        op.drop_column("organizer_contacts", name)
