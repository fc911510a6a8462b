"""A real webhook receiver, an aiohttp app on 127.0.0.1 port 0 that checks every
delivery's signature the way docs/api.md tells a company's receiver to; and servers
a test can stop and start again on the same data directory."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from tests.conftest import Clock, Server
from videoassist.app import create_app
from videoassist.config import Settings
from videoassist.logs import ACCESS_LOGGER, AccessLogger

HANG = -1  # an answer that never comes (until the test ends): the sender times out


@dataclass(frozen=True)
class Received:
    headers: dict[str, str]
    body: bytes
    verified: bool

    @property
    def json(self) -> dict[str, Any]:
        value: dict[str, Any] = json.loads(self.body)
        return value


class Receiver:
    def __init__(self) -> None:
        self.secret = b""
        self.url = ""
        self.received: list[Received] = []
        self.answers: list[int] = []  # statuses for the next requests, then 200
        self.statuses: list[int] = []
        self.release = asyncio.Event()  # ends every HANG
        self._arrived = asyncio.Event()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        expected = "sha256=" + hmac.new(self.secret, body, hashlib.sha256).hexdigest()
        given = request.headers.get("X-Videoassist-Signature", "")
        verified = bool(self.secret) and hmac.compare_digest(expected, given)
        self.received.append(Received(dict(request.headers), body, verified))
        status = self.answers.pop(0) if self.answers else 200
        if not verified:
            status = 401
        self.statuses.append(status)
        self._arrived.set()
        if status == HANG:
            async with asyncio.timeout(30):
                await self.release.wait()
            status = 200
        if 300 <= status < 400:
            return web.Response(status=status, headers={"Location": "http://127.0.0.1:9/"})
        return web.json_response({}, status=status)

    async def wait_for(self, count: int, timeout: float = 5.0) -> list[Received]:
        """Until ``count`` requests have arrived, bounded in time."""
        async with asyncio.timeout(timeout):
            while len(self.received) < count:
                self._arrived.clear()
                await self._arrived.wait()
        return self.received

    def events(self, type_: str) -> list[dict[str, Any]]:
        """The bodies of the verified deliveries of one type, once per delivery id."""
        seen: dict[str, dict[str, Any]] = {}
        for r in self.received:
            if r.verified and r.json["type"] == type_:
                seen.setdefault(r.json["id"], r.json)
        return list(seen.values())


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


class Servers:
    """Real servers (as ``server_factory`` starts them) that can be stopped mid-test."""

    def __init__(self, tmp_path: Path, clock: Clock) -> None:
        self._tmp_path = tmp_path
        self._clock = clock
        self._running: dict[int, tuple[web.AppRunner, aiohttp.ClientSession]] = {}

    async def start(self, **overrides: Any) -> Server:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        values: dict[str, Any] = {"data_dir": self._tmp_path / "data", "host": "127.0.0.1",
                                  "port": port, "ws_heartbeat_s": 5.0}
        values.update(overrides)
        settings = Settings(**values)
        app = create_app(settings, self._clock)
        runner = web.AppRunner(app, access_log=logging.getLogger(ACCESS_LOGGER),
                               access_log_class=AccessLogger, shutdown_timeout=2.0)
        await runner.setup()
        await web.SockSite(runner, sock).start()
        http = aiohttp.ClientSession()
        self._running[id(app)] = (runner, http)
        return Server(f"http://127.0.0.1:{port}", settings, app, self._clock, http)

    async def stop(self, server: Server) -> None:
        """Shut the server down as SIGTERM would: shutdown, then cleanup contexts."""
        runner, http = self._running.pop(id(server.app))
        await http.close()
        await runner.cleanup()

    async def stop_all(self) -> None:
        for runner, http in self._running.values():
            await http.close()
            await runner.cleanup()
        self._running.clear()


@pytest.fixture
async def servers(tmp_path: Path, clock: Clock) -> AsyncIterator[Servers]:
    running = Servers(tmp_path, clock)
    yield running
    await running.stop_all()
