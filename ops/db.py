"""The ``ops`` schema: one row per dead letter re-driven, so none is re-driven twice."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, DateTime, Integer, MetaData, PrimaryKeyConstraint, Table, Text, func

metadata = MetaData()

redriven_dead_letters = Table(
    "redriven_dead_letters",
    metadata,
    Column("dead_letter_topic", Text, nullable=False),
    Column("partition", Integer, nullable=False),
    Column("offset", BigInteger, nullable=False),
    Column("original_topic", Text, nullable=False),
    Column("event_id", Text, comment="the ce_id header, when it had one"),
    Column("redriven_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("redriven_by", Text, comment="the operating system user who ran the command"),
    PrimaryKeyConstraint("dead_letter_topic", "partition", "offset"),
)
