"""identity: what interactions teach about a contact (bio, social links, linked user account).

Revision ID: identity_0002
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "identity_0002"
down_revision = "identity_0001"


def upgrade() -> None:
    op.add_column("contacts", sa.Column("bio", sa.Text))
    op.add_column("contacts", sa.Column("social_links", JSONB, nullable=False, server_default="{}"))
    op.add_column("contacts", sa.Column("user_account_id", sa.Text))
    op.create_index("ix_contacts_user_account_id", "contacts", ["user_account_id"])


def downgrade() -> None:
    op.drop_index("ix_contacts_user_account_id", table_name="contacts")
    op.drop_column("contacts", "user_account_id")
    op.drop_column("contacts", "social_links")
    op.drop_column("contacts", "bio")
