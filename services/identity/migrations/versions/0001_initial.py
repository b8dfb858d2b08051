"""identity: contacts, the contact event store, outbox and tracking records.

Revision ID: identity_0001
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB, UUID

from shared.migrations import create_plumbing_tables, drop_plumbing_tables

revision = "identity_0001"
down_revision = None


def upgrade() -> None:
    op.create_table(
        "contacts",
        sa.Column("contact_id", UUID(as_uuid=False), primary_key=True),
        sa.Column("email", sa.Text, nullable=False, unique=True),
        sa.Column("email_original", sa.Text, nullable=False),
        sa.Column("first_name", sa.Text),
        sa.Column("last_name", sa.Text),
        sa.Column("company", sa.Text),
        sa.Column("title", sa.Text),
        sa.Column("phone", sa.Text),
        sa.Column("origins", JSONB, nullable=False, server_default="{}"),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "contact_events",
        sa.Column("contact_id", UUID(as_uuid=False), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("event_id", UUID(as_uuid=False), nullable=False, unique=True),
        sa.Column("type", sa.Text, nullable=False),
        sa.Column("payload", JSONB, nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("contact_id", "version"),
    )
    create_plumbing_tables()


def downgrade() -> None:
    drop_plumbing_tables()
    op.drop_table("contact_events")
    op.drop_table("contacts")
