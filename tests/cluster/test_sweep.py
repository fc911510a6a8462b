"""Dead nodes, seen by the others through the database (SQLite and PostgreSQL): many
nodes noticing one silent node at once end its calls once; a node's start ends the
calls of this host's nodes whose process is gone, never those of a running one; a node
taken for dead registers again."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import time

from tests.support.databases import Target
from tests.support.server import Server
from videoassist.appkeys import NODE
from videoassist.cluster.sweep import end_calls_of_gone_nodes
from videoassist.storage import Store
from videoassist.webhooks import Outbox

SWEEPERS = 6


async def test_nodes_sweeping_at_once_end_a_silent_node_s_calls_once(database: Target) -> None:
    now = [1000.0]
    stores = [await Store.open(database, lambda: now[0]) for _ in range(3)]
    try:
        first = stores[0]
        silent = await first.nodes.register("elsewhere", 7, None, "10.0.0.7:1")
        jobs = [(await first.jobs.create(f"Job {i}", None, None)).id for i in range(4)]
        calls = [(await first.calls.place(job, silent, 0.0, spread=False)).call_id
                 for job in jobs]
        sweepers = [await first.nodes.register("here", 100 + i, None, f"127.0.0.1:{i}")
                    for i in range(SWEEPERS)]
        now[0] += 60  # the silent node's heartbeat is a minute old; the sweepers' too
        for node in sweepers:
            await first.nodes.heartbeat(node, 0)

        results = await asyncio.gather(*(
            stores[i % len(stores)].calls.end_of_silent_nodes(now[0] - 30, node)
            for i, node in enumerate(sweepers)))
        claims = [claimed for claimed, _ in results if claimed]
        assert claims == [[silent]], results
        assert sorted(ended for _, done in results for ended in done) == calls
        for call_id in calls:
            assert (await first.calls.get(call_id)).ended_at == now[0]
            job_id = (await first.calls.get(call_id)).job_id
            events = [e for e in await first.jobs.events(job_id) if e["type"] == "call.ended"]
            assert len(events) == 1, events
        # Never a node itself, nor one heard from in time.
        assert await first.calls.end_of_silent_nodes(now[0] + 3600, sweepers[0]) == (
            sorted(sweepers[1:]), [])
        assert (await first.nodes.get(sweepers[0])).stopped_at is None  # type: ignore[union-attr]
    finally:
        for store in stores:
            await store.close()


async def test_a_start_ends_the_calls_of_this_host_s_dead_processes_only(
        database: Target) -> None:
    store = await Store.open(database)
    dead = await asyncio.create_subprocess_exec(sys.executable, "-c", "pass")
    await dead.wait()  # its pid is nobody's now
    alive = await asyncio.create_subprocess_exec(sys.executable, "-c",
                                                 "import time; time.sleep(60)")
    try:
        host = socket.gethostname()
        nodes = {
            "dead": await store.nodes.register(host, dead.pid, None, "127.0.0.1:1"),
            "alive": await store.nodes.register(host, alive.pid, None, "127.0.0.1:2"),
            "mine": await store.nodes.register(host, os.getpid(), None, "127.0.0.1:3"),
            "other host": await store.nodes.register("elsewhere", 1, None, "10.0.0.1:1"),
        }
        calls = {}
        for name, node in nodes.items():
            job = (await store.jobs.create(name, None, None)).id
            calls[name] = (await store.calls.place(job, node, 0.0, spread=False)).call_id
        ended = await end_calls_of_gone_nodes(store, Outbox(store, False, lambda: 0.0),
                                              time.time())
        # The dead process's node, and this very process's (a pid used again).
        assert sorted(ended) == sorted([calls["dead"], calls["mine"]])
        for name in ("alive", "other host"):
            assert (await store.calls.get(calls[name])).ended_at is None
    finally:
        alive.kill()
        await alive.wait()
        await store.close()


async def test_a_node_taken_for_dead_registers_again(server: Server) -> None:
    node = server.app[NODE]
    first = node.id
    await server.store.calls.end_of_silent_nodes(server.clock() + 60, 0)  # as another would
    assert (await server.store.nodes.get(first)).stopped_at is not None  # type: ignore[union-attr]
    async with asyncio.timeout(5):
        while node.id == first:
            await asyncio.sleep(0.05)
    row = await server.store.nodes.get(node.id)
    assert row is not None and row.stopped_at is None and row.address == node.address
