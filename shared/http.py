"""Operations endpoints every service serves: liveness (no consumer loop stuck), readiness (database and broker
reachable, consumer groups joined), Prometheus metrics (``shared.metrics``, rendered by prometheus-client) and the
system's AsyncAPI document."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog
from aiokafka.client import AIOKafkaClient
from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from shared import metrics
from shared.asyncapi import document_html, document_json, document_yaml
from shared.consumer import not_joined, stuck

log = structlog.get_logger(__name__)

CHECK_TIMEOUT_SECONDS = 2.0
BROKER_CHECK_TTL_SECONDS = 5.0


@dataclass
class BrokerCheck:
    """Whether the broker answers a metadata request (a client's bootstrap), at most once per ``ttl`` seconds:
    readiness probes every few seconds from several places must not each open a connection."""

    bootstrap_servers: str
    ttl: float = BROKER_CHECK_TTL_SECONDS
    timeout: float = CHECK_TIMEOUT_SECONDS
    _checked_at: float = float("-inf")
    _error: str | None = None
    _lock: asyncio.Lock | None = None

    async def error(self) -> str | None:
        """None when reachable, else why not."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if time.monotonic() - self._checked_at >= self.ttl:
                self._error = await self._check()
                self._checked_at = time.monotonic()
            return self._error

    async def _check(self) -> str | None:
        client = AIOKafkaClient(bootstrap_servers=self.bootstrap_servers, request_timeout_ms=int(self.timeout * 1000))
        try:
            await asyncio.wait_for(client.bootstrap(), self.timeout)
            return None
        except Exception as error:
            return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
        finally:
            await client.close()


async def database_error(engine: AsyncEngine) -> str | None:
    """None when the database answers ``SELECT 1`` within the check timeout, else why not."""
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_SECONDS), engine.connect() as conn:
            await conn.exec_driver_sql("SELECT 1")
        return None
    except Exception as error:  # readiness reports, it does not raise
        return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


async def oldest_unpublished_age(engine: AsyncEngine) -> float:
    """Age in seconds of the oldest row waiting in the service's outbox (``outbox_batches``, or the older
    ``outbox``), 0 when it is empty. Stores relayed by a position cursor (identity's event store) have no age here:
    their backlog counts in ``contacts_outbox_backlog``."""
    async with engine.connect() as conn:
        for table in ("outbox_batches", "outbox"):
            if await conn.scalar(text("SELECT to_regclass(:t) IS NOT NULL"), {"t": table}):
                age = await conn.scalar(
                    text(f"SELECT coalesce(extract(epoch FROM now() - min(created_at)), 0) FROM {table}")
                )
                return float(age or 0)
    return 0.0


def asyncapi_router() -> APIRouter:
    """``/asyncapi``: the HTML view for a browser, JSON otherwise; ``/asyncapi.json``, ``/asyncapi.yaml``,
    ``/asyncapi.html`` explicitly."""
    router = APIRouter(tags=["asyncapi"])

    @router.get("/asyncapi", response_model=None)
    async def asyncapi(request: Request) -> Response:
        if "text/html" in request.headers.get("accept", ""):
            return HTMLResponse(document_html())
        return Response(document_json(), media_type="application/json")

    @router.get("/asyncapi.json")
    async def asyncapi_json() -> Response:
        return Response(document_json(), media_type="application/json")

    @router.get("/asyncapi.yaml")
    async def asyncapi_yaml() -> Response:
        return Response(document_yaml(), media_type="application/yaml")

    @router.get("/asyncapi.html", response_class=HTMLResponse)
    async def asyncapi_html() -> HTMLResponse:
        return HTMLResponse(document_html())

    return router


def operations_router(
    *,
    service: str,
    engine: AsyncEngine,
    group: str,
    consumed_topics: list[str],
    bootstrap_servers: str,
    details: Callable[[], Awaitable[dict[str, Any]]] | None = None,
) -> APIRouter:
    """Health, metrics and AsyncAPI routes of ``service``, whose lifespan yields ``{"running":
    shared.lifecycle.Running}`` (the routes read it from the request state). ``group`` and ``consumed_topics`` are
    reported by readiness; their lag is the lag monitor's job (``services.monitor``), which keeps reporting it when
    this service is down. ``details``: what else a ready service reports about itself (such as work that is stuck,
    and why), merged into the readiness answer."""
    broker = BrokerCheck(bootstrap_servers)

    def started(request: Request) -> bool:
        return getattr(request.state, "running", None) is not None

    async def pending(request: Request) -> int | None:
        """Messages stored but not yet published; None before start."""
        running = getattr(request.state, "running", None)
        if running is None:
            return None
        return int(await running.relay.backlog())

    router = APIRouter(tags=["operations"])

    @router.get("/health/live")
    async def live(request: Request, response: Response) -> dict[str, str]:
        """The process serves requests and no consumer loop has gone without polling for longer than
        ``CONTACTS_CONSUMER_STUCK_SECONDS`` (one batch that never ends: a restart frees it). Dependencies are not
        checked, so a slow database or broker never restarts the service."""
        running = getattr(request.state, "running", None)
        problem = stuck(running.consumers, now=time.monotonic(), limit=running.stuck_after_seconds) if running else None
        if problem:
            response.status_code = 503
            log.error("health.consumer_stuck", reason=problem)
            return {"status": "stuck", "service": service, "reason": problem}
        return {"status": "ok", "service": service}

    @router.get("/health/ready")
    async def ready(request: Request, response: Response) -> dict[str, Any]:
        """Ready when the service has started, the database answers ``SELECT 1`` and the broker a metadata
        request, within 2 s each (the broker's answer is kept 5 s), and every consumer has joined its group (its
        partitions, possibly none, assigned)."""
        if not started(request):
            response.status_code = 503
            return {"status": "starting", "service": service}
        consumers = request.state.running.consumers
        database, kafka = await asyncio.gather(database_error(engine), broker.error())
        if database or kafka:
            response.status_code = 503
            reason = "; ".join(f"{name}: {error}" for name, error in (("database", database), ("broker", kafka))
                               if error)
            return {"status": "unavailable", "service": service, "reason": reason}
        if joining := not_joined(consumers):
            response.status_code = 503
            return {"status": "starting", "service": service, "reason": joining}
        extra = await details() if details is not None else {}
        now = time.monotonic()
        return {"status": "ok", "service": service, "group": group, "topics": consumed_topics,
                "consumers": [consumer.describe(now) for consumer in consumers], **extra}

    @router.get("/metrics")
    async def prometheus_metrics(request: Request) -> Response:
        try:
            async with asyncio.timeout(CHECK_TIMEOUT_SECONDS):
                state = await pending(request)
                age = await oldest_unpublished_age(engine)
            if state is not None:
                metrics.outbox_state(service, backlog=state, oldest_age_seconds=age)
        except Exception as error:  # the other metrics are still worth serving
            log.warning("metrics.outbox_unreadable", error=str(error) or type(error).__name__)
        return Response(metrics.render(), media_type=metrics.CONTENT_TYPE)

    router.include_router(asyncapi_router())
    return router


COMMON_WEB_DIR = Path(__file__).parent / "web"
"""The scripts every screen shares (``client.js``)."""


def mount_screen(app: FastAPI, directory: Path) -> None:
    """A service's screen: its static files at ``/app/``, the scripts every screen shares at ``/app/common/``."""
    app.mount("/app/common", StaticFiles(directory=COMMON_WEB_DIR), name="common-web")
    app.mount("/app", StaticFiles(directory=directory, html=True), name="web")
