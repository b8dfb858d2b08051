"""enrichment's composition root: builds every object from settings and wires them together."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles

from services.enrichment.api import EnrichmentApi, router
from services.enrichment.config import EnrichmentSettings
from services.enrichment.external_api import ExternalApi
from services.enrichment.handlers import register
from services.enrichment.providers import EmailDomainCompany, EmailLocalPartName, PhoneE164, Provider
from services.enrichment.service import EnrichmentTopics
from services.enrichment.worker import Pace, Worker
from shared import topics
from shared.consumer import Delivery
from shared.db import create_engine
from shared.http import operations_router
from shared.lifecycle import Running, relay_channel, running
from shared.logging import configure_logging
from shared.relay import OutboxSource

SERVICE = "enrichment"
WEB_DIR = Path(__file__).parent / "web"
"""The attendee's review screen: static files, no build step; they call the /v1/me API with the attendee's token."""


def build_providers(settings: EnrichmentSettings) -> list[Provider]:
    """The offline providers, then the external API when one is configured (its suggestions win a field when it
    is more confident)."""
    providers: list[Provider] = [EmailLocalPartName(), EmailDomainCompany(), PhoneE164(region=settings.phone_region)]
    if settings.api.base_url is not None:
        providers.append(ExternalApi(settings.api))
    return providers


def create_app(settings: EnrichmentSettings, *, providers: list[Provider] | None = None) -> FastAPI:
    platform = settings.platform
    configure_logging(level=platform.log_level, fmt=platform.log_format, service=SERVICE)
    engine = create_engine(platform.database_url, schema=settings.db_schema)
    clients = platform.kafka_clients(SERVICE)
    broker = clients.broker(description="contact enrichment")
    prefix = platform.topic_prefix
    enrichment_topics = EnrichmentTopics(
        contact_events=topics.CONTACT_EVENTS.qualified(prefix),
        enrichments=topics.ENRICHMENTS.qualified(prefix),
        attendee_statements=topics.ATTENDEE_STATEMENTS.qualified(prefix),
        dead_letters=topics.dead_letter_topic(SERVICE).qualified(prefix),
    )
    channel = relay_channel(settings.db_schema)
    delivery = Delivery(service=SERVICE, group=settings.consumer_group,
                        bootstrap_servers=platform.kafka_bootstrap_servers, channel=channel,
                        kafka_options=clients.options("consumer"))
    pace = Pace(busy_rate=settings.worker_busy_rate, idle_rate=settings.worker_idle_rate,
                quiet_seconds=settings.worker_quiet_seconds)
    register(broker, engine=engine, topics=enrichment_topics, delivery=delivery, batch_size=settings.batch_size,
             applied=pace.batch_applied)
    providers = providers if providers is not None else build_providers(settings)
    worker = Worker(
        engine, providers=providers,
        topic=enrichment_topics.enrichments, channel=channel, lock_name=f"{settings.db_schema}.worker", pace=pace,
        batch_size=settings.worker_batch_size, poll_seconds=settings.worker_poll_seconds,
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[dict[str, Running]]:
        try:
            async with running(
                service=SERVICE, platform=platform, engine=engine, broker=broker, relay_sources=[OutboxSource()],
                db_schema=settings.db_schema, jobs=[worker.run],
            ) as started:
                yield {"running": started}
        finally:
            for provider in providers:
                if isinstance(provider, ExternalApi):
                    await provider.close()

    app = FastAPI(title="Kagibag Contacts: enrichment", lifespan=lifespan)
    app.state.auth_secret = platform.auth_secret.get_secret_value()
    app.state.enrichment_api = EnrichmentApi(engine=engine, topics=enrichment_topics, channel=channel,
                                             phone_region=settings.phone_region)
    app.include_router(router)

    @app.get("/app/review", include_in_schema=False)
    async def review_screen() -> FileResponse:
        return FileResponse(WEB_DIR / "review.html")

    @app.get("/", include_in_schema=False)
    async def home() -> RedirectResponse:
        return RedirectResponse("/app/review")

    app.mount("/app", StaticFiles(directory=WEB_DIR), name="web")
    app.include_router(
        operations_router(
            service=SERVICE,
            engine=engine,
            group=settings.consumer_group,
            bootstrap_servers=platform.kafka_bootstrap_servers,
            consumed_topics=[enrichment_topics.contact_events],
        )
    )
    return app
