"""ingest: each import's lane and expected rows (pacing, its place and progress), the trace context of its upload,
and an index on the imports in progress (read by every instance's pacing).

Revision ID: ingest_0006
"""

import sqlalchemy as sa
from alembic import op

revision = "ingest_0006"
down_revision = "ingest_0005"


def upgrade() -> None:
    op.add_column("imports", sa.Column("lane", sa.Text))
    op.add_column("imports", sa.Column("expected_rows", sa.Integer))
    op.add_column("imports", sa.Column("traceparent", sa.Text))
    op.create_index("imports_in_progress", "imports", ["started_at"],
                    postgresql_where=sa.text("status IN ('parsing', 'processing')"))


def downgrade() -> None:
    op.drop_index("imports_in_progress", table_name="imports")
    op.drop_column("imports", "traceparent")
    op.drop_column("imports", "expected_rows")
    op.drop_column("imports", "lane")
