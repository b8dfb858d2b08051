"""ingest: imports, their rows' outcomes, outbox and tracking records.

Revision ID: ingest_0001
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB, UUID

from shared.migrations import create_plumbing_tables, drop_plumbing_tables

revision = "ingest_0001"
down_revision = None


def upgrade() -> None:
    op.create_table(
        "imports",
        sa.Column("import_id", UUID(as_uuid=False), primary_key=True),
        sa.Column("organizer_id", sa.Text, nullable=False),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("filename", sa.Text),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("total_rows", sa.Integer),
        sa.Column("parsed_rows", sa.Integer, nullable=False, server_default="0"),
        sa.Column("processed_rows", sa.Integer, nullable=False, server_default="0"),
        sa.Column("created", sa.Integer, nullable=False, server_default="0"),
        sa.Column("matched", sa.Integer, nullable=False, server_default="0"),
        sa.Column("errors", sa.Integer, nullable=False, server_default="0"),
        sa.Column("error", sa.Text),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("finished_at", sa.DateTime(timezone=True)),
        sa.CheckConstraint(
            "status IN ('uploaded', 'parsing', 'processing', 'processed', 'error')",
            name="imports_status_check",
        ),
    )
    op.create_index("imports_by_organizer", "imports", ["organizer_id", "created_at", "import_id"])
    op.create_table(
        "import_rows",
        sa.Column(
            "import_id",
            UUID(as_uuid=False),
            sa.ForeignKey("imports.import_id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("row_number", sa.Integer, nullable=False),
        sa.Column("outcome", sa.Text, nullable=False),
        sa.Column("contact_id", sa.Text),
        sa.Column("error_code", sa.Text),
        sa.Column("error_message", sa.Text),
        sa.Column("cells", JSONB),
        sa.PrimaryKeyConstraint("import_id", "row_number"),
        sa.CheckConstraint("outcome IN ('created', 'matched', 'error')", name="import_rows_outcome_check"),
    )
    op.create_index("import_rows_by_outcome", "import_rows", ["import_id", "outcome", "row_number"])
    create_plumbing_tables()


def downgrade() -> None:
    drop_plumbing_tables()
    op.drop_table("import_rows")
    op.drop_table("imports")
