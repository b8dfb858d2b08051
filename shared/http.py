"""Operations endpoints every service serves: liveness, readiness and Prometheus-style metrics
(outbox backlog, messages relayed, consumer lag per partition)."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import PlainTextResponse
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.lag import consumer_lag
from shared.outbox import backlog
from shared.runtime import Messaging


def operations_router(
    *, service: str, engine: AsyncEngine, messaging: Messaging, group: str, consumed_topics: list[str]
) -> APIRouter:
    router = APIRouter(tags=["operations"])

    @router.get("/health/live")
    async def live() -> dict[str, str]:
        return {"status": "ok", "service": service}

    @router.get("/health/ready")
    async def ready(response: Response) -> dict[str, str]:
        try:
            async with engine.connect() as conn:
                await conn.exec_driver_sql("SELECT 1")
        except Exception as error:  # readiness reports, it does not raise
            response.status_code = 503
            return {"status": "unavailable", "service": service, "reason": f"database: {error}"}
        if messaging.producer is None:
            response.status_code = 503
            return {"status": "starting", "service": service}
        return {"status": "ok", "service": service}

    @router.get("/metrics", response_class=PlainTextResponse)
    async def metrics() -> str:
        lines = [
            "# HELP contacts_outbox_backlog Messages written but not yet published.",
            "# TYPE contacts_outbox_backlog gauge",
            f'contacts_outbox_backlog{{service="{service}"}} {await backlog(engine)}',
            "# HELP contacts_outbox_published_total Messages published by this process's relay.",
            "# TYPE contacts_outbox_published_total counter",
            f'contacts_outbox_published_total{{service="{service}"}} '
            f"{messaging.relay.published if messaging.relay else 0}",
            "# HELP contacts_consumer_lag Messages not yet consumed and committed, per partition.",
            "# TYPE contacts_consumer_lag gauge",
        ]
        if consumed_topics:
            for item in await consumer_lag(messaging.bootstrap_servers, group=group, topics=consumed_topics):
                labels = f'service="{service}",group="{item.group}",topic="{item.topic}",partition="{item.partition}"'
                lines.append(f"contacts_consumer_lag{{{labels}}} {item.lag}")
        return "\n".join(lines) + "\n"

    return router
