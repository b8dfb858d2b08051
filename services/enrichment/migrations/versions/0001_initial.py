"""enrichment: per-contact names and display names, outbox and tracking records.

Revision ID: enrichment_0001
"""

import sqlalchemy as sa
from alembic import op

from shared.migrations import create_plumbing_tables, drop_plumbing_tables

revision = "enrichment_0001"
down_revision = None


def upgrade() -> None:
    op.create_table(
        "contacts",
        sa.Column("contact_id", sa.Text, primary_key=True),
        sa.Column("email", sa.Text),
        sa.Column("first_name", sa.Text),
        sa.Column("last_name", sa.Text),
        sa.Column("display_name", sa.Text, comment="the display name last published"),
        sa.Column("version", sa.Integer, nullable=False, comment="the last contact version applied"),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )
    create_plumbing_tables()


def downgrade() -> None:
    drop_plumbing_tables()
    op.drop_table("contacts")
