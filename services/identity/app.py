"""identity's composition root: builds every object from settings and wires them together."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

from fastapi import FastAPI

from services.identity.config import IdentitySettings
from services.identity.handlers import register
from services.identity.publishing import relay_sources
from services.identity.service import IdentityTopics
from shared import topics
from shared.consumer import Delivery
from shared.db import create_engine
from shared.http import operations_router
from shared.lifecycle import Running, relay_channel, running
from shared.logging import configure_logging
from shared.retention import Pruner, Retained

SERVICE = "identity"
EXPIRING = [Retained("applied_interactions", "applied_at"), Retained("row_answers", "recorded_at"),
            Retained("applied_rows", "updated_at")]
"""What identity keeps only to recognise a message that comes again: pruned after the retention."""


def create_app(settings: IdentitySettings) -> FastAPI:
    platform = settings.platform
    configure_logging(level=platform.log_level, fmt=platform.log_format, service=SERVICE)
    engine = create_engine(platform.database_url, schema=settings.db_schema)
    clients = platform.kafka_clients(SERVICE)
    broker = clients.broker(description="identity resolution")
    prefix = platform.topic_prefix
    identity_topics = IdentityTopics(
        import_rows=topics.IMPORT_ROWS.qualified(prefix),
        bulk_import_rows=topics.BULK_IMPORT_ROWS.qualified(prefix),
        interactions=topics.INTERACTIONS.qualified(prefix),
        attendee_statements=topics.ATTENDEE_STATEMENTS.qualified(prefix),
        contact_events=topics.CONTACT_EVENTS.qualified(prefix),
        row_outcomes=topics.IMPORT_ROW_OUTCOMES.qualified(prefix),
        dead_letters=topics.dead_letter_topic(SERVICE).qualified(prefix),
    )
    delivery = Delivery(service=SERVICE, group=settings.consumer_group,
                        bootstrap_servers=platform.kafka_bootstrap_servers, channel=relay_channel(settings.db_schema),
                        kafka_options=clients.options("consumer"))
    register(broker, engine=engine, topics=identity_topics, delivery=delivery, batch_size=settings.batch_size)
    pruner = Pruner(engine, targets=EXPIRING, retention=timedelta(hours=platform.tracking_retention_hours),
                    interval=platform.tracking_prune_interval_seconds)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[dict[str, Running]]:
        async with running(
            service=SERVICE, platform=platform, engine=engine, broker=broker,
            relay_sources=relay_sources(identity_topics), db_schema=settings.db_schema,
            jobs=[pruner.run],
        ) as started:
            yield {"running": started}

    app = FastAPI(title="Kagibag Contacts: identity", lifespan=lifespan)
    app.include_router(
        operations_router(
            service=SERVICE,
            engine=engine,
            group=settings.consumer_group,
            bootstrap_servers=platform.kafka_bootstrap_servers,
            consumed_topics=[identity_topics.import_rows, identity_topics.bulk_import_rows,
                             identity_topics.interactions, identity_topics.attendee_statements],
        )
    )
    return app
