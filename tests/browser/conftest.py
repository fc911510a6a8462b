"""Debian's Chromium driven by Playwright, and ``videoassist serve`` as a real process.

Chromium is ``/usr/bin/chromium`` (``scripts/test`` installs it); never run
``playwright install``. Each test gets its own browser profile in ``tmp_path``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from playwright.async_api import BrowserContext, async_playwright

from tests.support.browser import CHROMIUM, FLAGS, PHONE, STOP_AT_ONCE
from tests.support.process import ServeProcess


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


