"""Settings of the operator commands (env prefix ``CONTACTS_OPS_``) plus the platform settings (``CONTACTS_``)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.config import PlatformSettings


class OpsSettings(BaseSettings):
    """CONTACTS_OPS_DB_SCHEMA  the schema of the operator tools' own table (default ``ops``), created by
                              ``contacts migrate``"""

    model_config = SettingsConfigDict(env_prefix="CONTACTS_OPS_", extra="forbid")

    db_schema: str = "ops"
    platform: PlatformSettings = Field(default_factory=PlatformSettings)
