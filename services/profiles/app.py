"""profiles' composition root: builds every object from settings and wires them together."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import RedirectResponse

from services.profiles.api import contacts_router
from services.profiles.config import ProfilesSettings
from services.profiles.handlers import register
from services.profiles.history import history_router
from services.profiles.organizer_feed import Feed
from services.profiles.segments_api import segments_router
from services.profiles.service import ProfilesTopics
from shared.consumer import Delivery
from shared.db import create_engine
from shared.http import mount_screen, operations_router
from shared.lifecycle import Running, relay_channel, running
from shared.logging import configure_logging
from shared.relay import OutboxSource

SERVICE = "profiles"
WEB_DIR = Path(__file__).parent / "web"
"""The organizer's contacts screens: static files, no build step; they call this /v1 API with the organizer's token."""


def create_app(settings: ProfilesSettings) -> FastAPI:
    platform = settings.platform
    configure_logging(level=platform.log_level, fmt=platform.log_format, service=SERVICE)
    engine = create_engine(platform.database_url, schema=settings.db_schema)
    clients = platform.kafka_clients(SERVICE)
    broker = clients.broker(description="contact profile read models")
    profiles_topics = ProfilesTopics.qualified(platform.topic_prefix)
    delivery = Delivery(service=SERVICE, group=settings.consumer_group,
                        bootstrap_servers=platform.kafka_bootstrap_servers, channel=relay_channel(settings.db_schema),
                        kafka_options=clients.options("consumer"))
    register(broker, engine=engine, topics=profiles_topics, delivery=delivery, batch_size=settings.batch_size)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[dict[str, Running]]:
        async with running(
            service=SERVICE, platform=platform, engine=engine, broker=broker, relay_sources=[OutboxSource()],
            db_schema=settings.db_schema,
        ) as started:
            yield {"running": started}

    app = FastAPI(title="Kagibag Contacts: profiles", lifespan=lifespan)
    app.state.auth_secret = platform.auth_secret.get_secret_value()
    feed = Feed(topic=profiles_topics.organizer_contacts, channel=delivery.channel)
    app.include_router(segments_router(engine))  # before the contacts routes: /v1/contacts/export.csv is not an id
    app.include_router(contacts_router(engine, feed=feed))
    app.include_router(history_router(engine))
    app.include_router(
        operations_router(
            service=SERVICE,
            engine=engine,
            group=settings.consumer_group,
            bootstrap_servers=platform.kafka_bootstrap_servers,
            consumed_topics=[profiles_topics.contact_events],
        )
    )
    mount_screen(app, WEB_DIR)

    @app.get("/", include_in_schema=False)
    async def home() -> RedirectResponse:
        return RedirectResponse("/app/")

    return app
