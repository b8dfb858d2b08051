"""Per-test isolation on shared servers: a unique id names the topics, schemas, consumer groups and ports."""

from __future__ import annotations

import shutil
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from pydantic import SecretStr

from ops.catalog import PROCESSES, SCHEMAS, SERVICES, migrations_dir, settings_class
from ops.local_broker import LOCAL_GROUP_TIMING, LOOPBACK
from ops.local_postgres import libpq_url
from shared.config import PlatformSettings
from shared.kafka_security import KafkaSecuritySettings
from shared.migrations import upgrade
from shared.topics import Topic
from tests.support.ports import free_port

TEST_AUTH_SECRET = "test-secret-for-pytest-only-0123456789abcdef"


def has_migrations(service: str) -> bool:
    return (migrations_dir(service) / "env.py").is_file()


def _has_setting(service: str, name: str) -> bool:
    """Whether the service's settings class has ``name``: its ``extra="forbid"`` refuses unknown variables."""
    try:
        return name in settings_class(service).model_fields
    except ImportError:
        return False


@dataclass(frozen=True)
class Isolation:
    """Names one test's share of the broker and database: topics ``t<id>.*``, schemas ``t<id>_<service>``."""

    database_url: str
    kafka_bootstrap: str
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:10])
    http_ports: dict[str, int] = field(default_factory=lambda: {service: free_port() for service in PROCESSES})
    auth_secret: str = TEST_AUTH_SECRET
    data_dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="contacts-test-")))

    @property
    def topic_prefix(self) -> str:
        return f"t{self.id}."

    def topic(self, topic: Topic) -> str:
        """The name ``topic`` has on the broker in this test."""
        return topic.qualified(self.topic_prefix)

    def schema(self, service: str) -> str:
        return f"t{self.id}_{service}"

    def consumer_group(self, service: str) -> str:
        return f"t{self.id}.{service}"

    def base_url(self, service: str) -> str:
        return f"http://{LOOPBACK}:{self.http_ports[service]}"

    def env(self) -> dict[str, str]:
        """Every ``CONTACTS_*`` variable the services need to run inside this isolation."""
        env = {
            "CONTACTS_KAFKA_BOOTSTRAP_SERVERS": self.kafka_bootstrap,
            "CONTACTS_DATABASE_URL": self.database_url,
            "CONTACTS_TOPIC_PREFIX": self.topic_prefix,
            "CONTACTS_AUTH_SECRET": self.auth_secret,
            "CONTACTS_ENVIRONMENT": "development",
            "CONTACTS_LOG_FORMAT": "json",
            "CONTACTS_KAFKA_ENABLE_IDEMPOTENCE": "false",  # the test broker (Tansu) refuses idempotent producers
            **LOCAL_GROUP_TIMING,
            "CONTACTS_INGEST_DATA_DIR": str(self.data_dir / "uploads"),
        }
        for service in SCHEMAS:
            env[f"CONTACTS_{service.upper()}_DB_SCHEMA"] = self.schema(service)
        for service in PROCESSES:
            prefix = f"CONTACTS_{service.upper()}_"
            env[f"{prefix}HTTP_HOST"] = LOOPBACK
            env[f"{prefix}HTTP_PORT"] = str(self.http_ports[service])
            if _has_setting(service, "consumer_group"):
                env[f"{prefix}CONSUMER_GROUP"] = self.consumer_group(service)
        return env

    def platform_settings(self, **overrides: Any) -> PlatformSettings:
        """Settings for a service running inside this test's process, within this isolation."""
        values: dict[str, Any] = {
            "kafka_bootstrap_servers": self.kafka_bootstrap,
            "topic_prefix": self.topic_prefix,
            "database_url": self.database_url,
            "auth_secret": SecretStr(self.auth_secret),
            "kafka": KafkaSecuritySettings(  # Tansu refuses idempotent producers, and holds a join for half a session
                enable_idempotence=False,
                session_timeout_ms=int(LOCAL_GROUP_TIMING["CONTACTS_KAFKA_SESSION_TIMEOUT_MS"]),
                heartbeat_interval_ms=int(LOCAL_GROUP_TIMING["CONTACTS_KAFKA_HEARTBEAT_INTERVAL_MS"]),
            ),
            **overrides,
        }
        return PlatformSettings(**values)

    def migrate(self, services: tuple[str, ...] = SERVICES) -> None:
        """Apply each service's migrations into its isolated schema."""
        for service in services:
            schema = self.schema(service)
            upgrade(migrations_dir=migrations_dir(service), database_url=self.database_url, schema=schema)

    def drop_schemas(self) -> None:
        """Teardown: the schemas, and the files the services wrote (ingest's uploads)."""
        shutil.rmtree(self.data_dir, ignore_errors=True)
        with psycopg.connect(libpq_url(self.database_url), autocommit=True) as conn:
            for service in SCHEMAS:
                conn.execute(f'DROP SCHEMA IF EXISTS "{self.schema(service)}" CASCADE')
