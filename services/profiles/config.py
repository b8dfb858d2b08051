"""profiles settings (env prefix ``CONTACTS_PROFILES_``) plus the platform settings (``CONTACTS_``)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.config import PlatformSettings


class ProfilesSettings(BaseSettings):
    """CONTACTS_PROFILES_HTTP_HOST / _HTTP_PORT  the contacts API, health and metrics (default 127.0.0.1:8002)
    CONTACTS_PROFILES_DB_SCHEMA                  the schema holding the read models
    CONTACTS_PROFILES_CONSUMER_GROUP             Kafka consumer group of all profiles instances
    CONTACTS_PROFILES_BATCH_SIZE                 records per batch (one transaction per batch)"""

    model_config = SettingsConfigDict(env_prefix="CONTACTS_PROFILES_", extra="forbid")

    http_host: str = "127.0.0.1"
    http_port: int = 8002
    db_schema: str = "profiles"
    consumer_group: str = "profiles"
    batch_size: int = Field(default=5000, gt=0, le=50_000)
    platform: PlatformSettings = Field(default_factory=PlatformSettings)
