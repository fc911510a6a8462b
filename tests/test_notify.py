"""The notify webhook, received by a real gateway (an aiohttp app on 127.0.0.1): queued
in the database, sealed there, retried, kept over a restart, and never sent once its
link is no longer live."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import socket
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
from aiohttp import web

from tests.support.databases import raw_fetchall
from tests.support.server import Server, ServerFactory, Servers
from videoassist import keyfiles, notify
from videoassist.storage import Store
from videoassist.storage.records import Delivery, DeliveryAttempt
from videoassist.storage.webhooks import IN_PROGRESS, NOTIFY

PHONE = "+44 7700 900123"


class Gateway:
    """A company's SMS gateway: records what it is sent, answers as the test says."""

    def __init__(self) -> None:
        self.url = ""
        self.received: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.statuses: list[int] = []
        self.answers: list[int] = []  # statuses for the next requests, then 200
        self.hold: asyncio.Event | None = None  # the next answer waits for it
        self.redirect_to: str | None = None  # answer every POST with a 307 to this
        self._arrived = asyncio.Event()

    async def handle(self, request: web.Request) -> web.Response:
        self.received.append(await request.json())
        self.headers.append(dict(request.headers))
        self._arrived.set()
        if self.redirect_to is not None:
            raise web.HTTPTemporaryRedirect(self.redirect_to)
        status = self.answers.pop(0) if self.answers else 200
        hold, self.hold = self.hold, None
        if hold is not None:
            async with asyncio.timeout(10):
                await hold.wait()
        self.statuses.append(status)
        return web.json_response({}, status=status)

    async def wait_for(self, count: int) -> list[dict[str, Any]]:
        async with asyncio.timeout(10):
            while len(self.received) < count:
                self._arrived.clear()
                await self._arrived.wait()
        return self.received


