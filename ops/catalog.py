"""The services as the local-stack and operator tools see them: settings class, migrations folder, schema, port.

The four consuming services each own a schema and a consumer group; the lag monitor owns neither (it only reads
the broker); the operator commands own the ``ops`` schema and run no process."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from pydantic_settings import BaseSettings

from shared.config import PlatformSettings
from shared.migrations import upgrade

SERVICES: tuple[str, ...] = ("ingest", "identity", "enrichment", "profiles")
"""The consuming services: each has its own schema, consumer group and HTTP port."""
MONITOR = "monitor"
PROCESSES: tuple[str, ...] = (*SERVICES, MONITOR)
"""What the local stack runs, each with its HTTP port (``deploy/Procfile``)."""
OPS = "ops"
SCHEMAS: tuple[str, ...] = (*SERVICES, OPS)
"""What ``contacts migrate`` migrates: each has a ``migrations`` folder and a ``db_schema`` setting."""


def settings_class(service: str) -> type[BaseSettings]:
    """``services.<service>.config.<Service>Settings``, e.g. ``IdentitySettings``."""
    known = (*PROCESSES, OPS)
    if service not in known:
        raise ValueError(f"unknown service {service!r}; expected one of {', '.join(known)}")
    module = importlib.import_module("ops.config" if service == OPS else f"services.{service}.config")
    settings: type[BaseSettings] = getattr(module, f"{service.capitalize()}Settings")
    return settings


def load_settings(service: str, *, platform: PlatformSettings | None = None) -> Any:
    """The service's settings from the environment; ``platform`` replaces the ``CONTACTS_*`` part."""
    cls = settings_class(service)
    return cls() if platform is None else cls(platform=platform)


def package_dir(service: str) -> Path:
    module = importlib.import_module("ops" if service == OPS else f"services.{service}")
    return Path(next(iter(module.__path__)))


def migrations_dir(service: str) -> Path:
    return package_dir(service) / "migrations"


def migrate(service: str, *, platform: PlatformSettings) -> str:
    """Apply ``service``'s migrations into its configured schema on ``platform.database_url``; returns the
    schema."""
    schema: str = load_settings(service, platform=platform).db_schema
    upgrade(migrations_dir=migrations_dir(service), database_url=platform.database_url, schema=schema)
    return schema
