"""Fixtures of the webhook tests: a real webhook receiver, an aiohttp app on 127.0.0.1
port 0 (``tests/support/webhooks.py``). Servers a test can stop and start again on the
same data directory are ``servers`` (tests/conftest.py)."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from tests.support.webhooks import Receiver


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    target = Receiver()
    app = web.Application()
    app.router.add_post("/hooks/videoassist", target.handle)
    runner = web.AppRunner(app, shutdown_timeout=1.0)
    await runner.setup()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    await web.SockSite(runner, sock).start()
    target.url = f"http://127.0.0.1:{sock.getsockname()[1]}/hooks/videoassist"
    yield target
    target.release.set()
    await runner.cleanup()

