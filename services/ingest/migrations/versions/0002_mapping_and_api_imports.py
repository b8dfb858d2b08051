"""ingest: what an upload's inspection found, the confirmed field mapping, and idempotent API imports.

Revision ID: ingest_0002
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "ingest_0002"
down_revision = "ingest_0001"


def upgrade() -> None:
    op.add_column(
        "imports",
        sa.Column("inspection", JSONB, comment="encoding, delimiter, header, sample rows, HubSpot detection"),
    )
    op.add_column(
        "imports",
        sa.Column("mapping", JSONB, comment="the confirmed mapping: column index -> field (or skipped)"),
    )
    op.add_column("imports", sa.Column("started_at", sa.DateTime(timezone=True)))
    op.add_column(
        "imports",
        sa.Column("idempotency_key", sa.Text, comment="the Idempotency-Key of the API request that created it"),
    )
    op.add_column(
        "imports",
        sa.Column("request_fingerprint", sa.Text, comment="hash of that request's body, to refuse a reused key"),
    )
    op.create_index(
        "imports_by_idempotency_key",
        "imports",
        ["organizer_id", "idempotency_key"],
        unique=True,
        postgresql_where=sa.text("idempotency_key IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("imports_by_idempotency_key", table_name="imports")
    for column in ("request_fingerprint", "idempotency_key", "started_at", "mapping", "inspection"):
        op.drop_column("imports", column)
