"""Signalling messages on PostgreSQL: while the database's notifications reach the
server, a message is checked against what the hub's watcher last read, not read from
the database, and a change made by another process still closes the connection at
once (the poll switched off). Without them: ``test_message_checks.py``. Real server,
real PostgreSQL; the reads are counted around the store."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from tests.support.server import Server, ServerFactory, receive
from videoassist.actors import CLI
from videoassist.appkeys import HUB
from videoassist.domain import accounts
from videoassist.storage import Store

pytestmark = pytest.mark.parametrize("server_backend", ["postgresql"])

POLL_OFF = 3600.0
PINGS = 20


def counted(server: Server) -> dict[str, int]:
    """Count the reads a message's check would make (session versions, links)."""
    reads = {"session_versions": 0, "invites": 0}

    def wrap(name: str, read: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        async def counting(*args: Any) -> Any:
            reads[name] += 1
            return await read(*args)
        return counting

    store = server.store
    store.users.session_versions = wrap(  # type: ignore[method-assign]
        "session_versions", store.users.session_versions)
    store.invites.get = wrap("invites", store.invites.get)  # type: ignore[method-assign]
    return reads


async def notified(server: Server) -> None:
    async with asyncio.timeout(5):
        while not server.app[HUB].watch.notified:
            await asyncio.sleep(0.02)


async def test_while_notified_messages_are_not_read_and_a_disable_elsewhere_closes_at_once(
        server_factory: ServerFactory) -> None:
    server = await server_factory(revocation_poll_s=POLL_OFF)
    user, token = await server.staff("technician")
    job_id = await server.job(token)
    staff_ws, _ = await server.join_call(token, job_id)
    customer_ws, _ = await server.join_call(await server.participant(token, job_id))
    await notified(server)
    reads = counted(server)
    for ws in (staff_ws, customer_ws):
        for _ in range(PINGS):
            await ws.send_json({"type": "ping"})
        for _ in range(PINGS):
            assert await receive(ws, skip=("participant.joined",)) == {"type": "pong"}
    assert reads == {"session_versions": 0, "invites": 0}

    # Another process (the CLI, another node) disables the user, and withdraws the
    # customer's link with it.
    url = server.settings.database_url
    assert url is not None
    other = await Store.open(url.reveal())
    try:
        loop = asyncio.get_running_loop()
        await accounts.disable_user(other, user, CLI, None)  # as the CLI does
        since = loop.time()
        error = await receive(staff_ws, timeout=1.0)
        assert error["code"] == "account_disabled"
        error = await receive(customer_ws, skip=("participant.left",), timeout=1.0)
        assert error["code"] == "link_revoked"
        assert loop.time() - since < 1.0
    finally:
        await other.close()
