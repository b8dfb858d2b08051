"""Alembic plumbing: one migration history per service, each applied inside the service's own schema."""

from __future__ import annotations

import json
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import MetaData, text

from shared.db import checked_schema, create_migration_engine


def upgrade(*, migrations_dir: Path, database_url: str, schema: str) -> None:
    """Bring ``schema`` to the newest revision of the service whose migrations live in ``migrations_dir``."""
    config = Config()
    config.set_main_option("script_location", str(migrations_dir))
    config.attributes["database_url"] = database_url
    config.attributes["schema"] = checked_schema(schema)
    command.upgrade(config, "head")


def run_env(target_metadata: MetaData) -> None:
    """Body of every service's ``env.py``: create the schema, then migrate with it first on the search path,
    so migrations name no schema and tests can use a unique schema per run."""
    from alembic import context

    database_url = context.config.attributes["database_url"]
    schema = context.config.attributes["schema"]
    engine = create_migration_engine(database_url, schema=schema)
    try:
        with engine.begin() as connection:
            connection.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
        with engine.connect() as connection:
            context.configure(
                connection=connection,
                target_metadata=target_metadata,
                version_table_schema=schema,
                transaction_per_migration=False,
            )
            with context.begin_transaction():
                context.run_migrations()
            connection.commit()
    finally:
        engine.dispose()


def create_plumbing_tables() -> None:
    """Revision-1 helper: the outbox and tracking-record tables every service has (see shared.outbox and
    shared.tracking). Later changes to them get their own per-service revisions."""
    import sqlalchemy as sa
    from alembic import op
    from sqlalchemy.dialects.postgresql import JSONB

    op.create_table(
        "outbox",
        sa.Column("position", sa.BigInteger, sa.Identity(always=False), primary_key=True),
        sa.Column("topic", sa.Text, nullable=False),
        sa.Column("key", sa.LargeBinary),
        sa.Column("value", sa.LargeBinary, nullable=False),
        sa.Column("headers", JSONB, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )
    op.create_table(
        "processed_messages",
        sa.Column("consumer", sa.Text, nullable=False),
        sa.Column("message_id", sa.Text, nullable=False),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("consumer", "message_id"),
    )


def drop_plumbing_tables() -> None:
    from alembic import op

    op.drop_table("processed_messages")
    op.drop_table("outbox")


def move_to_positional_plumbing(*, relay_cursors: bool = False) -> None:
    """A revision's helper: the delivery tables of the bulk plumbing (``consumer_positions``, ``outbox_batches``
    and, for a service that relays a kept store, ``relay_cursors``), created from their one declaration in
    ``shared/``; the legacy outbox's unpublished messages moved into one ``outbox_batches`` row; the legacy
    ``outbox`` and ``processed_messages`` dropped."""
    import sqlalchemy as sa
    from alembic import op

    from shared.outbox_batches import enqueue_sync, outbox_batches_table
    from shared.positions import consumer_positions_table
    from shared.producer import OutgoingMessage
    from shared.relay import relay_cursors_table

    bind = op.get_bind()
    metadata = sa.MetaData()
    tables = [consumer_positions_table(metadata), outbox_batches_table(metadata)]
    if relay_cursors:
        tables.append(relay_cursors_table(metadata))
    for table in tables:
        table.create(bind)
    legacy = bind.execute(sa.text("SELECT topic, key, value, headers FROM outbox ORDER BY position")).all()
    enqueue_sync(bind, [OutgoingMessage(r.topic, r.key, r.value, [(k, v.encode()) for k, v in (
        json.loads(r.headers) if isinstance(r.headers, str) else r.headers)]) for r in legacy])
    op.drop_table("outbox")
    op.drop_table("processed_messages")
