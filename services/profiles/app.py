"""profiles' composition root: builds every object from settings and wires them together."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from services.profiles.api import contacts_router
from services.profiles.config import ProfilesSettings
from services.profiles.handlers import ProfilesTopics, register
from shared.http import operations_router
from shared.runtime import build_plumbing, running

SERVICE = "profiles"


def create_app(settings: ProfilesSettings) -> FastAPI:
    platform = settings.platform
    plumbing = build_plumbing(
        service=SERVICE, platform=platform, db_schema=settings.db_schema, description="contact profile read models"
    )
    engine, messaging, broker = plumbing.engine, plumbing.messaging, plumbing.broker
    profiles_topics = ProfilesTopics.qualified(platform.topic_prefix)
    register(
        broker,
        engine=engine,
        messaging=messaging,
        topics=profiles_topics,
        group=settings.consumer_group,
        batch_size=settings.batch_size,
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        async with running(messaging, broker, service=SERVICE):
            yield

    app = FastAPI(title="Kagibag Contacts: profiles", lifespan=lifespan)
    app.state.auth_secret = platform.auth_secret.get_secret_value()
    app.include_router(contacts_router(engine))
    app.include_router(
        operations_router(
            service=SERVICE,
            engine=engine,
            messaging=messaging,
            group=settings.consumer_group,
            consumed_topics=[profiles_topics.contact_events],
        )
    )
    return app
