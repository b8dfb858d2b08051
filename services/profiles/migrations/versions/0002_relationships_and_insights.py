"""profiles: the full canonical profile (bio, social links, user account, field sources), each organizer's
private relationship (permission with its source, tags, preferences, notes), the API changes to it as events,
and cross-event insights.

Revision ID: profiles_0002
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

revision = "profiles_0002"
down_revision = "profiles_0001"


def upgrade() -> None:
    # the canonical profile
    op.add_column("contact_profiles", sa.Column("bio", sa.Text))
    op.add_column("contact_profiles", sa.Column("social_links", JSONB, nullable=False, server_default="{}"))
    op.add_column("contact_profiles", sa.Column("user_account_id", sa.Text))
    op.add_column(
        "contact_profiles",
        sa.Column("field_sources", JSONB, nullable=False, server_default="{}",
                  comment="field -> where its value came from (kind, organizer, import or interaction, time)"),
    )
    op.execute("CREATE INDEX ix_contact_profiles_company ON contact_profiles (lower(company))")

    # each organizer's private relationship with a contact
    oc = "organizer_contacts"
    op.add_column(oc, sa.Column("permission_source", sa.Text, comment="import | api; null while unknown"))
    op.add_column(oc, sa.Column("permission_changed_at", sa.DateTime(timezone=True)))
    op.add_column(oc, sa.Column("permission_changed_by", sa.Text, comment="the import id, or the API caller"))
    op.add_column(oc, sa.Column("import_permission", sa.Text, comment="the latest an import stated"))
    op.add_column(oc, sa.Column("import_permission_at", sa.DateTime(timezone=True)))
    op.add_column(oc, sa.Column("import_permission_by", sa.Text))
    op.add_column(oc, sa.Column("explicit_permission", sa.Text, comment="the latest set through the API"))
    op.add_column(oc, sa.Column("explicit_permission_at", sa.DateTime(timezone=True)))
    op.add_column(oc, sa.Column("explicit_permission_by", sa.Text))
    op.add_column(oc, sa.Column("tags", ARRAY(sa.Text), nullable=False, server_default="{}"))
    op.add_column(oc, sa.Column("preferences", JSONB, nullable=False, server_default="{}"))
    op.add_column(oc, sa.Column("notes", sa.Text))
    op.add_column(oc, sa.Column("relationship_version", sa.Integer, nullable=False, server_default="0",
                                comment="API changes applied to this relationship"))
    # insights, from the interactions with this organizer's events
    op.add_column(oc, sa.Column("events_attended", sa.Integer, nullable=False, server_default="0"))
    op.add_column(oc, sa.Column("registrations", sa.Integer, nullable=False, server_default="0"))
    op.add_column(oc, sa.Column("tickets_purchased", sa.Integer, nullable=False, server_default="0"))
    op.add_column(oc, sa.Column("orders", sa.Integer, nullable=False, server_default="0"))
    op.add_column(oc, sa.Column("last_active_at", sa.DateTime(timezone=True),
                                comment="the latest interaction with one of the organizer's events"))
    op.execute("CREATE INDEX ix_organizer_contacts_tags ON organizer_contacts USING gin (tags)")
    op.create_index("ix_organizer_contacts_engagement", oc,
                    ["organizer_id", "events_attended", "tickets_purchased"])
    op.create_index("ix_organizer_contacts_last_active", oc, ["organizer_id", "last_active_at"])

    op.create_table(
        "organizer_interactions",
        sa.Column("organizer_id", sa.Text, nullable=False),
        sa.Column("contact_id", sa.Text, nullable=False),
        sa.Column("interaction_id", sa.Text, nullable=False),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("kagibag_event_id", sa.Text),
        sa.Column("order_id", sa.Text),
        sa.Column("ticket_count", sa.Integer),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("organizer_id", "contact_id", "interaction_id"),
    )

    op.create_table(
        "organizer_contact_changes",
        sa.Column("sequence", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("change_id", sa.Text, nullable=False, unique=True),
        sa.Column("organizer_id", sa.Text, nullable=False),
        sa.Column("contact_id", sa.Text, nullable=False),
        sa.Column("changed_by", sa.Text, nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("changes", JSONB, nullable=False),
        comment="The event store of API changes to organizer contacts: replayed by the rebuild.",
    )
    op.create_index("ix_organizer_contact_changes_pair", "organizer_contact_changes",
                    ["organizer_id", "contact_id", "sequence"])


def downgrade() -> None:
    op.drop_table("organizer_contact_changes")
    op.drop_table("organizer_interactions")
    op.drop_index("ix_organizer_contacts_last_active", table_name="organizer_contacts")
    op.drop_index("ix_organizer_contacts_engagement", table_name="organizer_contacts")
    op.execute("DROP INDEX ix_organizer_contacts_tags")
    for column in (
        "last_active_at", "orders", "tickets_purchased", "registrations", "events_attended",
        "relationship_version", "notes", "preferences", "tags", "explicit_permission_by",
        "explicit_permission_at", "explicit_permission", "import_permission_by", "import_permission_at",
        "import_permission", "permission_changed_by", "permission_changed_at", "permission_source",
    ):
        op.drop_column("organizer_contacts", column)
    op.execute("DROP INDEX ix_contact_profiles_company")
    for column in ("field_sources", "user_account_id", "social_links", "bio"):
        op.drop_column("contact_profiles", column)
