"""ingest: row outcomes stored in blocks of 1,024 rows (an outcome byte and a contact id per row) with the error
rows apart, instead of one row per imported row; positional tracking and a one-row-per-transaction outbox.

Existing data: every import's rows move into blocks and error rows; the legacy outbox's unpublished messages
(dead letters) move to the new outbox.

Revision ID: ingest_0003
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID

from shared.migrations import move_to_positional_plumbing

revision = "ingest_0003"
down_revision = "ingest_0002"

BLOCK_ROWS = 1024
CODES = "CASE r.outcome WHEN 'created' THEN '01' WHEN 'matched' THEN '02' WHEN 'error' THEN '03' ELSE '00' END"


def upgrade() -> None:
    op.create_table(
        "import_row_blocks",
        sa.Column(
            "import_id", UUID(as_uuid=False), sa.ForeignKey("imports.import_id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("block", sa.Integer, nullable=False),
        sa.Column("outcomes", sa.LargeBinary, nullable=False),
        sa.Column("contact_ids", ARRAY(sa.Text), nullable=False),
        sa.Column("created", sa.Integer, nullable=False),
        sa.Column("matched", sa.Integer, nullable=False),
        sa.Column("errors", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("import_id", "block"),
    )
    op.create_table(
        "import_row_errors",
        sa.Column(
            "import_id", UUID(as_uuid=False), sa.ForeignKey("imports.import_id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("row_number", sa.Integer, nullable=False),
        sa.Column("error_code", sa.Text, nullable=False),
        sa.Column("error_message", sa.Text),
        sa.Column("cells", JSONB),
        sa.PrimaryKeyConstraint("import_id", "row_number"),
    )
    op.execute(
        f"""
        WITH r AS (
            SELECT import_id, (row_number - 1) / {BLOCK_ROWS} AS block, (row_number - 1) % {BLOCK_ROWS} AS pos,
                   outcome, contact_id
            FROM import_rows
        ), tops AS (
            SELECT import_id, block, max(pos) AS top FROM r GROUP BY import_id, block
        ), slots AS (
            SELECT t.import_id, t.block, p.pos FROM tops t, generate_series(0, t.top) AS p(pos)
        )
        INSERT INTO import_row_blocks (import_id, block, outcomes, contact_ids, created, matched, errors)
        SELECT s.import_id, s.block, decode(string_agg({CODES}, '' ORDER BY s.pos), 'hex'),
               array_agg(r.contact_id ORDER BY s.pos),
               count(*) FILTER (WHERE r.outcome = 'created'), count(*) FILTER (WHERE r.outcome = 'matched'),
               count(*) FILTER (WHERE r.outcome = 'error')
        FROM slots s LEFT JOIN r USING (import_id, block, pos)
        GROUP BY s.import_id, s.block
        """
    )
    op.execute(
        "INSERT INTO import_row_errors (import_id, row_number, error_code, error_message, cells) "
        "SELECT import_id, row_number, coalesce(error_code, 'ERROR'), error_message, cells FROM import_rows "
        "WHERE outcome = 'error'"
    )
    op.drop_table("import_rows")

    move_to_positional_plumbing()


def downgrade() -> None:
    raise NotImplementedError("ingest_0003 packs row outcomes into blocks: restore from a backup instead")
