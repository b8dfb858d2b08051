"""enrichment's tables (SQLAlchemy Core), in enrichment's own schema."""

from __future__ import annotations

from sqlalchemy import Column, DateTime, Integer, MetaData, Table, Text, func

from shared.outbox_batches import outbox_batches_table
from shared.positions import consumer_positions_table

metadata = MetaData()

contacts = Table(
    "contacts",
    metadata,
    Column("contact_id", Text, primary_key=True),
    Column("email", Text),
    Column("first_name", Text),
    Column("last_name", Text),
    Column("display_name", Text, comment="the display name last published"),
    Column("version", Integer, nullable=False, comment="the last contact version applied"),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

consumer_positions = consumer_positions_table(metadata)
outbox_batches = outbox_batches_table(metadata)
