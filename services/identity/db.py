"""identity's tables (SQLAlchemy Core), in identity's own schema: the contacts with their canonical (person-stated)
values, each organizer's layer of imported values, the event store (relayed to the contact log by position),
the row answers (relayed to ingest, kept to answer a re-published row again), and the delivery plumbing."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Identity,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
    func,
)
from sqlalchemy.dialects.postgresql import BIT, JSONB, UUID

from shared.outbox_batches import outbox_batches_table
from shared.positions import consumer_positions_table
from shared.relay import relay_cursors_table

metadata = MetaData()
ROWS_PER_BLOCK = 1024

contacts = Table(
    "contacts",
    metadata,
    Column("contact_id", UUID(as_uuid=False), primary_key=True),
    Column("email", Text, nullable=False, unique=True),
    Column("email_original", Text, comment="the person's own first spelling; null until they stated one"),
    Column("first_name", Text),
    Column("last_name", Text),
    Column("company", Text),
    Column("title", Text),
    Column("phone", Text),
    Column("version", Integer, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("bio", Text),
    Column("social_links", JSONB, nullable=False, server_default="{}"),
    Column("user_account_id", Text),
    Index("ix_contacts_user_account_id", "user_account_id"),
    comment="one row per person; the value columns hold what the person stated themself (canonical)",
)

contact_layers = Table(
    "contact_layers",
    metadata,
    Column("contact_id", UUID(as_uuid=False), nullable=False),
    Column("organizer_id", Text, nullable=False),
    Column("email_original", Text, comment="the organizer's own first spelling"),
    Column("first_name", Text),
    Column("last_name", Text),
    Column("company", Text),
    Column("title", Text),
    Column("phone", Text),
    PrimaryKeyConstraint("contact_id", "organizer_id"),
    comment="one row per organizer that knows the person: that organizer's own imported values",
)

contact_events = Table(
    "contact_events",
    metadata,
    Column("position", BigInteger, Identity(always=False), nullable=False, unique=True,
           comment="append order: the relay publishes by it"),
    Column("contact_id", UUID(as_uuid=False), nullable=False),
    Column("version", Integer, nullable=False),
    Column("type", Text, nullable=False),
    Column("payload", JSON, nullable=False, comment="the event as published"),
    Column("occurred_at", DateTime(timezone=True), nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("correlation_id", Text),
    Column("causation_id", Text, comment="the id of the message that caused it"),
    Column("traceparent", Text, comment="W3C trace context of its cause, carried on to what it causes"),
    PrimaryKeyConstraint("contact_id", "version"),
)

row_answers = Table(
    "row_answers",
    metadata,
    Column("position", BigInteger, Identity(always=False), primary_key=True),
    Column("import_id", Text, nullable=False),
    Column("partition", Integer, nullable=False, comment="of the rows topic the rows came from"),
    Column("first_row", Integer, nullable=False),
    Column("last_row", Integer, nullable=False),
    Column("payload", JSON, nullable=False, comment="the ImportRowsProcessedV1 as published"),
    Column("recorded_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("causation_id", Text, comment="the first row's message id"),
    Column("traceparent", Text, comment="W3C trace context of the first row"),
    Index("ix_row_answers_import_rows", "import_id", "last_row"),
    comment="what identity answered to import rows; a row arriving again is answered again from here",
)

applied_rows = Table(
    "applied_rows",
    metadata,
    Column("import_id", Text, nullable=False),
    Column("block", Integer, nullable=False, comment="row numbers block * 1024 .. block * 1024 + 1023"),
    Column("bits", BIT(ROWS_PER_BLOCK), nullable=False, comment="bit i (from the left): row block * 1024 + i"),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("import_id", "block"),
    comment="which rows of each import identity applied: a row published again is recognised, whatever partition "
    "it comes on",
)

applied_interactions = Table(
    "applied_interactions",
    metadata,
    Column("source", Text, nullable=False),
    Column("id", Text, nullable=False),
    Column("applied_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("source", "id"),
    comment="interactions applied, by their CloudEvents identity (ce_source, ce_id)",
)

consumer_positions = consumer_positions_table(metadata)
relay_cursors = relay_cursors_table(metadata)
outbox_batches = outbox_batches_table(metadata)
