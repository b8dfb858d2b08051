"""profiles: positional tracking (``consumer_positions``: the next offset per group, topic and partition, stored
with each batch's effect) and the one-row-per-transaction outbox (``outbox_batches``) replace the tracking rows and
the row-per-message outbox. Unpublished messages move to the new outbox. The first batch after the upgrade starts
from the group's committed Kafka offsets; contact events it had applied already are stale by their version.

Revision ID: profiles_0004
"""

import sqlalchemy as sa
from alembic import op

from shared.kafka import OutgoingMessage, headers_from_json
from shared.outbox_batches import pack

revision = "profiles_0004"
down_revision = "profiles_0003"


def upgrade() -> None:
    op.create_table(
        "consumer_positions",
        sa.Column("consumer_group", sa.Text, nullable=False),
        sa.Column("topic", sa.Text, nullable=False),
        sa.Column("partition", sa.Integer, nullable=False),
        sa.Column("next_offset", sa.BigInteger, nullable=False, comment="the first offset not yet applied"),
        sa.PrimaryKeyConstraint("consumer_group", "topic", "partition"),
    )
    op.create_table(
        "outbox_batches",
        sa.Column("position", sa.BigInteger, sa.Identity(always=False), primary_key=True),
        sa.Column("messages", sa.LargeBinary, nullable=False, comment="msgpack: [[topic, key, value, headers], ...]"),
        sa.Column("count", sa.Integer, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )
    bind = op.get_bind()
    legacy = bind.execute(sa.text("SELECT topic, key, value, headers FROM outbox ORDER BY position")).all()
    if legacy:
        packed = pack([OutgoingMessage(row.topic, row.key, row.value, headers_from_json(row.headers))
                       for row in legacy])
        bind.execute(sa.text("INSERT INTO outbox_batches (messages, count) VALUES (:m, :n)"),
                     {"m": packed, "n": len(legacy)})
    op.drop_table("outbox")
    op.drop_table("processed_messages")


def downgrade() -> None:
    """Back to tracking rows and the row-per-message outbox: unpublished messages stay in ``outbox_batches``'s
    place only if the relay has published them, so downgrade a stopped service with an empty outbox."""
    from shared.migrations import create_plumbing_tables

    bind = op.get_bind()
    if bind.execute(sa.text("SELECT count(*) FROM outbox_batches")).scalar_one():
        raise RuntimeError("outbox_batches still holds unpublished messages: stop profiles cleanly first")
    create_plumbing_tables()
    op.drop_table("outbox_batches")
    op.drop_table("consumer_positions")
