"""ingest's tables (SQLAlchemy Core), in ingest's own schema."""

from __future__ import annotations

from sqlalchemy import (
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID

from shared.outbox import outbox_table
from shared.tracking import processed_messages_table

metadata = MetaData()

imports = Table(
    "imports",
    metadata,
    Column("import_id", UUID(as_uuid=False), primary_key=True),
    Column("organizer_id", Text, nullable=False),
    Column("source", Text, nullable=False),
    Column("filename", Text),
    Column("status", Text, nullable=False),
    Column("total_rows", Integer),
    Column("parsed_rows", Integer, nullable=False, server_default="0"),
    Column("processed_rows", Integer, nullable=False, server_default="0"),
    Column("created", Integer, nullable=False, server_default="0"),
    Column("matched", Integer, nullable=False, server_default="0"),
    Column("errors", Integer, nullable=False, server_default="0"),
    Column("error", Text),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("finished_at", DateTime(timezone=True)),
    Column("inspection", JSONB, comment="encoding, delimiter, header, sample rows, HubSpot detection"),
    Column("mapping", JSONB, comment="the confirmed mapping: column index -> field (or skipped)"),
    Column("started_at", DateTime(timezone=True)),
    Column("idempotency_key", Text, comment="the Idempotency-Key of the API request that created it"),
    Column("request_fingerprint", Text, comment="hash of that request's body, to refuse a reused key"),
    CheckConstraint(
        "status IN ('uploaded', 'parsing', 'processing', 'processed', 'error')", name="imports_status_check"
    ),
    Index("imports_by_organizer", "organizer_id", "created_at", "import_id"),
    Index(
        "imports_by_idempotency_key", "organizer_id", "idempotency_key", unique=True,
        postgresql_where=text("idempotency_key IS NOT NULL"),
    ),
)

import_rows = Table(
    "import_rows",
    metadata,
    Column(
        "import_id", UUID(as_uuid=False), ForeignKey("imports.import_id", ondelete="CASCADE"), nullable=False
    ),
    Column("row_number", Integer, nullable=False),
    Column("outcome", Text, nullable=False),
    Column("contact_id", Text),
    Column("error_code", Text),
    Column("error_message", Text),
    Column("cells", JSONB),
    PrimaryKeyConstraint("import_id", "row_number"),
    CheckConstraint("outcome IN ('created', 'matched', 'error')", name="import_rows_outcome_check"),
    Index("import_rows_by_outcome", "import_id", "outcome", "row_number"),
)

outbox = outbox_table(metadata)
processed_messages = processed_messages_table(metadata)
