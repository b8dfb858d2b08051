"""identity settings (env prefix ``CONTACTS_IDENTITY_``) plus the platform settings (``CONTACTS_``)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.config import PlatformSettings


class IdentitySettings(BaseSettings):
    """CONTACTS_IDENTITY_HTTP_HOST / _HTTP_PORT  health and metrics endpoint (default 127.0.0.1:8004)
    CONTACTS_IDENTITY_DB_SCHEMA                  the schema holding identity's tables
    CONTACTS_IDENTITY_CONSUMER_GROUP             Kafka consumer group of all identity instances
    CONTACTS_IDENTITY_BATCH_SIZE                 records per batch (one transaction per batch)"""

    model_config = SettingsConfigDict(env_prefix="CONTACTS_IDENTITY_", extra="forbid")

    http_host: str = "127.0.0.1"
    http_port: int = 8004
    db_schema: str = "identity"
    consumer_group: str = "identity"
    batch_size: int = Field(default=5000, gt=0, le=50_000)
    platform: PlatformSettings = Field(default_factory=PlatformSettings)
