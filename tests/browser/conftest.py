"""Debian's Chromium driven by Playwright, and ``videoassist serve`` as a real process.

Chromium is ``/usr/bin/chromium`` (``scripts/test`` installs it); never run
``playwright install``. One Chromium runs for the whole package (``chromium``, started
by the first test that asks): each test gets a new browser context in it
(``browser``), a profile of its own in memory (no cookies, storage, cache or
permissions of another test's), closed at its end with its pages. Starting a Chromium
costs seconds on a loaded machine; a context, a few milliseconds. A test that must read
the profile on disk afterwards, or needs Chromium started with other flags, launches
one of its own with ``playwright``.

Every test of the package runs in the package's event loop (each module's
``pytestmark`` says ``asyncio(loop_scope="package")``): Playwright's objects belong to
the loop they were made in. Async fixtures say so too (``loop_scope="package"``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio
from playwright.async_api import (
    Browser,
    BrowserContext,
    Playwright,
    async_playwright,
    expect,
)

from tests.support.browser import CHROMIUM, FLAGS, PHONE, STOP_AT_ONCE, Served
from tests.support.process import ServeProcess


@pytest.fixture(autouse=True, scope="package")
def patient_expect() -> Iterator[None]:
    """Each ``expect`` waits up to 15 s, not Playwright's 5. What they wait for crosses
    three processes: one page acts, the server relays, another page shows it. A loaded
    2-core machine stalls any of them for seconds now and then (a server's worker that
    ran nothing for 5 s was seen in a run beside two busy loops, a chat line waiting
    with it): these expects check that a thing happens, not how soon. How soon is the
    benchmark's (scripts/bench.py) and the timed tests' own, which say so."""
    expect.set_options(timeout=15_000)
    yield
    expect.set_options(timeout=None)


@pytest_asyncio.fixture(scope="package", loop_scope="package")
async def playwright() -> AsyncIterator[Playwright]:
    """Playwright's driver, started once for the package."""
    async with async_playwright() as driver:
        yield driver


@pytest_asyncio.fixture(scope="package", loop_scope="package")
async def chromium(playwright: Playwright) -> AsyncIterator[Browser]:
    """One Chromium with the fake camera for the package's contexts."""
    browser = await playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                               args=FLAGS)
    try:
        yield browser
    finally:
        await browser.close()


@pytest_asyncio.fixture(loop_scope="package")
async def browser(chromium: Browser) -> AsyncIterator[BrowserContext]:
    """A new context of the package's Chromium (a fresh profile), phone-sized pages."""
    context = await chromium.new_context(viewport=PHONE)
    context.set_default_timeout(10_000)
    try:
        yield context
    finally:
        await context.close()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    """Start ``videoassist serve``: ``served(data_dir, port=..., env=...)`` (default:
    ``tmp_path / "data"``, any free port), without drain, ready when it returns; each
    stopped (TERM, then KILL) at the end of the test if the test did not."""
    started: list[ServeProcess] = []

    def start(data_dir: Path | None = None, *, port: int | None = None,
              env: dict[str, str] | None = None) -> ServeProcess:
        process = ServeProcess(data_dir or tmp_path / "data", port=port,
                               env={**STOP_AT_ONCE, **(env or {})})
        started.append(process)
        process.wait_ready()
        return process

    try:
        yield start
    finally:
        for process in started:
            process.stop()


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[ServeProcess]:
    """``videoassist serve`` on a fresh data dir, without drain; stopped (TERM, then KILL)
    at the end. Not waited for: a test that needs it up calls ``wait_ready``."""
    server = ServeProcess(tmp_path / "data", env=STOP_AT_ONCE)
    try:
        yield server
    finally:
        server.stop()
