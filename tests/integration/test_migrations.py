"""Each service's migrations apply into its own schema only, are idempotent, and build exactly the tables its
``db.metadata`` declares: the same tables, columns, types, nullability, keys and indexes (alembic's own comparison
of a migrated schema with the models; comments are documentation and not compared)."""

from __future__ import annotations

import importlib
from typing import Any

import psycopg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from ops.catalog import SERVICES
from ops.local_postgres import libpq_url
from shared.db import create_migration_engine
from tests.support.isolation import Isolation

pytestmark = pytest.mark.integration
DOCUMENTATION = {"modify_comment", "add_table_comment", "remove_table_comment"}


def _tables(isolation: Isolation, schema: str) -> set[str]:
    with psycopg.connect(libpq_url(isolation.database_url)) as conn:
        rows = conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s", (schema,)
        ).fetchall()
    return {name for (name,) in rows}


def _differences(isolation: Isolation, service: str) -> list[Any]:
    """What alembic would change to make the migrated schema match the service's models."""
    metadata = importlib.import_module(f"services.{service}.db").metadata
    engine = create_migration_engine(isolation.database_url, schema=isolation.schema(service))
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={
                "compare_type": True,
                "include_object": lambda _, name, kind, *__: not (kind == "table" and name == "alembic_version"),
            })
            found = compare_metadata(context, metadata)
    finally:
        engine.dispose()
    flat = [item for entry in found for item in (entry if isinstance(entry, list) else [entry])]
    return [item for item in flat if item[0] not in DOCUMENTATION]


@pytest.mark.parametrize("service", SERVICES)
def test_a_service_migrates_into_its_own_schema_exactly_as_its_models_say(
    isolation: Isolation, service: str
) -> None:
    public_before = _tables(isolation, "public")

    isolation.migrate((service,))

    assert _differences(isolation, service) == []
    assert "alembic_version" in _tables(isolation, isolation.schema(service))
    assert _tables(isolation, "public") == public_before
    for other in SERVICES:
        if other != service:
            assert _tables(isolation, isolation.schema(other)) == set(), f"{service} wrote into {other}'s schema"


def test_all_services_migrate_side_by_side_twice(isolation: Isolation) -> None:
    isolation.migrate()
    first = {service: _tables(isolation, isolation.schema(service)) for service in SERVICES}
    isolation.migrate()
    second = {service: _tables(isolation, isolation.schema(service)) for service in SERVICES}

    assert first == second
    with psycopg.connect(libpq_url(isolation.database_url)) as conn:
        for service in SERVICES:
            versions = conn.execute(f'SELECT version_num FROM "{isolation.schema(service)}".alembic_version')
            assert len(versions.fetchall()) == 1, f"{service}: one head revision"