def _bound() -> socket.socket:
    """A socket bound on 127.0.0.1 port 0, not listening yet: connections to its port
    are refused (a gateway that is down), and no one else takes the port meanwhile."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    return sock


async def _serve(target: Gateway, sock: socket.socket | None = None,
                 path: str = "/sms") -> web.AppRunner:
    app = web.Application()
    app.router.add_post(path, target.handle)
    runner = web.AppRunner(app, shutdown_timeout=1.0)
    await runner.setup()
    sock = _bound() if sock is None else sock
    await web.SockSite(runner, sock).start()
    target.url = f"http://127.0.0.1:{sock.getsockname()[1]}{path}"
    return runner


@pytest.fixture
async def gateway() -> AsyncIterator[Gateway]:
    target = Gateway()
    runner = await _serve(target)
    yield target
    await runner.cleanup()


@pytest.fixture
def gateway_down() -> Iterator[socket.socket]:
    """The port of a gateway that is down, kept for it to come up on (``_serve``)."""
    sock = _bound()
    yield sock
    sock.close()


def _fast(monkeypatch: pytest.MonkeyPatch, attempts: int = notify.MAX_ATTEMPTS) -> None:
    """Retries 0.05 to 0.2 s apart, for the servers started after."""
    monkeypatch.setattr(notify, "RETRY_BASE_S", 0.05)
    monkeypatch.setattr(notify, "RETRY_MAX_S", 0.2)
    monkeypatch.setattr(notify, "MAX_ATTEMPTS", attempts)


async def _invite(server: Server, token: str, job_id: int) -> dict[str, Any]:
    status, body, _ = await server.request(
        "POST", f"/api/jobs/{job_id}/invites", token=token,
        json={"role": "customer", "to": PHONE})
    assert status == 201, body
    assert (body["notified"], body["sent_by"]) == (True, "webhook")
    made: dict[str, Any] = body
    return made


async def _notify_log(store: Store,
                      until: Callable[[Delivery, list[DeliveryAttempt]], bool]
                      ) -> tuple[Delivery, list[DeliveryAttempt]]:
    """The notify delivery and its attempts once ``until`` holds, bounded in time."""
    async with asyncio.timeout(10):
        while True:
            [(delivery, log)] = await store.webhooks.recent(channel=NOTIFY)
            if until(delivery, log):
                return delivery, log
            await asyncio.sleep(0.02)  # the worker records an attempt after the answer


def _outcomes(log: list[DeliveryAttempt]) -> list[tuple[int, int | None, str | None]]:
    return [(a.attempt, a.status_code, a.error) for a in log]


async def test_an_invite_with_a_recipient_reaches_the_gateway(
        server_factory: ServerFactory, gateway: Gateway,
        monkeypatch: pytest.MonkeyPatch) -> None:
    _fast(monkeypatch)
    server = await server_factory(notify_url=gateway.url, company_name="Acme Heating")
    _, token = await server.staff("admin")
    job_id = await server.job(token, "Boiler pressure drops")
    gateway.answers = [500]  # the gateway fails once; the server retries
    made = await _invite(server, token, job_id)
    first, second = await gateway.wait_for(2)
    assert first == second
    assert second == {
        "to": PHONE, "url": made["url"],
        "text": "Acme Heating: tap the link to show us the problem with "
                "'Boiler pressure drops' on camera."}
    for headers in gateway.headers:  # JSON, unsigned, as before the queue
        assert headers["Content-Type"] == "application/json"
        assert "X-Videoassist-Signature" not in headers

    delivery, log = await _notify_log(server.store, lambda d, _: d.state == "delivered")
    assert gateway.statuses == [500, 200]
    assert _outcomes(log) == [(1, 500, "HTTP 500"), (2, 200, None)]
    assert (delivery.invite_id, delivery.job_id, delivery.type) == (
        made["id"], job_id, notify.TYPE)
    assert delivery.body == b""  # nothing of the link is kept once it is sent
    # The webhook deliveries' log is the events': no address, no link, in any form.
    status, listed, _ = await server.request("GET", "/api/webhooks/deliveries", token=token)
    assert (status, listed) == (200, {"enabled": False, "deliveries": []})


async def test_without_a_webhook_nothing_is_sent(server_factory: ServerFactory) -> None:
    server = await server_factory()
    _, token = await server.staff("expert")
    job_id = await server.job(token)
    status, body, _ = await server.request(
        "POST", f"/api/jobs/{job_id}/invites", token=token,
        json={"role": "customer", "to": "someone@example.com"})
    assert (status, body["notified"]) == (201, False)
    assert await server.store.webhooks.recent(channel=NOTIFY) == []


async def test_a_redirect_does_not_take_the_link_to_another_host(
        server_factory: ServerFactory, gateway: Gateway,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 20 #10: the gateway (or whoever answers at its URL) redirecting with 307
    had the server POST the live join link to another host. Now a redirect is a failed
    attempt, retried at the configured URL only."""
    _fast(monkeypatch, attempts=3)
    elsewhere = Gateway()
    runner = await _serve(elsewhere, path="/stolen")
    gateway.redirect_to = elsewhere.url
    try:
        server = await server_factory(notify_url=gateway.url)
        _, token = await server.staff("expert")
        job_id = await server.job(token)
        await _invite(server, token, job_id)
        _, log = await _notify_log(server.store, lambda d, _: d.state == "failed")
        assert _outcomes(log) == [(n, 307, "HTTP 307") for n in (1, 2, 3)]
        assert elsewhere.received == []
        assert len(gateway.received) == 3
    finally:
        await runner.cleanup()


