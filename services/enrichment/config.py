"""enrichment settings (env prefix ``CONTACTS_ENRICHMENT_``) plus the platform settings (``CONTACTS_``)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.config import PlatformSettings


class EnrichmentSettings(BaseSettings):
    """CONTACTS_ENRICHMENT_HTTP_HOST / _HTTP_PORT  health and metrics endpoint (default 127.0.0.1:8003)
    CONTACTS_ENRICHMENT_DB_SCHEMA                  the schema holding enrichment's tables
    CONTACTS_ENRICHMENT_CONSUMER_GROUP             Kafka consumer group of all enrichment instances
    CONTACTS_ENRICHMENT_BATCH_SIZE                 records per batch (one transaction per batch)"""

    model_config = SettingsConfigDict(env_prefix="CONTACTS_ENRICHMENT_", extra="forbid")

    http_host: str = "127.0.0.1"
    http_port: int = 8003
    db_schema: str = "enrichment"
    consumer_group: str = "enrichment"
    batch_size: int = Field(default=5000, gt=0, le=50_000)
    platform: PlatformSettings = Field(default_factory=PlatformSettings)
