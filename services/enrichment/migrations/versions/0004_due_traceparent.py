"""enrichment: the trace context of the contact event that made a contact due, carried on to its suggestions.

Revision ID: enrichment_0004
"""

import sqlalchemy as sa
from alembic import op

revision = "enrichment_0004"
down_revision = "enrichment_0003"


def upgrade() -> None:
    op.add_column("contacts", sa.Column(
        "due_traceparent", sa.Text,
        comment="W3C trace context of the contact event that made it due: the suggestions of that run carry it"))


def downgrade() -> None:
    op.drop_column("contacts", "due_traceparent")
