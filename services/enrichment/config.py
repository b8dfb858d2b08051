"""enrichment settings (env prefix ``CONTACTS_ENRICHMENT_``) plus the platform settings (``CONTACTS_``)."""

from __future__ import annotations

import phonenumbers
from pydantic import AnyHttpUrl, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.config import PlatformSettings


class ExternalApiSettings(BaseSettings):
    """The external enrichment API (``CONTACTS_ENRICHMENT_API_``); off unless ``BASE_URL`` is set.

    CONTACTS_ENRICHMENT_API_BASE_URL           e.g. ``https://enrich.example.net`` (``POST /v1/people/lookup``)
    CONTACTS_ENRICHMENT_API_KEY                sent as ``Authorization: Bearer <key>``
    CONTACTS_ENRICHMENT_API_TIMEOUT_SECONDS    per request (connect, read, write, pool)
    CONTACTS_ENRICHMENT_API_ATTEMPTS           tries per lookup: timeouts, connection errors, 429 and 5xx are retried
    CONTACTS_ENRICHMENT_API_BACKOFF_SECONDS    first wait between tries, doubled each time (a 429's Retry-After
                                               is honoured up to BACKOFF_MAX_SECONDS)
    CONTACTS_ENRICHMENT_API_BACKOFF_MAX_SECONDS
    CONTACTS_ENRICHMENT_API_DEADLINE_SECONDS   a lookup with all its tries never takes longer than this
    CONTACTS_ENRICHMENT_API_REQUESTS_PER_SECOND the rate limit this side keeps
    CONTACTS_ENRICHMENT_API_BATCH_SIZE         emails per request
    CONTACTS_ENRICHMENT_API_FAILURES_TO_OPEN   consecutive failed lookups that open the circuit breaker
    CONTACTS_ENRICHMENT_API_OPEN_SECONDS       how long it stays open (no call is made) before one trial call"""

    model_config = SettingsConfigDict(env_prefix="CONTACTS_ENRICHMENT_API_", extra="forbid")

    base_url: AnyHttpUrl | None = None
    key: SecretStr = SecretStr("")
    timeout_seconds: float = Field(default=2.0, gt=0)
    attempts: int = Field(default=3, ge=1, le=10)
    backoff_seconds: float = Field(default=0.2, ge=0)
    backoff_max_seconds: float = Field(default=5.0, ge=0)
    deadline_seconds: float = Field(default=10.0, gt=0)
    requests_per_second: float = Field(default=5.0, gt=0)
    batch_size: int = Field(default=50, ge=1, le=1000)
    failures_to_open: int = Field(default=3, ge=1)
    open_seconds: float = Field(default=60.0, gt=0)


class EnrichmentSettings(BaseSettings):
    """CONTACTS_ENRICHMENT_HTTP_HOST / _HTTP_PORT  the API, the review screen, health and metrics (127.0.0.1:8003)
    CONTACTS_ENRICHMENT_DB_SCHEMA                  the schema holding enrichment's tables
    CONTACTS_ENRICHMENT_CONSUMER_GROUP             Kafka consumer group of all enrichment instances
    CONTACTS_ENRICHMENT_BATCH_SIZE                 contact events per batch (one transaction per batch)
    CONTACTS_ENRICHMENT_WORKER_BATCH_SIZE          contacts per provider run (one transaction, one outbox row)
    CONTACTS_ENRICHMENT_WORKER_BUSY_RATE           contacts per second the providers are run at while contact
                                                   events are arriving (a bulk import: keep the cores for it)
    CONTACTS_ENRICHMENT_WORKER_IDLE_RATE           contacts per second once the contact log has been quiet for
                                                   WORKER_QUIET_SECONDS
    CONTACTS_ENRICHMENT_WORKER_QUIET_SECONDS
    CONTACTS_ENRICHMENT_WORKER_POLL_SECONDS        how often an idle worker looks for contacts to enrich
    CONTACTS_ENRICHMENT_PHONE_REGION               region (ISO 3166 alpha-2, e.g. ``DE``) of phone numbers written
                                                   without ``+country code``; unset: only international numbers
                                                   are normalized
    CONTACTS_ENRICHMENT_API_*                      the external enrichment API (``ExternalApiSettings``)"""

    model_config = SettingsConfigDict(env_prefix="CONTACTS_ENRICHMENT_", extra="forbid")

    http_host: str = "127.0.0.1"
    http_port: int = 8003
    db_schema: str = "enrichment"
    consumer_group: str = "enrichment"
    batch_size: int = Field(default=5000, gt=0, le=50_000)
    worker_batch_size: int = Field(default=500, gt=0, le=10_000)
    worker_busy_rate: float = Field(default=100.0, gt=0)
    worker_idle_rate: float = Field(default=2000.0, gt=0)
    worker_quiet_seconds: float = Field(default=10.0, ge=0)
    worker_poll_seconds: float = Field(default=1.0, gt=0)
    phone_region: str | None = None
    api: ExternalApiSettings = Field(default_factory=ExternalApiSettings)
    platform: PlatformSettings = Field(default_factory=PlatformSettings)

    @field_validator("phone_region")
    @classmethod
    def _known_region(cls, region: str | None) -> str | None:
        if region is None or not region.strip():
            return None
        code = region.strip().upper()
        if code not in phonenumbers.SUPPORTED_REGIONS:
            raise ValueError(f"unknown phone region {region!r}: use an ISO 3166 alpha-2 code such as DE or US")
        return code

