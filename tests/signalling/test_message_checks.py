"""Each signalling message is checked against the sender's right to be in the call
without a database read of its own while what the hub's watcher last read is recent
(``Watch.current``), and read again while it is not (the watcher slow). Without the
database's notifications (SQLite; PostgreSQL with its notification connection
unreachable), a change made elsewhere (the CLI, another process: here a second store
on the same database) refuses the messages that arrive after it while the watcher is
late. Real server, real databases; the reads and the watcher's looks are counted
around the server's store."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest

from tests.support.server import Server, ServerFactory, receive
from videoassist.actors import CLI
from videoassist.appkeys import HUB
from videoassist.config import Secret
from videoassist.domain import accounts
from videoassist.signalling.watch import TRUSTED_LOOK_S
from videoassist.storage import Store

pytestmark = pytest.mark.parametrize("server_backend", ["sqlite", "postgresql"])

PINGS = 200
# Long enough that every look the watcher ends began more than TRUSTED_LOOK_S before:
# the hub is never current, and every message waits for a look.
SLOW_LOOK_S = TRUSTED_LOOK_S + 0.5


def unnotified(server_backend: str) -> dict[str, Any]:
    """Settings for a server the database's notifications never reach."""
    if server_backend == "postgresql":  # a notification connection it cannot open
        return {"database_listen_url": Secret("postgresql://postgres@127.0.0.1:1/nowhere")}
    return {}


def counted(server: Server, reads: dict[str, int], name: str,
            delay_s: float = 0.0) -> None:
    """Count the calls of one of the store's reads (``"users.session_versions"``),
    each made ``delay_s`` slower."""
    table, method = name.split(".")
    repo = getattr(server.store, table)
    read: Callable[..., Awaitable[Any]] = getattr(repo, method)
    reads[name] = 0

    async def counting(*args: Any) -> Any:
        reads[name] += 1
        await asyncio.sleep(delay_s)
        return await read(*args)
    setattr(repo, method, counting)


async def current(server: Server) -> None:
    async with asyncio.timeout(5):
        while not server.app[HUB].watch.current:
            await asyncio.sleep(0.02)


async def pings_answered(ws: aiohttp.ClientWebSocketResponse, count: int,
                         timeout: float = 10.0) -> None:
    for _ in range(count):
        await ws.send_json({"type": "ping"})
    for _ in range(count):
        assert await receive(ws, timeout=timeout,
                             skip=("participant.joined",)) == {"type": "pong"}


async def test_messages_are_checked_without_a_read_each(
        server_factory: ServerFactory, server_backend: str) -> None:
    server = await server_factory(ws_rate_per_s=1000.0, ws_rate_burst=PINGS,
                                  **unnotified(server_backend))
    _, token = await server.staff("technician")
    job_id = await server.job(token)
    staff_ws, _ = await server.join_call(token, job_id)
    customer_ws, _ = await server.join_call(await server.participant(token, job_id))
    await current(server)
    reads: dict[str, int] = {}
    for name in ("users.session_versions", "invites.get", "jobs.closed_among"):
        counted(server, reads, name)
    for ws in (staff_ws, customer_ws):
        await pings_answered(ws, PINGS)
    assert not server.app[HUB].watch.notified
    # Only the watcher reads the staff's session versions, once a look (each look
    # reads the jobs closed, and the links withdrawn among the customers' by another
    # read); no message reads anything.
    assert reads["users.session_versions"] <= reads["jobs.closed_among"] + 1, reads
    assert reads["invites.get"] == 0, reads
    assert reads["users.session_versions"] < PINGS / 4, reads


async def test_while_the_watcher_is_late_messages_are_read_and_a_disable_elsewhere_refuses_them(
        server_factory: ServerFactory, server_backend: str) -> None:
    # The expert's socket is not read for seconds at a time: no heartbeat within that.
    server = await server_factory(ws_heartbeat_s=60.0, **unnotified(server_backend))
    user, token = await server.staff("technician")
    _, other_token = await server.staff("expert")
    job_id = await server.job(other_token)
    staff_ws, _ = await server.join_call(token, job_id)
    expert_ws, _ = await server.join_call(other_token, job_id)
    await receive(staff_ws)  # the expert joined
    reads: dict[str, int] = {}
    counted(server, reads, "jobs.closed_among", delay_s=SLOW_LOOK_S)
    await asyncio.sleep(SLOW_LOOK_S + TRUSTED_LOOK_S)  # the last quick look is too old
    assert not server.app[HUB].watch.current
    counted(server, reads, "users.session_versions")

    # Each message reads the sender's account itself.
    await pings_answered(staff_ws, 10)
    assert reads["users.session_versions"] >= 10, reads

    # The user is disabled elsewhere (as the CLI does); their next message, sent once
    # that is committed and before the watcher has seen it, is refused.
    other = await Store.open(server.settings.database)
    try:
        await accounts.disable_user(other, user, CLI, None)
    finally:
        await other.close()
    await staff_ws.send_json({"type": "chat.message", "text": "after the disable",
                              "client_id": "late"})
    error = await receive(staff_ws)
    assert error["code"] == "account_disabled", error
    # Nothing of it reached the expert, nor the job's record.
    left = await receive(expert_ws)
    assert left["type"] == "participant.left", left
    await pings_answered(expert_ws, 1)
    assert not any(m.text == "after the disable"
                   for m in await server.store.calls.messages_of_job(job_id)), "stored"
