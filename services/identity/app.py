"""identity's composition root: builds every object from settings and wires them together."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from services.identity.config import IdentitySettings
from services.identity.handlers import IdentityTopics, register
from shared import topics
from shared.http import operations_router
from shared.runtime import build_plumbing, running

SERVICE = "identity"


def create_app(settings: IdentitySettings) -> FastAPI:
    platform = settings.platform
    plumbing = build_plumbing(
        service=SERVICE, platform=platform, db_schema=settings.db_schema, description="identity resolution"
    )
    engine, messaging, broker = plumbing.engine, plumbing.messaging, plumbing.broker
    prefix = platform.topic_prefix
    identity_topics = IdentityTopics(
        import_rows=topics.IMPORT_ROWS.qualified(prefix),
        contact_events=topics.CONTACT_EVENTS.qualified(prefix),
        row_outcomes=topics.IMPORT_ROW_OUTCOMES.qualified(prefix),
        dead_letters=topics.dead_letter_topic(SERVICE).qualified(prefix),
        interactions=topics.INTERACTIONS.qualified(prefix),
    )
    register(
        broker,
        engine=engine,
        messaging=messaging,
        topics=identity_topics,
        group=settings.consumer_group,
        batch_size=settings.batch_size,
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        async with running(messaging, broker, service=SERVICE):
            yield

    app = FastAPI(title="Kagibag Contacts: identity", lifespan=lifespan)
    app.include_router(
        operations_router(
            service=SERVICE,
            engine=engine,
            messaging=messaging,
            group=settings.consumer_group,
            consumed_topics=[identity_topics.import_rows, identity_topics.interactions],
        )
    )
    return app
