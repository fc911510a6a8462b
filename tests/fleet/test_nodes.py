"""Nodes coming and going under a fleet's calls: two starting at once on an empty
database migrate it once; restarting one leaves another's calls alone; one lost
mid-call (stopped first, as a machine cut off, then killed) has its call ended once by
the others after the node timeout, and its clients rejoin a new call on a live node;
one draining keeps its call, lets newcomers into it, takes no new call and exits when
it ends, and is started again (a rolling upgrade's step). The tests share the
package's fleet (its ``VIDEOASSIST_NODE_TIMEOUT_S`` is ``fleet.NODE_TIMEOUT_S``) and
leave it whole: a node they stop or kill is started again before they end."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from pathlib import Path
from typing import Any

import aiohttp

from tests.support.databases import Cluster
from tests.support.fleet import NODE_TIMEOUT_S, Fleet, client
from tests.support.peers import MediaClient
from tests.support.server import Server, leave, receive
from videoassist.storage.db import POSTGRESQL, migrations

A, B, C = 0, 1, 2
# From a node's death to media flowing again in a new call: the node timeout, then a
# heartbeat (1 s) for a live node's sweep to see it, rejoining and a new peer
# connection, all in the 7 s this bound left them with the timeout at 3 s.
RESUME_S = NODE_TIMEOUT_S + 10.0


def test_two_nodes_starting_on_an_empty_database_apply_each_migration_once(
        tmp_path: Path, postgresql_cluster: Cluster) -> None:
    fleet = Fleet.create(tmp_path, postgresql_cluster, size=2, migrated=False)
    try:
        for index in (A, B):
            fleet.launch(index)  # both at once, neither waiting for the other
        for index in (A, B):
            fleet.wait_serving(index)
        applied = [line.split()[-1] for index in (A, B)
                   for line in fleet.node(index).lines if line.startswith("applied migration")]
        names = [name for _, name, _ in migrations(POSTGRESQL)]
        assert sorted(applied) == sorted(names), fleet.output()
        rows = asyncio.run(fleet.query("SELECT version, name FROM schema_migrations"
                                       " ORDER BY version"))
        assert [name for _, name in rows] == names
        # One first admin, made by whichever got there first; each prints a link to it.
        assert asyncio.run(fleet.query("SELECT username FROM users")) == [("admin",)]
        for index in (A, B):
            assert "Open this one-time link to set the admin password" in \
                fleet.node(index).output
    finally:
        fleet.stop()


async def media_both_ways(one: MediaClient, other: MediaClient, frames: int = 10,
                          timeout: float = 10) -> None:
    """Both receive ``frames`` more video frames from each other than they had."""
    async def more(peer: MediaClient, of: MediaClient) -> None:
        before = peer.remote(of.participant_id)
        await peer.wait_remote(of.participant_id, "video",
                               frames=(before.frames if before else 0) + frames,
                               timeout=timeout)
    await asyncio.gather(more(one, other), more(other, one))


async def closed(peer: MediaClient, timeout: float = 5) -> int | None:
    """Wait until the server closes the client's socket; its close code."""
    assert peer.ws is not None
    async with asyncio.timeout(timeout):
        while not peer.ws.closed:
            await asyncio.sleep(0.02)
    return peer.ws.close_code


async def rejoin(remote: Server, token: str, job: int | None, deadline: float) -> MediaClient:
    """A new client (a fresh peer connection) joining until it is let in, as the browser
    client does after a lost call: each refusal (``call_lost`` while the dead node is not
    yet taken for dead) is followed by another try."""
    while True:
        peer = MediaClient(remote, token, job)
        try:
            return await peer.start()
        except (AssertionError, aiohttp.ClientError, TimeoutError) as exc:
            # join_call asserts a "joined" answer: anything else is a refusal to retry.
            await peer.close()
            assert time.monotonic() < deadline, f"not let in before the deadline: {exc}"
            await asyncio.sleep(0.3)


