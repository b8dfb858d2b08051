"""profiles: positional tracking (the next offset per group, topic and partition, stored with each batch's
effect) and a one-row-per-transaction outbox instead of tracking records and an outbox row per message;
unpublished messages move to the new outbox. The first batch after the upgrade starts from the group's committed
Kafka offsets; contact events it had applied already are stale by their version.

Revision ID: profiles_0004
"""

from shared.migrations import move_to_positional_plumbing

revision = "profiles_0004"
down_revision = "profiles_0003"


def upgrade() -> None:
    move_to_positional_plumbing()


def downgrade() -> None:
    raise NotImplementedError("profiles_0004 drops the tracking records: restore from a backup instead")
