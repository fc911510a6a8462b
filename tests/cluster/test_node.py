"""A node's own housekeeping, on the in-process server (one node): its calls that the
database says ended elsewhere are closed, calls placed on it that nobody joined are
ended, and it is registered, heartbeats and is marked stopped."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.support.databases import ServerDatabases
from tests.support.server import Clock, Server, Servers, receive, two_parties
from videoassist.appkeys import NODE
from videoassist.cluster import node as node_module
from videoassist.signalling import watch
from videoassist.signalling.hub import UNCLAIMED_S
from videoassist.storage import Store

# What the node and the hub wait between their rounds, shortened here: the tests wait
# on what a round does (a heartbeat written, a call ended), and would otherwise sit out
# a whole period, 1 s and 5 s, each time.
HEARTBEAT_S = 0.2
UNCLAIMED_CHECK_S = 0.5


@pytest.fixture(autouse=True)
def quick_rounds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(node_module, "HEARTBEAT_S", HEARTBEAT_S)
    monkeypatch.setattr(watch, "UNCLAIMED_CHECK_S", UNCLAIMED_CHECK_S)


async def test_a_call_ended_by_another_node_is_closed_here_with_call_lost(
        server: Server) -> None:
    staff_token, customer_token, job_id = await two_parties(server)
    expert, joined = await server.join_call(staff_token, job_id)
    customer, _ = await server.join_call(customer_token)
    await receive(expert)  # participant.joined
    # What a node that took this one for dead does: the call ends in the database.
    await server.store.calls.end(joined["call"]["id"])
    for ws in (expert, customer):
        error = await receive(ws, timeout=2)
        assert (error["type"], error["code"]) == ("error", "call_lost"), error
        closing = await ws.receive(timeout=2)
        assert (ws.close_code, closing.extra) == (1011, "call_lost")


async def test_a_call_placed_here_that_nobody_joins_is_ended(server: Server) -> None:
    _, token = await server.staff()
    job_id = await server.job(token)
    node = server.app[NODE]
    placed = await server.store.calls.place(job_id, node.id, node.heard_after(),
                                            spread=False)
    assert (placed.node_id, placed.started) == (node.id, True)
    server.clock.advance(UNCLAIMED_S + 1)
    async with asyncio.timeout(UNCLAIMED_CHECK_S + 3):
        while await server.store.calls.in_progress(job_id) is not None:
            await asyncio.sleep(0.1)
    # The job's next participant gets a new call, here.
    ws, joined = await server.join_call(token, job_id)
    assert joined["call"]["id"] != placed.call_id
    await ws.close()


async def test_the_node_is_registered_heartbeats_and_is_stopped(
        tmp_path: Path, clock: Clock, server_databases: ServerDatabases) -> None:
    servers = Servers(tmp_path, clock, server_databases)
    server = await servers.start()
    node = server.app[NODE]
    row = await server.store.nodes.get(node.id)
    assert row is not None and row.worker is None and row.address == node.address
    assert row.stopped_at is None and not row.draining
    first = row.heartbeat_at
    server.clock.advance(5)
    async with asyncio.timeout(3):
        while (again := await server.store.nodes.get(node.id)) is not None \
                and again.heartbeat_at < first + 5:
            await asyncio.sleep(0.05)
    assert again is not None and again.heartbeat_at >= first + 5
    assert [n.id for n in await server.store.nodes.live(node.heard_after())] == [node.id]
    store = await Store.open(server.settings.database)
    try:
        await servers.stop(server)
        row = await store.nodes.get(node.id)
        assert row is not None and row.stopped_at is not None
        assert await store.nodes.live(0.0) == []
    finally:
        await store.close()
        await servers.stop_all()
