"""ops: dead letters already re-driven (one row each, keyed by where the dead letter lies).

Revision ID: ops_0001
"""

import sqlalchemy as sa
from alembic import op

revision = "ops_0001"
down_revision = None


def upgrade() -> None:
    op.create_table(
        "redriven_dead_letters",
        sa.Column("dead_letter_topic", sa.Text, nullable=False),
        sa.Column("partition", sa.Integer, nullable=False),
        sa.Column("offset", sa.BigInteger, nullable=False),
        sa.Column("original_topic", sa.Text, nullable=False),
        sa.Column("event_id", sa.Text, comment="the ce_id header, when it had one"),
        sa.Column("redriven_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("redriven_by", sa.Text, comment="the operating system user who ran the command"),
        sa.PrimaryKeyConstraint("dead_letter_topic", "partition", "offset"),
    )


def downgrade() -> None:
    op.drop_table("redriven_dead_letters")
