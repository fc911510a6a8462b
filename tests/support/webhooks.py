"""A real webhook receiver: the handler of an aiohttp app that checks every delivery's
signature the way docs/api.md tells a company's receiver to, and answers as the test
says. The fixture that serves it on 127.0.0.1 port 0 is ``receiver``, in
tests/webhooks/conftest.py."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import Any

from aiohttp import web

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
