"""The four services as the operational tools see them: settings class, migrations folder, schema, port."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from pydantic_settings import BaseSettings

from shared.config import PlatformSettings
from shared.migrations import upgrade

SERVICES: tuple[str, ...] = ("ingest", "identity", "enrichment", "profiles")


def settings_class(service: str) -> type[BaseSettings]:
    """``services.<service>.config.<Service>Settings``, e.g. ``IdentitySettings``."""
    if service not in SERVICES:
        raise ValueError(f"unknown service {service!r}; expected one of {', '.join(SERVICES)}")
    module = importlib.import_module(f"services.{service}.config")
    settings: type[BaseSettings] = getattr(module, f"{service.capitalize()}Settings")
    return settings


def load_settings(service: str, *, platform: PlatformSettings | None = None) -> Any:
    """The service's settings from the environment; ``platform`` replaces the ``CONTACTS_*`` part."""
    cls = settings_class(service)
    return cls() if platform is None else cls(platform=platform)


def package_dir(service: str) -> Path:
    module = importlib.import_module(f"services.{service}")
    return Path(next(iter(module.__path__)))


def migrations_dir(service: str) -> Path:
    return package_dir(service) / "migrations"


def migrate(service: str, *, platform: PlatformSettings) -> str:
    """Apply ``service``'s migrations into its configured schema on ``platform.database_url``; returns the
    schema."""
    schema: str = load_settings(service, platform=platform).db_schema
    upgrade(migrations_dir=migrations_dir(service), database_url=platform.database_url, schema=schema)
    return schema
