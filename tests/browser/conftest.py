"""Debian's Chromium driven by Playwright, and ``videoassist serve`` as a real process.

Chromium is ``/usr/bin/chromium`` (``scripts/test`` installs it); never run
``playwright install``. Each test gets its own browser profile in ``tmp_path``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from playwright.async_api import BrowserContext, Page, ViewportSize, async_playwright

from tests.test_cli import ServeProcess

CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PHONE: ViewportSize = {"width": 390, "height": 844}
DESKTOP: ViewportSize = {"width": 1280, "height": 800}
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
# The browser tests stop servers with calls still up: no drain, the calls are closed at
# once (1001 server_shutdown) and the process exits 0. Draining is tests/test_serving.py's.
STOP_AT_ONCE = {"VIDEOASSIST_DRAIN_TIMEOUT_S": "0"}


@pytest.fixture
async def browser(tmp_path: Path) -> AsyncIterator[BrowserContext]:
    """A fresh Chromium with a profile of its own, phone-sized pages."""
    async with async_playwright() as playwright:
        context = await playwright.chromium.launch_persistent_context(
            tmp_path / "chromium-profile",
            executable_path=CHROMIUM,
            headless=True,
            args=FLAGS,
            viewport=PHONE,
        )
        context.set_default_timeout(10_000)
        try:
            yield context
        finally:
            await context.close()


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[ServeProcess]:
    """``videoassist serve`` on a fresh data dir, without drain; stopped (TERM, then KILL)
    at the end."""
    server = ServeProcess(tmp_path / "data", env=STOP_AT_ONCE)
    try:
        yield server
    finally:
        server.stop()


async def screenshots(page: Page, name: str) -> None:
    """Save ``test-artifacts/NAME-phone.png`` and ``NAME-desktop.png``; end at phone size."""
    ARTIFACTS.mkdir(exist_ok=True)
    for label, size in (("phone", PHONE), ("desktop", DESKTOP)):
        await page.set_viewport_size(size)
        await page.screenshot(path=ARTIFACTS / f"{name}-{label}.png", full_page=True)
    await page.set_viewport_size(PHONE)
