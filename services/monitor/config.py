"""monitor settings (env prefix ``CONTACTS_MONITOR_``) plus the platform settings (``CONTACTS_``)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from shared.config import PlatformSettings


class ServiceGroups(BaseSettings):
    """The consumer group each service is configured with, read from the same variables the services read
    (``CONTACTS_<SERVICE>_CONSUMER_GROUP``, default the service's name), so the monitor watches the groups that run
    without importing the services."""

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    ingest: str = Field(default="ingest", validation_alias="CONTACTS_INGEST_CONSUMER_GROUP")
    identity: str = Field(default="identity", validation_alias="CONTACTS_IDENTITY_CONSUMER_GROUP")
    enrichment: str = Field(default="enrichment", validation_alias="CONTACTS_ENRICHMENT_CONSUMER_GROUP")
    profiles: str = Field(default="profiles", validation_alias="CONTACTS_PROFILES_CONSUMER_GROUP")

    def of(self, service: str) -> str:
        group: str = getattr(self, service)
        return group


class MonitorSettings(BaseSettings):
    """CONTACTS_MONITOR_HTTP_HOST / _HTTP_PORT   /v1/lag, /metrics and health (default 127.0.0.1:8005)
    CONTACTS_MONITOR_GROUPS                      more consumer groups to watch besides the four services' own
                                                 (comma-separated); their topics are found from their commits
    CONTACTS_MONITOR_POLL_INTERVAL_SECONDS       how often offsets are read (default 5)
    CONTACTS_MONITOR_WINDOW                      samples per partition the status is judged on (default 6)
    CONTACTS_MONITOR_STOP_AFTER_SECONDS          lagging this long without a commit is STOP (default 60)
    CONTACTS_MONITOR_LOOKUP_TABLE_SIZE           end-offset points kept per partition for time lag (default 60)
    CONTACTS_MONITOR_READ_TIMEOUT_SECONDS        a group not read within this is ERR for that poll (default 10)
    CONTACTS_MONITOR_CLUSTER_NAME                the ``cluster_name`` label of the metrics (default ``contacts``)"""

    model_config = SettingsConfigDict(env_prefix="CONTACTS_MONITOR_", extra="forbid")

    http_host: str = "127.0.0.1"
    http_port: int = 8005
    groups: Annotated[list[str], NoDecode] = Field(default_factory=list)
    poll_interval_seconds: float = Field(default=5.0, gt=0, le=300)
    window: int = Field(default=6, ge=2, le=1000)
    stop_after_seconds: float = Field(default=60.0, gt=0)
    lookup_table_size: int = Field(default=60, ge=2, le=10_000)
    read_timeout_seconds: float = Field(default=10.0, gt=0)
    cluster_name: str = "contacts"
    platform: PlatformSettings = Field(default_factory=PlatformSettings)
    service_groups: ServiceGroups = Field(default_factory=ServiceGroups, exclude=True)

    @field_validator("groups", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [name.strip() for name in value.split(",") if name.strip()]
        return value
