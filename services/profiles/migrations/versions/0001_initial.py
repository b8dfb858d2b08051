"""profiles: contact profiles, organizer contacts, outbox and tracking records.

Revision ID: profiles_0001
"""

import sqlalchemy as sa
from alembic import op

from shared.migrations import create_plumbing_tables, drop_plumbing_tables

revision = "profiles_0001"
down_revision = None


def upgrade() -> None:
    op.create_table(
        "contact_profiles",
        sa.Column("contact_id", sa.Text, primary_key=True),
        sa.Column("email", sa.Text, comment="normalized; null until the contact's creation has been applied"),
        sa.Column("email_original", sa.Text),
        sa.Column("first_name", sa.Text),
        sa.Column("last_name", sa.Text),
        sa.Column("company", sa.Text),
        sa.Column("title", sa.Text),
        sa.Column("phone", sa.Text),
        sa.Column("display_name", sa.Text),
        sa.Column("display_name_version", sa.Integer, nullable=False, server_default="0",
                  comment="the contact version the display name was resolved at"),
        sa.Column("contact_version", sa.Integer, nullable=False, server_default="0"),
        sa.Column("profile_version", sa.Integer, nullable=False, server_default="0"),
        sa.Column("created_at", sa.DateTime(timezone=True)),
        sa.Column("updated_at", sa.DateTime(timezone=True)),
    )
    # prefix search (``LIKE 'abc%'``) and exact email lookups, whatever the database's collation
    op.execute("CREATE INDEX ix_contact_profiles_email ON contact_profiles (email text_pattern_ops)")
    for column in ("display_name", "first_name", "last_name"):
        op.execute(
            f"CREATE INDEX ix_contact_profiles_{column}_prefix "
            f"ON contact_profiles (lower({column}) text_pattern_ops)"
        )
    op.create_table(
        "organizer_contacts",
        sa.Column("organizer_id", sa.Text, nullable=False),
        sa.Column("contact_id", sa.Text, nullable=False),
        sa.Column("email_permission", sa.Text, nullable=False, server_default="unknown"),
        sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("organizer_id", "contact_id"),
        sa.CheckConstraint(
            "email_permission IN ('subscribed', 'unsubscribed', 'unknown')",
            name="ck_organizer_contacts_permission",
        ),
    )
    create_plumbing_tables()


def downgrade() -> None:
    drop_plumbing_tables()
    op.drop_table("organizer_contacts")
    op.drop_table("contact_profiles")
