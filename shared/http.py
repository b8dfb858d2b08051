"""Operations endpoints every service serves: liveness, readiness and Prometheus-style metrics
(outbox backlog, messages relayed, consumer lag per partition)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import PlainTextResponse
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.lag import consumer_lag
from shared.outbox import backlog
from shared.runtime import Messaging


def operations_router(
    *,
    service: str,
    engine: AsyncEngine,
    group: str,
    consumed_topics: list[str],
    messaging: Messaging | None = None,
    bootstrap_servers: str | None = None,
) -> APIRouter:
    """``messaging``: a service on the old plumbing. Without it, the service's lifespan yields
    ``{"running": shared.lifecycle.Running}`` and the routes read it from the request state."""
    servers = messaging.bootstrap_servers if messaging is not None else bootstrap_servers or ""

    def started(request: Request) -> bool:
        if messaging is not None:
            return messaging.producer is not None
        return getattr(request.state, "running", None) is not None

    async def pending(request: Request) -> tuple[int, int]:
        """(messages stored but not yet published, messages this process published)."""
        if messaging is not None:
            return await backlog(engine), messaging.relay.published if messaging.relay else 0
        running = getattr(request.state, "running", None)
        if running is None:
            return 0, 0
        return await running.relay.backlog(), running.relay.published

    router = APIRouter(tags=["operations"])

    @router.get("/health/live")
    async def live() -> dict[str, str]:
        return {"status": "ok", "service": service}

    @router.get("/health/ready")
    async def ready(request: Request, response: Response) -> dict[str, str]:
        try:
            async with engine.connect() as conn:
                await conn.exec_driver_sql("SELECT 1")
        except Exception as error:  # readiness reports, it does not raise
            response.status_code = 503
            return {"status": "unavailable", "service": service, "reason": f"database: {error}"}
        if not started(request):
            response.status_code = 503
            return {"status": "starting", "service": service}
        return {"status": "ok", "service": service}

    @router.get("/metrics", response_class=PlainTextResponse)
    async def metrics(request: Request) -> str:
        stored, published = await pending(request)
        lines = [
            "# HELP contacts_outbox_backlog Messages written but not yet published.",
            "# TYPE contacts_outbox_backlog gauge",
            f'contacts_outbox_backlog{{service="{service}"}} {stored}',
            "# HELP contacts_outbox_published_total Messages published by this process's relay.",
            "# TYPE contacts_outbox_published_total counter",
            f'contacts_outbox_published_total{{service="{service}"}} {published}',
            "# HELP contacts_consumer_lag Messages not yet consumed and committed, per partition.",
            "# TYPE contacts_consumer_lag gauge",
        ]
        if consumed_topics:
            for item in await consumer_lag(servers, group=group, topics=consumed_topics):
                labels = f'service="{service}",group="{item.group}",topic="{item.topic}",partition="{item.partition}"'
                lines.append(f"contacts_consumer_lag{{{labels}}} {item.lag}")
        return "\n".join(lines) + "\n"

    return router
