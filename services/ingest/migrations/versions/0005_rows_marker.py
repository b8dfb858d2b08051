"""ingest: where each import's last batch of rows landed (a ``shared.logcheck.Marker``), to tell when the broker
lost them (restarted empty) and publish them again without waiting for the deadline.

Revision ID: ingest_0005
"""

import sqlalchemy as sa
from alembic import op

revision = "ingest_0005"
down_revision = "ingest_0004"


def upgrade() -> None:
    op.add_column("imports", sa.Column("rows_marker", sa.Text))


def downgrade() -> None:
    op.drop_column("imports", "rows_marker")