async def test_restarting_a_leaves_b_s_call_and_killing_b_moves_its_call_once(
        fleet: Fleet) -> None:
    async with client() as http:
        b, c, proxy = fleet.on(B, http), fleet.on(C, http), fleet.through(http)
        staff_token = await proxy.sign_in("bob")
        job = await proxy.job(staff_token, "Boiler makes a noise")
        customer_token = await proxy.participant(staff_token, job)
        await fleet.idle()  # so that the call goes on B, joined through
        expert = await MediaClient(b, staff_token, job).start()
        customer = await MediaClient(c, customer_token).start()  # carried by C to B
        peers = [expert, customer]
        try:
            assert await fleet.holder(job) == B
            [(call_id, _)] = await fleet.calls(job)
            await media_both_ways(expert, customer)

            # A restarts, as in an upgrade: its start ends nothing of B's.
            old_a = await fleet.node_id(A)
            assert await asyncio.to_thread(fleet.node(A).stop, 10) == 0
            fleet.launch(A)
            await asyncio.to_thread(fleet.wait_serving, A)
            assert await fleet.node_id(A) != old_a
            assert await fleet.calls(job) == [(call_id, None)]
            await media_both_ways(expert, customer)

            # B is lost mid-call, as a machine cut off: it stops, its sockets stay open.
            fleet.node(B).proc.send_signal(signal.SIGSTOP)
            lost = time.monotonic()
            deadline = lost + RESUME_S
            # After the node timeout the live nodes take B for dead and end its call; C
            # closes the connection it carries there (nothing else could: B is silent).
            assert await closed(customer, timeout=RESUME_S) == 1011  # call_lost
            assert (await fleet.calls(job))[0][1] is not None
            await asyncio.to_thread(fleet.kill, B)  # then it is gone for good
            await closed(expert)  # the socket on B itself drops
            for peer in peers:
                await peer.close()
            expert, customer = peers[:] = await asyncio.gather(
                rejoin(proxy, staff_token, job, deadline),
                rejoin(proxy, customer_token, None, deadline))
            await media_both_ways(expert, customer, frames=5,
                                  timeout=deadline - time.monotonic())
            new_call = (await fleet.calls(job))[-1]
            assert new_call[1] is None and await fleet.holder(job) in (A, C)

            # B comes back: its start ends nothing but what its own dead process left.
            fleet.launch(B)
            await asyncio.to_thread(fleet.wait_serving, B)
            assert (await fleet.calls(job))[-1] == new_call
            await media_both_ways(expert, customer, frames=5)
        finally:
            for peer in peers:
                await peer.close()

    calls = await fleet.calls(job)
    assert calls[0][0] == call_id and calls[0][1] is not None and len(calls) == 2, calls
    assert await fleet.query("SELECT count(*) FROM events WHERE call_id = ?"
                             " AND type = 'call.ended'", call_id) == [(1,)]
    told = [json.loads(bytes(body))["data"]["call"]["id"] for (body,) in await fleet.query(
        "SELECT body FROM webhook_deliveries WHERE type = 'call.ended' AND job_id = ?", job)]
    assert told.count(call_id) == 1, told
    # One of the live nodes took B for dead; B's row is marked stopped.
    log = fleet.output()
    assert log.count(f"not heard from for {NODE_TIMEOUT_S} s taken for dead") + log.count(
        "was held by a node not heard from: ended") >= 1, log


async def join(remote: Server, token: str, job: int | None
               ) -> tuple[aiohttp.ClientWebSocketResponse, dict[str, Any]]:
    ws = await remote.ws()
    await ws.send_json({"type": "auth", "token": token} | ({} if job is None else {"job": job}))
    return ws, await receive(ws, timeout=10)


async def test_a_draining_node_keeps_its_call_admits_a_newcomer_takes_no_new_call_and_exits(
        fleet: Fleet) -> None:
    async with client() as http:
        a, b, c = fleet.on(A, http), fleet.on(B, http), fleet.on(C, http)
        staff_token = await a.sign_in("bob")
        job = await a.job(staff_token, "Boiler makes a noise")
        other = await a.job(staff_token, "Radiator cold")
        customer_token = await a.participant(staff_token, job)
        newcomer_token = await a.participant(staff_token, job)  # redeemed, not joined yet
        other_token = await a.participant(staff_token, other)
        await fleet.idle()  # so that the call goes on B, joined through
        expert = await MediaClient(b, staff_token, job).start()
        customer = await MediaClient(b, customer_token).start()
        peers = [expert, customer]
        try:
            assert await fleet.holder(job) == B
            await media_both_ways(expert, customer)

            fleet.node(B).proc.send_signal(signal.SIGTERM)
            async with asyncio.timeout(5):
                while (await b.request("GET", "/readyz"))[0] != 503:
                    await asyncio.sleep(0.05)
            [(draining,)] = await fleet.query("SELECT draining FROM nodes WHERE id = ?",
                                              await fleet.node_id(B))
            assert draining

            # Its call goes on, and takes a newcomer, carried to it through A.
            newcomer = await MediaClient(a, newcomer_token).start()
            peers.append(newcomer)
            await newcomer.wait_remote(expert.participant_id, "video", frames=10)
            await media_both_ways(expert, customer)
            assert [ended for _, ended in await fleet.calls(job)] == [None]

            # No new call on it: refused there; through C, placed elsewhere.
            ws, refused = await join(b, other_token, None)
            assert refused["code"] == "draining", refused
            await ws.close()
            ws, joined = await join(c, other_token, None)
            assert joined["type"] == "joined", joined
            assert await fleet.holder(other) in (A, C)
            await leave(ws)
            assert fleet.node(B).proc.poll() is None
        finally:
            for peer in peers:
                await peer.close()
    # Its last call over, it exits 0.
    assert await asyncio.to_thread(fleet.node(B).proc.wait, 15) == 0

    # The rolling upgrade's next step: B starts again and takes calls.
    fleet.launch(B)
    await asyncio.to_thread(fleet.wait_serving, B)
    async with client() as http:
        b = fleet.on(B, http)
        ws, joined = await join(b, await b.sign_in("bob"), job)
        assert joined["type"] == "joined" and await fleet.holder(job) == B
        await leave(ws)
