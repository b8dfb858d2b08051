"""What every browser test needs: Debian's chromium (never skipped: without it a screen is untested), how long an
action may take, and a full-page screenshot in tests/artifacts when a step fails."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from playwright.async_api import FilePayload, Page

CHROMIUM = Path("/usr/bin/chromium")
"""Debian's chromium: Playwright cannot download its own browser here. ``make test`` installs it."""
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
ACTION_MS = 15_000


def require_chromium() -> None:
    """Fail, never skip: without the browser the screen is untested."""
    assert CHROMIUM.exists(), f"{CHROMIUM} is missing: `make test` installs it (apt-get install -y chromium)"


@contextlib.asynccontextmanager
async def screenshot_on_failure(page: Page, name: str) -> AsyncIterator[None]:
    try:
        yield
    except BaseException:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(Exception):
            await page.screenshot(path=ARTIFACTS / f"{name}.png", full_page=True)
        raise


def csv_payload(name: str, content: bytes) -> FilePayload:
    """A CSV file for ``set_input_files``, from bytes (no file on disk)."""
    return FilePayload(name=name, mimeType="text/csv", buffer=content)


async def save_screenshot(page: Page, directory: Path, name: str) -> Path:
    """A full-page screenshot of the screen as it is now, kept as evidence of what the test saw."""
    path = directory / f"{name}.png"
    await page.screenshot(path=path, full_page=True)
    return path
