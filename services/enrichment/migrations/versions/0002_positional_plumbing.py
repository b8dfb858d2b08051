"""enrichment: positional tracking and a one-row-per-transaction outbox instead of tracking records and an
outbox row per message.

Revision ID: enrichment_0002
"""

from shared.migrations import move_to_positional_plumbing

revision = "enrichment_0002"
down_revision = "enrichment_0001"


def upgrade() -> None:
    move_to_positional_plumbing()


def downgrade() -> None:
    raise NotImplementedError("enrichment_0002 drops the tracking records: restore from a backup instead")
