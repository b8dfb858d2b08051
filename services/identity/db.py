"""identity's tables (SQLAlchemy Core), in identity's own schema."""

from __future__ import annotations

from sqlalchemy import (
    Column,
    DateTime,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID

from shared.outbox import outbox_table
from shared.tracking import processed_messages_table

metadata = MetaData()

contacts = Table(
    "contacts",
    metadata,
    Column("contact_id", UUID(as_uuid=False), primary_key=True),
    Column("email", Text, nullable=False, unique=True),
    Column("email_original", Text, nullable=False),
    Column("first_name", Text),
    Column("last_name", Text),
    Column("company", Text),
    Column("title", Text),
    Column("phone", Text),
    Column("origins", JSONB, nullable=False, server_default="{}"),
    Column("version", Integer, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("bio", Text),
    Column("social_links", JSONB, nullable=False, server_default="{}"),
    Column("user_account_id", Text, index=True),
)

contact_events = Table(
    "contact_events",
    metadata,
    Column("contact_id", UUID(as_uuid=False), nullable=False),
    Column("version", Integer, nullable=False),
    Column("event_id", UUID(as_uuid=False), nullable=False),
    Column("type", Text, nullable=False),
    Column("payload", JSONB, nullable=False),
    Column("occurred_at", DateTime(timezone=True), nullable=False),
    PrimaryKeyConstraint("contact_id", "version"),
    UniqueConstraint("event_id"),
)

outbox = outbox_table(metadata)
processed_messages = processed_messages_table(metadata)
