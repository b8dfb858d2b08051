"""enrichment: per contact only what the person stated (canonical values and their sources), the organizers with a
relationship, and when the providers should run; the suggestions table.

The old ``contacts`` table held names from every source, organizers' imports included: it is dropped, and the
consumer group's stored positions go back to the beginning of each partition, so the contact log (kept forever)
is replayed into the new table (every contact then gets a provider run, paced behind any import).

Revision ID: enrichment_0003
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

revision = "enrichment_0003"
down_revision = "enrichment_0002"


def upgrade() -> None:
    op.drop_table("contacts")
    op.create_table(
        "contacts",
        sa.Column("contact_id", sa.Text, primary_key=True),
        sa.Column("email", sa.Text, comment="normalized; null only if the contact's creation was never seen"),
        sa.Column("version", sa.Integer, nullable=False, comment="the contact version of the last change applied"),
        sa.Column("first_name", sa.Text),
        sa.Column("last_name", sa.Text),
        sa.Column("company", sa.Text),
        sa.Column("title", sa.Text),
        sa.Column("phone", sa.Text),
        sa.Column("bio", sa.Text),
        sa.Column("social_links", JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
        sa.Column("sources", JSONB, nullable=False, server_default=sa.text("'{}'::jsonb"),
                  comment='field -> {"kind": "interaction"|"attendee", "at": time}: where each person-stated value '
                  "came from"),
        sa.Column("organizers", ARRAY(sa.Text), nullable=False, server_default=sa.text("'{}'::text[]"),
                  comment="organizers with a relationship: an event of theirs is on the contact's log"),
        sa.Column("updated_at", sa.DateTime(timezone=True),
                  comment="when the last change applied occurred (log time)"),
        sa.Column("due_at", sa.DateTime(timezone=True),
                  comment="when the providers should run next; null: nothing to do"),
        sa.Column("due_sources", ARRAY(sa.Text), comment="the providers to run then; null: all of them"),
        comment="What the person stated about themself (the canonical values of the contact log: sources "
        "interaction and attendee), never an organizer's imported values.",
    )
    op.create_index("ix_contacts_email", "contacts", ["email"])
    op.create_index("ix_contacts_due", "contacts", ["due_at"], postgresql_where=sa.text("due_at IS NOT NULL"))
    op.create_table(
        "suggestions",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("contact_id", sa.Text, nullable=False),
        sa.Column("field", sa.Text, nullable=False),
        sa.Column("current", sa.Text, comment="the person's own value when the suggestion was made"),
        sa.Column("suggested", sa.Text, nullable=False),
        sa.Column("source", sa.Text, nullable=False, comment="the provider"),
        sa.Column("confidence", sa.Float, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.Text, nullable=False,
                  comment="pending | accepted | customized | rejected | withdrawn (replaced, or no longer suggested)"),
        sa.Column("decided_at", sa.DateTime(timezone=True)),
        sa.Column("value", sa.Text, comment="what the person stated: the suggested value accepted, or their own"),
    )
    op.create_index("ix_suggestions_contact", "suggestions", ["contact_id"])
    op.create_index("ux_suggestions_pending_field", "suggestions", ["contact_id", "field"], unique=True,
                    postgresql_where=sa.text("status = 'pending'"))
    op.execute("UPDATE consumer_positions SET next_offset = 0, marker = NULL")


def downgrade() -> None:
    raise NotImplementedError("enrichment_0003 drops the old contacts table: restore from a backup instead")
