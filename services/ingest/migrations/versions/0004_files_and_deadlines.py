"""ingest: uploaded files kept in PostgreSQL (chunks of up to 1 MiB, stored uncompressed) where every ingest
instance can read them, and what the deadline for identity's answers needs: when the import last made progress,
when its unanswered rows were published again, when it ran out of time.

Revision ID: ingest_0004
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB, UUID

revision = "ingest_0004"
down_revision = "ingest_0003"


def upgrade() -> None:
    op.create_table(
        "import_files",
        sa.Column(
            "import_id", UUID(as_uuid=False), sa.ForeignKey("imports.import_id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("data", sa.LargeBinary, nullable=False),
        sa.PrimaryKeyConstraint("import_id", "seq"),
    )
    op.execute("ALTER TABLE import_files ALTER COLUMN data SET STORAGE EXTERNAL")
    op.add_column("imports", sa.Column("progress_at", sa.DateTime(timezone=True)))
    op.add_column("imports", sa.Column("republished_at", sa.DateTime(timezone=True)))
    op.add_column("imports", sa.Column("timed_out_at", sa.DateTime(timezone=True)))
    op.add_column("imports", sa.Column("republished_rows", JSONB))


def downgrade() -> None:
    for column in ("republished_rows", "timed_out_at", "republished_at", "progress_at"):
        op.drop_column("imports", column)
    op.drop_table("import_files")