async def test_a_link_queued_while_the_gateway_is_down_goes_out_after_a_restart(
        servers: Servers, gateway_down: socket.socket,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing is lost on a restart: the link waits in the database, sealed, and the
    server started again on the same data directory sends it."""
    _fast(monkeypatch, attempts=50)
    settings = {"notify_url": f"http://127.0.0.1:{gateway_down.getsockname()[1]}/sms",
                "company_name": "Acme Heating"}
    first = await servers.start(**settings)
    _, token = await first.staff("expert")
    job_id = await first.job(token, "Boiler pressure drops")
    made = await _invite(first, token, job_id)
    await _notify_log(first.store, lambda _, log: len(log) >= 1 and log[0].error not in (
        None, IN_PROGRESS))
    await servers.stop(first)

    # At rest, the body is sealed: no link, no token, no number, no company in the clear.
    [(body, channel, invite_id)] = await raw_fetchall(
        first.settings.database, "SELECT body, channel, invite_id FROM webhook_deliveries")
    body = bytes(body)
    link_token = made["url"].partition("#")[2]
    assert link_token and len(body) > len(made["url"])
    for clear in (made["url"], link_token, PHONE, "Acme Heating", "Boiler"):
        assert clear.encode() not in body
    assert (channel, invite_id) == ("notify", made["id"])
    # It opens with the key derived from the snapshot key, only in its own row.
    key = notify.sealing_key(keyfiles.snapshot_key(first.settings))
    store = await Store.open(first.settings.database)
    try:
        delivery, log = await _notify_log(store, lambda d, _: d.state == "pending")
        opened = await notify.to_send(store, key, delivery, first.clock())
        assert isinstance(opened, bytes) and json.loads(opened)["url"] == made["url"]
        moved = dataclasses.replace(delivery, uuid=str(uuid.uuid4()))
        assert await notify.to_send(store, key, moved, first.clock()) == notify.UNREADABLE
    finally:
        await store.close()
    assert all(a.error is not None and a.error.startswith(("cannot connect", "interrupted"))
               for a in log), log

    gateway = Gateway()
    runner = await _serve(gateway, gateway_down)  # the gateway is up
    try:
        second = await servers.start(**settings)  # the same data dir and database
        [message] = await gateway.wait_for(1)
        assert (message["to"], message["url"]) == (PHONE, made["url"])
        delivered, log = await _notify_log(second.store,
                                           lambda d, _: d.state == "delivered")
        assert (delivered.uuid, delivered.body) == (delivery.uuid, b"")
        assert _outcomes(log)[-1] == (delivered.attempts, 200, None)
    finally:
        await runner.cleanup()


@pytest.mark.parametrize("ending", ["withdrawn", "expired", "job closed"])
async def test_a_link_no_longer_live_is_never_sent_again(
        server_factory: ServerFactory, gateway: Gateway,
        monkeypatch: pytest.MonkeyPatch, ending: str) -> None:
    """The gateway fails the first attempt; meanwhile the link is withdrawn, expires or
    its job is closed: the retry gives the delivery up without sending it."""
    _fast(monkeypatch)
    server = await server_factory(notify_url=gateway.url)
    _, token = await server.staff("expert")
    job_id = await server.job(token)
    gateway.answers = [500]
    gateway.hold = held = asyncio.Event()  # until the link is no longer live
    made = await _invite(server, token, job_id)
    await gateway.wait_for(1)
    if ending == "withdrawn":
        status, body, _ = await server.request(
            "POST", f"/api/invites/{made['id']}/withdraw", token=token)
        assert status == 200, body
    elif ending == "expired":
        server.clock.advance(made["expires_at"] - server.clock() + 1)
    else:
        status, body, _ = await server.request("POST", f"/api/jobs/{job_id}/close",
                                               token=token)
        assert status == 200, body
    held.set()

    delivery, log = await _notify_log(server.store, lambda d, _: d.state == "failed")
    why = {"withdrawn": notify.WITHDRAWN, "expired": notify.EXPIRED,
           "job closed": notify.CLOSED}[ending]
    assert _outcomes(log) == [(1, 500, "HTTP 500"), (2, None, why)]
    assert len(gateway.received) == 1
    assert delivery.body == b""
