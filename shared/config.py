"""Platform settings every service reads: broker, database, auth and logging (env prefix ``CONTACTS_``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.kafka_security import KafkaSecuritySettings

if TYPE_CHECKING:
    from shared.kafka import KafkaClients

DEVELOPMENT_AUTH_SECRET = "dev-only-secret-change-me-0123456789abcdef"


class PlatformSettings(BaseSettings):
    """Cross-cutting settings.

    CONTACTS_KAFKA_BOOTSTRAP_SERVERS  broker address list, e.g. ``127.0.0.1:9092``
    CONTACTS_TOPIC_PREFIX             prepended to every topic name (test isolation, multi-tenant clusters)
    CONTACTS_DATABASE_URL             SQLAlchemy URL of the PostgreSQL server (``postgresql+psycopg://...``)
    CONTACTS_AUTH_SECRET              HS256 secret for bearer tokens; required outside development
    CONTACTS_ENVIRONMENT              ``development`` or ``production``
    CONTACTS_LOG_FORMAT               ``auto`` (JSON unless on a terminal), ``json`` or ``console``
    CONTACTS_LOG_LEVEL                standard level name
    CONTACTS_TRACKING_RETENTION_HOURS tracking records (ids of applied messages) older than this are deleted;
                                      keep it longer than any redelivery or replay you may do (default 7 days)
    CONTACTS_TRACKING_PRUNE_INTERVAL_SECONDS  how often each service deletes them (default hourly)
    CONTACTS_TOPIC_REPLICATION_FACTOR  replicas of each topic the services create (1 locally; 3 on a cluster)
    CONTACTS_TOPIC_MIN_INSYNC_REPLICAS ``min.insync.replicas`` of each topic created (1 locally; 2 on a cluster)
    CONTACTS_CONSUMER_STUCK_SECONDS   liveness fails when a consumer loop has not polled for this long (in one
                                      batch; default 300, aiokafka's max_poll_interval_ms)
    """

    model_config = SettingsConfigDict(env_prefix="CONTACTS_", extra="ignore")

    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    topic_prefix: str = ""
    database_url: str = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
    auth_secret: SecretStr = SecretStr(DEVELOPMENT_AUTH_SECRET)
    environment: Literal["development", "production"] = "development"
    log_format: Literal["auto", "json", "console"] = "auto"
    log_level: str = "INFO"
    token_ttl_seconds: int = Field(default=8 * 3600, gt=0)
    tracking_retention_hours: float = Field(default=7 * 24, gt=0)
    tracking_prune_interval_seconds: float = Field(default=3600, gt=0)
    topic_replication_factor: int = Field(default=1, ge=1)
    topic_min_insync_replicas: int = Field(default=1, ge=1)
    consumer_stuck_seconds: float = Field(default=300, gt=0)
    kafka: KafkaSecuritySettings = Field(default_factory=KafkaSecuritySettings)
    """How clients connect: ``CONTACTS_KAFKA_*`` (``shared.kafka_security``)."""

    def kafka_clients(self, service: str) -> KafkaClients:
        """How ``service``'s Kafka clients connect (built once, in its composition root)."""
        from shared.kafka import KafkaClients

        return KafkaClients(self.kafka_bootstrap_servers, service, self.kafka)

    @model_validator(mode="after")
    def _refuse_placeholder_secret_in_production(self) -> PlatformSettings:
        secret = self.auth_secret.get_secret_value()
        if self.environment == "production" and (secret == DEVELOPMENT_AUTH_SECRET or len(secret) < 32):
            raise ValueError("CONTACTS_AUTH_SECRET must be set to a random value of at least 32 characters")
        return self
