"""Every service runs as ``python -m services.<name>``: ready on /health/ready and a graceful exit on SIGTERM;
the harness restarts and SIGKILLs it (what honcho, compose and the end-to-end tests rely on)."""

from __future__ import annotations

import signal
from pathlib import Path

import httpx
import pytest

from ops.catalog import SERVICES
from tests.support.isolation import Isolation
from tests.support.processes import ServiceProcess

pytestmark = pytest.mark.e2e

# uvicorn re-raises the signal after its graceful shutdown; -9 would mean stop() had to SIGKILL it
GRACEFUL = (0, -signal.SIGTERM)


@pytest.mark.parametrize("service", SERVICES)
async def test_a_service_becomes_ready_and_stops_gracefully_on_sigterm(
    isolation: Isolation, service: str, tmp_path: Path
) -> None:
    isolation.migrate((service,))
    process = ServiceProcess.for_isolation(isolation, service, log_dir=tmp_path)
    try:
        await process.start()
        async with httpx.AsyncClient() as client:
            live = await client.get(f"{process.base_url}/health/live")
        assert live.status_code == 200

        assert await process.stop() in GRACEFUL, process.log_tail()
    finally:
        await process.stop()


async def test_a_service_process_restarts_and_can_be_killed(isolation: Isolation, tmp_path: Path) -> None:
    isolation.migrate(("identity",))
    process = ServiceProcess.for_isolation(isolation, "identity", log_dir=tmp_path)
    try:
        await process.start()
        await process.restart()
        assert (process.starts, process.running) == (2, True)

        assert await process.kill() == -signal.SIGKILL
        assert "--- start #2 of identity ---" in process.log_path.read_text()
    finally:
        await process.stop()
