"""enrichment's composition root: builds every object from settings and wires them together."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from services.enrichment.config import EnrichmentSettings
from services.enrichment.handlers import EnrichmentTopics, register
from shared import topics
from shared.http import operations_router
from shared.runtime import build_plumbing, running

SERVICE = "enrichment"


def create_app(settings: EnrichmentSettings) -> FastAPI:
    platform = settings.platform
    plumbing = build_plumbing(
        service=SERVICE, platform=platform, db_schema=settings.db_schema, description="contact enrichment"
    )
    engine, messaging, broker = plumbing.engine, plumbing.messaging, plumbing.broker
    prefix = platform.topic_prefix
    enrichment_topics = EnrichmentTopics(
        contact_events=topics.CONTACT_EVENTS.qualified(prefix),
        enrichments=topics.ENRICHMENTS.qualified(prefix),
        dead_letters=topics.dead_letter_topic(SERVICE).qualified(prefix),
    )
    register(
        broker,
        engine=engine,
        messaging=messaging,
        topics=enrichment_topics,
        group=settings.consumer_group,
        batch_size=settings.batch_size,
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        async with running(messaging, broker, service=SERVICE):
            yield

    app = FastAPI(title="Kagibag Contacts: enrichment", lifespan=lifespan)
    app.include_router(
        operations_router(
            service=SERVICE,
            engine=engine,
            messaging=messaging,
            group=settings.consumer_group,
            consumed_topics=[enrichment_topics.contact_events],
        )
    )
    return app
