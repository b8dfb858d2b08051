"""A service as a real process (``python -m services.<name>``): start, wait until ready, SIGTERM, SIGKILL."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest

from ops.local_broker import LOOPBACK
from tests.support.isolation import Isolation
from tests.support.ports import free_port

CHECKOUT = Path(__file__).resolve().parents[2]
SERVICE_PROCESSES = pytest.StashKey[dict[str, "ServiceProcess"]]()
"""A test's service processes by name, stashed on its item: a failed test's report ends with their log tails
(``tests/conftest.py``)."""


class ServiceFailed(AssertionError):
    """The process exited or did not become ready in time; the message ends with its log tail."""


class ServiceProcess:
    """One service process. Its output (stdout and stderr) is appended to ``log_path`` across restarts."""

    def __init__(self, service: str, *, env: Mapping[str, str], base_url: str, log_path: Path) -> None:
        self.service = service
        self.base_url = base_url
        self.log_path = log_path
        # inherited CONTACTS_* variables would leak a developer's settings into the test
        inherited = {key: value for key, value in os.environ.items() if not key.startswith("CONTACTS_")}
        self._env = {**inherited, **env, "PYTHONUNBUFFERED": "1"}
        self._process: asyncio.subprocess.Process | None = None
        self.starts = 0

    @classmethod
    def for_isolation(
        cls, isolation: Isolation, service: str, *, log_dir: Path, name: str | None = None
    ) -> ServiceProcess:
        """``service`` configured by ``isolation.env()``, logging to ``<log_dir>/<name>.log``. ``name`` (other
        than the service's own) makes another instance of it, in the same consumer groups and schema, on an HTTP
        port of its own."""
        name = name or service
        env = isolation.env()
        base_url = isolation.base_url(service)
        if name != service:
            port = free_port()
            env[f"CONTACTS_{service.upper()}_HTTP_PORT"] = str(port)
            base_url = f"http://{LOOPBACK}:{port}"
        return cls(service, env=env, base_url=base_url, log_path=log_dir / f"{name}.log")

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def returncode(self) -> int | None:
        return self._process.returncode if self._process is not None else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.returncode is None

    def log_size(self) -> int:
        """Bytes in the log so far: pass it as ``since`` to read only what comes after."""
        with contextlib.suppress(OSError):
            return self.log_path.stat().st_size
        return 0

    def logged(self, event: str, *, since: int = 0, until: int | None = None) -> list[dict[str, Any]]:
        """The JSON log lines of ``event`` (``CONTACTS_LOG_FORMAT=json``) between bytes ``since`` and ``until`` of the
        log (``log_size()`` at two moments)."""
        quoted, found = json.dumps(event).encode(), []
        with contextlib.suppress(OSError), self.log_path.open("rb") as log:
            log.seek(since)
            for line in log:
                since += len(line)
                if until is not None and since > until:
                    break
                if quoted in line and line.startswith(b"{") and line.endswith(b"\n"):  # whole lines only
                    record = json.loads(line)
                    if record.get("event") == event:
                        found.append(record)
        return found

    def non_json_lines(self) -> list[str]:
        """The lines of the log so far that are not one JSON object each (every line a service prints should be);
        the marks this class writes at each start are not the service's."""
        odd = []
        with contextlib.suppress(OSError), self.log_path.open("rb") as log:
            for line in log:
                if line.startswith(b"--- start #"):
                    continue
                try:
                    if isinstance(json.loads(line), dict):
                        continue
                except ValueError:
                    pass
                odd.append(line.decode(errors="replace").rstrip("\n"))
        return odd

    def log_tail(self, lines: int = 40) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return "(no log)"

    async def start(self, *, timeout: float = 60.0) -> None:  # noqa: ASYNC109 - reported in ServiceFailed
        """Spawn the process and wait until ``GET /health/ready`` answers 200. Ready means the consumer groups
        were joined, which takes a service 5-20 s on Tansu (a rebalance per subscriber), hence the minute."""
        if self.running:
            raise RuntimeError(f"{self.service} is already running (pid {self.pid})")
        self.starts += 1
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            log.write(f"--- start #{self.starts} of {self.service} ---\n".encode())
            log.flush()
            self._process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                f"services.{self.service}",
                env=self._env,
                cwd=CHECKOUT,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        await self.wait_ready(timeout=timeout)

    async def wait_ready(self, *, timeout: float = 60.0) -> None:  # noqa: ASYNC109 - reported in ServiceFailed
        deadline = time.monotonic() + timeout
        last = "no answer"
        async with httpx.AsyncClient(timeout=2.0) as client:
            while True:
                if not self.running:
                    raise ServiceFailed(
                        f"{self.service} exited with {self.returncode} before it was ready; "
                        f"log:\n{self.log_tail()}"
                    )
                try:
                    response = await client.get(f"{self.base_url}/health/ready")
                    if response.status_code == 200:
                        return
                    last = f"{response.status_code} {response.text[:200]}"
                except httpx.HTTPError as error:
                    last = repr(error)
                if time.monotonic() > deadline:
                    await self.kill()
                    raise ServiceFailed(
                        f"{self.service} not ready after {timeout} s (last: {last}); log:\n{self.log_tail()}"
                    )
                await asyncio.sleep(0.1)

    async def _exited(self, seconds: float) -> bool:
        if self._process is None:
            return True
        try:
            await asyncio.wait_for(self._process.wait(), seconds)
        except TimeoutError:
            return False
        return True

    async def kill(self) -> int | None:
        """SIGKILL: a crash, with no chance to flush or commit anything."""
        if self._process is not None and self.running:
            self._process.send_signal(signal.SIGKILL)
            await self._exited(10.0)
        return self.returncode

    async def stop(self, *, timeout: float = 15.0) -> int | None:  # noqa: ASYNC109 - then SIGKILL
        """SIGTERM and wait for a graceful exit; SIGKILL if it takes longer than ``timeout`` seconds.
        A graceful exit returns 0 or ``-SIGTERM`` (uvicorn re-raises the signal once it has shut down)."""
        if self._process is None or not self.running:
            return self.returncode
        self._process.send_signal(signal.SIGTERM)
        if not await self._exited(timeout):
            return await self.kill()
        return self.returncode

    async def restart(self, *, timeout: float = 60.0) -> None:  # noqa: ASYNC109 - reported in ServiceFailed
        await self.stop()
        await self.start(timeout=timeout)
