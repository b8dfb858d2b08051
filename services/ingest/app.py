"""ingest's composition root: builds every object from settings and wires them together."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse

from services.ingest.config import IngestSettings
from services.ingest.downstream import DownstreamLag
from services.ingest.fairness import weights
from services.ingest.handlers import register
from services.ingest.importer import Importer
from services.ingest.intake import imports_api, mapping_api, upload_api
from services.ingest.intake.dependencies import Intake, provide
from services.ingest.intake.guards import SMALL_BODY_BYTES, BodyLimit, short_validation_errors
from services.ingest.intake.json_imports import JsonImports
from services.ingest.intake.uploads import Uploads
from services.ingest.jobs import ImportJobs
from services.ingest.mcp_server import ServiceImports, build_server, http_app
from services.ingest.pacing import Pacing
from services.ingest.service import IngestTopics
from shared import topics
from shared.consumer import Delivery
from shared.db import create_engine
from shared.http import mount_screen, operations_router
from shared.lifecycle import Running, relay_channel, running
from shared.logging import configure_logging
from shared.relay import OutboxSource

SERVICE = "ingest"
WEB_DIR = Path(__file__).parent / "web"
"""The column-mapping screen: static files, no build step; they call the API below with the user's token."""


def create_app(settings: IngestSettings) -> FastAPI:
    platform = settings.platform
    configure_logging(level=platform.log_level, fmt=platform.log_format, service=SERVICE)
    engine = create_engine(platform.database_url, schema=settings.db_schema)
    clients = platform.kafka_clients(SERVICE)
    broker = clients.broker(description="import tracking")
    prefix = platform.topic_prefix
    ingest_topics = IngestTopics(
        import_rows=topics.IMPORT_ROWS.qualified(prefix),
        bulk_import_rows=topics.BULK_IMPORT_ROWS.qualified(prefix),
        row_outcomes=topics.IMPORT_ROW_OUTCOMES.qualified(prefix),
        dead_letters=topics.dead_letter_topic(SERVICE).qualified(prefix),
    )
    delivery = Delivery(
        service=SERVICE, group=settings.consumer_group, bootstrap_servers=platform.kafka_bootstrap_servers,
        channel=relay_channel(settings.db_schema), kafka_options=clients.options("consumer"),
    )
    pacing = Pacing(
        engine=engine, windows=settings.windows(),
        weight_of=weights(settings.organizer_weights, default=settings.default_weight),
        poll_seconds=settings.pacing_poll_seconds, patience_seconds=settings.answer_deadline_seconds,
        downstream_lag=DownstreamLag(
            bootstrap_servers=platform.kafka_bootstrap_servers, topic=topics.CONTACT_EVENTS.qualified(prefix),
            groups=settings.pace_by_groups, client_options=clients.options("consumer"),
        ) if settings.pace_by_groups else None,
    )
    register(broker, engine=engine, topics=ingest_topics, delivery=delivery, on_counted=pacing.nudge)
    importer = Importer(
        engine=engine, bootstrap_servers=platform.kafka_bootstrap_servers, topic=ingest_topics.import_rows,
        bulk_topic=ingest_topics.bulk_import_rows, bulk_rows=settings.bulk_rows, data_dir=settings.data_dir,
        batch_size=settings.publish_batch_size, limits=settings.file_limits(), pacing=pacing,
    )
    jobs = ImportJobs(
        engine=engine, bootstrap_servers=platform.kafka_bootstrap_servers, importer=importer, pacing=pacing,
        parallel=settings.max_parallel_imports, sweep_seconds=settings.sweep_seconds,
        answer_deadline_seconds=settings.answer_deadline_seconds, upload_expiry_seconds=settings.upload_expiry_seconds,
        broker_check_seconds=settings.broker_check_seconds,
    )
    json_imports = JsonImports(
        engine=engine, jobs=jobs, max_contacts=settings.max_json_contacts,
        max_bytes=settings.max_json_bytes,
    )
    uploads = Uploads(engine=engine, importer=importer, jobs=jobs, max_upload_bytes=settings.max_upload_bytes)
    mcp = build_server(ServiceImports(engine=engine, json_imports=json_imports))
    mcp_app = http_app(mcp, auth_secret=platform.auth_secret.get_secret_value())

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[dict[str, Running]]:
        await asyncio.to_thread(settings.data_dir.mkdir, parents=True, exist_ok=True)
        async with (
            running(
                service=SERVICE, platform=platform, engine=engine, broker=broker, relay_sources=[OutboxSource()],
                db_schema=settings.db_schema,
            ) as started,
            jobs.running(started.producer),
            mcp.session_manager.run(),
        ):
            yield {"running": started}

    def body_limit(method: str, path: str) -> int | None:
        if method == "POST" and path.rstrip("/") == "/v1/imports":
            return None  # uploads and JSON contacts: limited as they stream in (see intake/)
        return settings.max_json_bytes + SMALL_BODY_BYTES if path.startswith("/mcp") else SMALL_BODY_BYTES

    app = FastAPI(title="Kagibag Contacts: ingest", lifespan=lifespan)
    app.add_middleware(BodyLimit, limit_of=body_limit)
    app.add_exception_handler(RequestValidationError, short_validation_errors)
    app.state.auth_secret = platform.auth_secret.get_secret_value()  # read by shared.auth's token dependency
    provide(app, Intake(engine=engine, jobs=jobs, uploads=uploads, json_imports=json_imports))
    app.mount("/mcp", mcp_app)  # MCP over streamable HTTP at /mcp/ (same bearer tokens as the REST API)
    mount_screen(app, WEB_DIR)

    @app.get("/", include_in_schema=False)
    async def home() -> RedirectResponse:
        return RedirectResponse("/app/")

    for router in (upload_api.router, imports_api.router, mapping_api.router):
        app.include_router(router)
    app.include_router(
        operations_router(
            service=SERVICE,
            engine=engine,
            group=settings.consumer_group,
            bootstrap_servers=platform.kafka_bootstrap_servers,
            consumed_topics=[ingest_topics.row_outcomes],
            details=jobs.readiness,
        )
    )
    return app
