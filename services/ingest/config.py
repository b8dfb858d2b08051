"""ingest settings (env prefix ``CONTACTS_INGEST_``) plus the platform settings (``CONTACTS_``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.ingest.fairness import Windows
from services.ingest.reading.records import FileLimits
from shared.config import PlatformSettings

MEBIBYTE = 1024 * 1024


class IngestSettings(BaseSettings):
    """CONTACTS_INGEST_HTTP_HOST / _HTTP_PORT   the import API (default 127.0.0.1:8001)
    CONTACTS_INGEST_DB_SCHEMA                   the schema holding ingest's tables
    CONTACTS_INGEST_CONSUMER_GROUP              Kafka consumer group reading row outcomes
    CONTACTS_INGEST_DATA_DIR                    this instance's scratch copies of import files (relative: to the
                                                working dir); the files themselves are kept in PostgreSQL
    CONTACTS_INGEST_PUBLISH_BATCH_SIZE          rows per publish batch (acknowledged together)
    CONTACTS_INGEST_BULK_ROWS                   imports of more rows go to the bulk lane
                                                (contacts.bulk-import-rows.v1), so they never hold up small imports
                                                and interactions (default 10,000)
    CONTACTS_INGEST_MAX_UPLOAD_BYTES            larger uploads are refused with 413 (default 512 MiB)
    CONTACTS_INGEST_MAX_PARALLEL_IMPORTS        imports one instance publishes again at the same time (after
                                                a deadline or a broker that lost rows); every started import is
                                                read at once, in fair turns (below)
    CONTACTS_INGEST_WINDOW_ROWS                 rows of one import handed on that identity has not answered yet:
                                                at most this many (plus one batch); the import waits for answers
                                                (default 50,000)
    CONTACTS_INGEST_TOTAL_WINDOW_ROWS           the same for the bulk lane as a whole, every import and instance
                                                together (default 200,000); interactive imports are not held
                                                back by it and go first
    CONTACTS_INGEST_ORGANIZER_WEIGHTS           JSON {"organizer id": weight}: the bulk lane is shared between
                                                organizers in proportion to their weights (others weigh
                                                CONTACTS_INGEST_DEFAULT_WEIGHT, 1), an organizer's imports
                                                sharing its part equally
    CONTACTS_INGEST_PACE_BY_GROUPS              JSON list of consumer groups reading contacts.contact-events.v1
                                                (e.g. ["profiles"]) whose lag counts as bulk rows in flight: the
                                                bulk lane then also waits for them (default none; a group that
                                                stops reading then holds bulk imports back)
    CONTACTS_INGEST_PACING_POLL_SECONDS         how often an instance reads the answered rows while an import
                                                waits for room (default 0.5; at once when it counted answers)
    CONTACTS_INGEST_SWEEP_SECONDS               how often an instance looks for started imports no one reads
                                                (one whose instance crashed) and for overdue work (default 10)
    CONTACTS_INGEST_ANSWER_DEADLINE_SECONDS     rows identity has not answered after this long without any
                                                progress are published again once; after as long again, the
                                                import ends in error saying which rows (default 600)
    CONTACTS_INGEST_UPLOAD_EXPIRY_SECONDS       an upload not started within this long expires: its file is
                                                deleted and the import ends in error (default 86,400: a day)
    CONTACTS_INGEST_BROKER_CHECK_SECONDS        how often an instance asks the broker whether it still holds the
                                                rows of the imports waiting for answers; rows it lost (a local
                                                broker restarted empty) are published again (default 30)
    CONTACTS_INGEST_MAX_ROWS / _MAX_COLUMNS      larger files end in error (defaults like HubSpot's: 1,048,576
                                                rows, 1,000 columns)
    CONTACTS_INGEST_MAX_ROW_CHARS               a row (record) longer than this ends the file in error: "the
                                                row is too large" (default 1,048,576 characters)"""

    model_config = SettingsConfigDict(env_prefix="CONTACTS_INGEST_", extra="forbid")

    http_host: str = "127.0.0.1"
    http_port: int = 8001
    db_schema: str = "ingest"
    consumer_group: str = "ingest"
    data_dir: Path = Path(".data/uploads")
    publish_batch_size: int = Field(default=5000, gt=0, le=50_000)
    bulk_rows: int = Field(default=10_000, ge=0)
    max_upload_bytes: int = Field(default=512 * MEBIBYTE, gt=0)
    max_parallel_imports: int = Field(default=2, gt=0, le=16)
    window_rows: int = Field(default=50_000, gt=0)
    total_window_rows: int = Field(default=200_000, gt=0)
    organizer_weights: dict[str, Annotated[float, Field(gt=0, le=1000)]] = Field(default_factory=dict)
    default_weight: float = Field(default=1.0, gt=0, le=1000)
    pacing_poll_seconds: float = Field(default=0.5, gt=0, le=60)
    pace_by_groups: list[str] = Field(default_factory=list, max_length=8)
    sweep_seconds: float = Field(default=10.0, gt=0)
    answer_deadline_seconds: float = Field(default=600.0, gt=0)
    upload_expiry_seconds: float = Field(default=86_400.0, gt=0)
    broker_check_seconds: float = Field(default=30.0, gt=0)
    max_rows: int = Field(default=1_048_576, gt=0)
    max_columns: int = Field(default=1_000, gt=0)
    max_row_chars: int = Field(default=1024 * 1024, gt=0, le=64 * 1024 * 1024)
    platform: PlatformSettings = Field(default_factory=PlatformSettings)

    def file_limits(self) -> FileLimits:
        """What one file may hold: the upload limit, and the row and column limits."""
        return FileLimits(
            max_bytes=self.max_upload_bytes, max_rows=self.max_rows, max_columns=self.max_columns,
            max_record_chars=self.max_row_chars,
        )

    def windows(self) -> Windows:
        return Windows(per_import=self.window_rows, total=self.total_window_rows)

    # JSON imports (POST /v1/imports with application/json, and the MCP tool import_contacts):
    # CONTACTS_INGEST_MAX_JSON_CONTACTS  more contacts in one request are refused with 413 (default 10,000)
    # CONTACTS_INGEST_MAX_JSON_BYTES     a larger body is refused with 413 as soon as it shows (default 16 MiB)
    max_json_contacts: int = Field(default=10_000, gt=0)
    max_json_bytes: int = Field(default=16 * MEBIBYTE, gt=0)
