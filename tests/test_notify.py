"""The notify webhook, received by a real aiohttp server."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from tests.support.server import ServerFactory
from videoassist import notify


class Receiver:
    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.statuses: list[int] = []
        self.answers: list[int] = []
        self.event = asyncio.Event()
        self.redirect_to: str | None = None  # answer every POST with a 307 to this

    async def handle(self, request: web.Request) -> web.Response:
        self.received.append(await request.json())
        if self.redirect_to is not None:
            self.event.set()
            raise web.HTTPTemporaryRedirect(self.redirect_to)
        status = self.answers.pop(0) if self.answers else 200
        self.statuses.append(status)
        self.event.set()
        return web.json_response({}, status=status)


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[Receiver, str]]:
    target = Receiver()
    app = web.Application()
    app.router.add_post("/sms", target.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    await web.SockSite(runner, sock).start()
    yield target, f"http://127.0.0.1:{sock.getsockname()[1]}/sms"
    await runner.cleanup()


async def _wait_for(target: Receiver, count: int) -> None:
    async with asyncio.timeout(5):
        while len(target.received) < count:
            target.event.clear()
            await target.event.wait()


async def test_an_invite_with_a_recipient_reaches_the_gateway(
    server_factory: ServerFactory, receiver: tuple[Receiver, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(notify, "RETRY_DELAYS_S", (0.05, 0.05))
    target, url = receiver
    server = await server_factory(notify_url=url, company_name="Acme Heating")
    _, token = await server.staff("expert")
    job_id = await server.job(token, "Boiler pressure drops")
    target.answers = [500]  # the gateway fails once; the server retries
    status, body, _ = await server.request(
        "POST", f"/api/jobs/{job_id}/invites", token=token,
        json={"role": "customer", "to": "+44 7700 900123"})
    assert status == 201
    assert body["notified"] is True
    await _wait_for(target, 2)
    assert target.statuses == [500, 200]
    assert target.received[0] == target.received[1]
    message = target.received[1]
    assert message["to"] == "+44 7700 900123"
    assert message["url"] == body["url"]
    assert "Acme Heating" in message["text"]
    assert "Boiler pressure drops" in message["text"]


async def test_without_a_webhook_nothing_is_sent(server_factory: ServerFactory) -> None:
    server = await server_factory()
    _, token = await server.staff("expert")
    job_id = await server.job(token)
    status, body, _ = await server.request(
        "POST", f"/api/jobs/{job_id}/invites", token=token,
        json={"role": "customer", "to": "someone@example.com"})
    assert (status, body["notified"]) == (201, False)


async def test_a_redirect_does_not_take_the_link_to_another_host(
    server_factory: ServerFactory, receiver: tuple[Receiver, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Issue 20 #10: the gateway (or whoever answers at its URL) redirecting with 307
    had the server POST the live join link to another host. Now a redirect is a failed
    attempt, retried at the configured URL only."""
    monkeypatch.setattr(notify, "RETRY_DELAYS_S", (0.05, 0.05))
    target, url = receiver
    elsewhere = Receiver()
    app = web.Application()
    app.router.add_post("/stolen", elsewhere.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    await web.SockSite(runner, sock).start()
    target.redirect_to = f"http://127.0.0.1:{sock.getsockname()[1]}/stolen"
    try:
        server = await server_factory(notify_url=url)
        _, token = await server.staff("expert")
        job_id = await server.job(token)
        status, _, _ = await server.request(
            "POST", f"/api/jobs/{job_id}/invites", token=token,
            json={"role": "customer", "to": "+44 7700 900123"})
        assert status == 201
        async with asyncio.timeout(10):  # the first attempt and both retries, or a theft
            while len(target.received) < 3 and not elsewhere.received:
                await asyncio.sleep(0.02)
        await asyncio.sleep(0.3)  # time for a redirected POST to land, if one were sent
        assert elsewhere.received == []
        assert len(target.received) == 3
    finally:
        await runner.cleanup()
