"""The ``contacts`` command as a process, for tests of what an operator types."""

from __future__ import annotations

import asyncio
import os
import sys

from tests.support.isolation import Isolation
from tests.support.processes import CHECKOUT


def cli_env(isolation: Isolation) -> dict[str, str]:
    """The test's isolation, and nothing of the developer's own ``CONTACTS_*`` settings."""
    inherited = {key: value for key, value in os.environ.items() if not key.startswith("CONTACTS_")}
    return {**inherited, **isolation.env()}


async def contacts(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    """``contacts ARGS``: exit code, standard output, standard error."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "ops.cli", *args, cwd=CHECKOUT, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 90)
    return process.returncode or 0, out.decode(), err.decode()
