"""The lag monitor's composition root: which groups to watch, the poller, the loop and the HTTP surfaces."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from services.monitor.api import monitor_registry, router
from services.monitor.config import MonitorSettings
from services.monitor.domain import LagBook, Rules
from services.monitor.poller import OffsetPoller
from services.monitor.watch import Monitor
from shared.http import asyncapi_router
from shared.lag import SUBSCRIPTIONS
from shared.logging import configure_logging
from shared.topics import CONSUMING_SERVICES, dead_letter_topic, lane_group

SERVICE = "monitor"


def watched_groups(settings: MonitorSettings) -> tuple[dict[str, tuple[str, ...] | None], dict[str, str]]:
    """Each service's configured consumer group with the topics it reads (the same ``CONTACTS_<SERVICE>_*``
    variables the services read), plus the groups named in ``CONTACTS_MONITOR_GROUPS`` (topics found from their
    commits). Returns (group -> topics or None, group -> service)."""
    prefix = settings.platform.topic_prefix
    groups: dict[str, tuple[str, ...] | None] = {}
    services: dict[str, str] = {}
    for service in CONSUMING_SERVICES:
        configured = settings.service_groups.of(service)
        for topic in SUBSCRIPTIONS[service]:
            group = lane_group(configured, topic)
            groups[group] = tuple(sorted({*(groups.get(group) or ()), topic.qualified(prefix)}))
            services[group] = service
    for group in settings.groups:
        groups.setdefault(group, None)
    return groups, services


def create_app(settings: MonitorSettings) -> FastAPI:
    platform = settings.platform
    configure_logging(level=platform.log_level, fmt=platform.log_format, service=SERVICE)
    groups, services = watched_groups(settings)
    book = LagBook(
        rules=Rules(window=settings.window, stop_after=settings.stop_after_seconds),
        table_size=settings.lookup_table_size,
        services=services,
    )
    poller = OffsetPoller(
        platform.kafka_bootstrap_servers, groups=groups, topic_prefix=platform.topic_prefix,
        timeout=settings.read_timeout_seconds,
        end_only=tuple(dead_letter_topic(service).qualified(platform.topic_prefix) for service in CONSUMING_SERVICES),
    )
    monitor = Monitor(book=book, poller=poller, interval=settings.poll_interval_seconds)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        task = asyncio.create_task(monitor.run(), name="lag-monitor")
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await poller.close()

    app = FastAPI(title="Kagibag Contacts: lag monitor", lifespan=lifespan)
    app.state.monitor = monitor
    app.state.cluster_name = settings.cluster_name
    app.state.registry = monitor_registry(monitor, cluster_name=settings.cluster_name)
    app.include_router(router)
    app.include_router(asyncapi_router())
    return app
