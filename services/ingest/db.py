"""ingest's tables (SQLAlchemy Core), in ingest's own schema."""

from __future__ import annotations

from sqlalchemy import (
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID

from shared.outbox_batches import outbox_batches_table
from shared.positions import consumer_positions_table

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
    Column("progress_at", DateTime(timezone=True), comment="the last row handed on or answered"),
    Column("republished_at", DateTime(timezone=True), comment="when the unanswered rows were published again"),
    Column("timed_out_at", DateTime(timezone=True), comment="when the import gave up waiting for answers"),
    Column("republished_rows", JSONB, comment="the rows published again, as [first, last] ranges (at most 1,000)"),
    Column("rows_marker", Text, comment="where the last batch of rows landed: is the broker's log still that one?"),
    Column("lane", Text, comment="the lane its rows take: interactive or bulk (known once its file is opened)"),
    Column("expected_rows", Integer, comment="rows its file holds (known once it is opened)"),
    Column("traceparent", Text, comment="W3C trace context of the upload: one trace per import"),
    CheckConstraint(
        "status IN ('uploaded', 'parsing', 'processing', 'processed', 'error')", name="imports_status_check"
    ),
    Index("imports_by_organizer", "organizer_id", "created_at", "import_id"),
    Index("imports_in_progress", "started_at", postgresql_where=text("status IN ('parsing', 'processing')")),
    Index(
        "imports_by_idempotency_key", "organizer_id", "idempotency_key", unique=True,
        postgresql_where=text("idempotency_key IS NOT NULL"),
    ),
)

import_row_blocks = Table(
    "import_row_blocks",
    metadata,
    Column(
        "import_id", UUID(as_uuid=False), ForeignKey("imports.import_id", ondelete="CASCADE"), nullable=False
    ),
    Column("block", Integer, nullable=False, comment="rows 1024 * block + 1 to 1024 * (block + 1)"),
    Column(
        "outcomes", LargeBinary, nullable=False, comment="one byte per row: 0 none yet, 1 created, 2 matched, 3 error"
    ),
    Column("contact_ids", ARRAY(Text), nullable=False, comment="the resolved contact per row (null: none)"),
    Column("created", Integer, nullable=False),
    Column("matched", Integer, nullable=False),
    Column("errors", Integer, nullable=False),
    PrimaryKeyConstraint("import_id", "block"),
)
"""Each row's outcome, 1,024 rows to a table row: a million-row import is under a thousand rows here."""

import_row_errors = Table(
    "import_row_errors",
    metadata,
    Column(
        "import_id", UUID(as_uuid=False), ForeignKey("imports.import_id", ondelete="CASCADE"), nullable=False
    ),
    Column("row_number", Integer, nullable=False),
    Column("error_code", Text, nullable=False),
    Column("error_message", Text),
    Column("cells", JSONB, comment="the row as read, when ingest refused it"),
    PrimaryKeyConstraint("import_id", "row_number"),
)
"""Why each failed row failed (its outcome is also in its block)."""

import_files = Table(
    "import_files",
    metadata,
    Column(
        "import_id", UUID(as_uuid=False), ForeignKey("imports.import_id", ondelete="CASCADE"), nullable=False
    ),
    Column("seq", Integer, nullable=False),
    Column("data", LargeBinary, nullable=False, comment="up to 1 MiB of the file (STORAGE EXTERNAL: not compressed)"),
    PrimaryKeyConstraint("import_id", "seq"),
)
"""The import's file (an upload, or a JSON import's rows) while it may still be read, by any instance."""

outbox_batches = outbox_batches_table(metadata)
consumer_positions = consumer_positions_table(metadata)
