"""Each service's migrations apply into its own schema, are idempotent, and create nothing elsewhere."""

from __future__ import annotations

import importlib

import psycopg
import pytest

from services.catalog import SERVICES
from services.local_postgres import libpq_url
from tests.support.isolation import Isolation, has_migrations

pytestmark = pytest.mark.integration


def _tables(isolation: Isolation, schema: str) -> set[str]:
    with psycopg.connect(libpq_url(isolation.database_url)) as conn:
        rows = conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s", (schema,)
        ).fetchall()
    return {name for (name,) in rows}


def _public_tables(isolation: Isolation) -> set[str]:
    return _tables(isolation, "public")


def _declared_tables(service: str) -> set[str] | None:
    """The tables the service's ``db.metadata`` declares, when it has one."""
    try:
        metadata = importlib.import_module(f"services.{service}.db").metadata
    except (ImportError, AttributeError):
        return None
    return set(metadata.tables)


def _require_migrations(services: tuple[str, ...]) -> None:
    missing = [service for service in services if not has_migrations(service)]
    if missing:
        pytest.skip(f"no migrations yet for: {', '.join(missing)}")


@pytest.mark.parametrize("service", SERVICES)
def test_a_service_migrates_into_its_own_schema_only(isolation: Isolation, service: str) -> None:
    _require_migrations((service,))
    public_before = _public_tables(isolation)

    isolation.migrate((service,))

    tables = _tables(isolation, isolation.schema(service))
    declared = _declared_tables(service)
    assert "alembic_version" in tables
    if declared is not None:
        assert tables == declared | {"alembic_version"}, "migrations and db.metadata disagree"
    assert _public_tables(isolation) == public_before
    for other in SERVICES:
        if other != service:
            written = _tables(isolation, isolation.schema(other))
            assert written == set(), f"{service} wrote into {other}'s schema"


def test_all_services_migrate_side_by_side_twice(isolation: Isolation) -> None:
    _require_migrations(SERVICES)

    isolation.migrate()
    first = {service: _tables(isolation, isolation.schema(service)) for service in SERVICES}
    isolation.migrate()
    second = {service: _tables(isolation, isolation.schema(service)) for service in SERVICES}

    assert first == second
    with psycopg.connect(libpq_url(isolation.database_url)) as conn:
        for service in SERVICES:
            versions = conn.execute(f'SELECT version_num FROM "{isolation.schema(service)}".alembic_version')
            assert len(versions.fetchall()) == 1, f"{service}: one head revision"
