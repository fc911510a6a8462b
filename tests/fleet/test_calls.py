"""Calls across a fleet: three nodes on one PostgreSQL database behind nginx, real
aiortc clients. A call lives on one node; a participant reaches it through the proxy
whichever node the proxy picks, and through whichever node redeemed their link; two
first joins through two nodes at once make one call; a snapshot taken on one node is
read through another, until the job is erased."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp

from tests.support.fleet import Fleet, client
from tests.support.peers import MediaClient
from tests.support.server import Server, leave, receive

A, B, C = 0, 1, 2


async def next_of(peer: MediaClient, kind: str, timeout: float = 10) -> dict[str, Any]:
    async with asyncio.timeout(timeout):
        while (message := await peer.messages.get())["type"] != kind:
            pass
    return message


async def until_ended(fleet: Fleet, job: int, timeout: float = 10) -> None:
    async with asyncio.timeout(timeout):
        while await fleet.holder(job) is not None:
            await asyncio.sleep(0.05)


async def test_a_customer_whose_link_was_redeemed_through_a_reaches_a_call_on_b_through_the_proxy(
        fleet: Fleet) -> None:
    async with client() as http:
        a, b, proxy = fleet.on(A, http), fleet.on(B, http), fleet.through(http)
        staff_token = await proxy.sign_in("bob")
        job = await proxy.job(staff_token, "Boiler makes a noise")
        await fleet.idle()  # so that the call goes on B, joined through
        expert = await MediaClient(b, staff_token, job).start()
        customer: MediaClient | None = None
        try:
            assert await fleet.holder(job) == B
            status, body = await a.redeem(await proxy.invite(staff_token, job))
            assert status == 200, body
            customer = await MediaClient(proxy, body["token"]).start()
            # Media both ways, between the customer and node B's own ports.
            await expert.wait_remote(customer.participant_id, "video", frames=15)
            await customer.wait_remote(expert.participant_id, "video", frames=15)
            # Also carried for certain: a technician joining on node C's own port.
            colleague = await proxy.sign_in("boss")
            ws, joined = await fleet.on(C, http).join_call(colleague, job)
            assert joined["call"]["id"] == (await fleet.calls(job))[0][0]
            await ws.send_json({"type": "chat.message", "text": "through C to B"})
            for peer in (expert, customer):
                chat = await next_of(peer, "chat.message")
                assert chat["message"]["text"] == "through C to B"
            await leave(ws)
            assert [ended for _, ended in await fleet.calls(job)] == [None]  # one call
            assert await fleet.holder(job) == B
        finally:
            if customer is not None:
                await customer.close()
            await expert.close()
    await until_ended(fleet, job)
    # nginx logs the customer's WebSocket once closed; the redeem never went through it.
    assert fleet.nginx is not None
    log = fleet.nginx.directory / "access.log"
    async with asyncio.timeout(5):
        while '"GET /ws" 101' not in log.read_text():
            await asyncio.sleep(0.05)
    assert '"POST /api/invites/redeem"' not in log.read_text()
    # Every secret is a setting: nothing on a node's disk (docs/deploy.md, Fleet).
    for index in (A, B, C):
        assert list((fleet.root / f"node{index}").iterdir()) == []


async def join(remote: Server, token: str, job: int | None
               ) -> tuple[aiohttp.ClientWebSocketResponse, dict[str, Any]]:
    """Open the socket and authenticate: it and the first answer (``joined``)."""
    ws = await remote.ws()
    await ws.send_json({"type": "auth", "token": token} | ({} if job is None else {"job": job}))
    return ws, await receive(ws, timeout=10)


async def test_two_first_joins_of_one_job_through_two_nodes_at_once_make_one_call(
        fleet: Fleet) -> None:
    async with client() as http:
        remotes = [fleet.on(i, http) for i in (A, B, C)]
        staff_token = await remotes[A].sign_in("bob")
        # Four: one expert in that many calls at once is VIDEOASSIST_CALL_MAX_CONNECTIONS_
        # PER_USER's default; the pairs of nodes still go round all three.
        jobs = [await remotes[A].job(staff_token, f"Race {n}") for n in range(4)]
        customers = [await remotes[A].participant(staff_token, job) for job in jobs]
        # Each job: the expert and the customer at once, through two different nodes.
        pairs = [(remotes[n % 3], remotes[(n + 1) % 3]) for n in range(len(jobs))]
        answers = await asyncio.gather(*(
            join(first, token, job)
            for (expert_on, customer_on), job, customer_token in zip(pairs, jobs, customers,
                                                                    strict=True)
            for first, token, job in ((expert_on, staff_token, job),
                                      (customer_on, customer_token, None))))
        for ws, _ in answers:  # everyone joined before anyone leaves
            await leave(ws)
    for n, job in enumerate(jobs):
        expert, customer = answers[2 * n][1], answers[2 * n + 1][1]
        assert expert["type"] == customer["type"] == "joined", (expert, customer)
        calls = await fleet.calls(job)
        assert len(calls) == 1, calls
        assert expert["call"]["id"] == customer["call"]["id"] == calls[0][0]
    for job in jobs:
        await until_ended(fleet, job)


async def test_a_snapshot_taken_on_b_is_read_byte_for_byte_through_a_until_the_job_is_erased(
        fleet: Fleet) -> None:
    async with client() as http:
        a, b, proxy = fleet.on(A, http), fleet.on(B, http), fleet.through(http)
        staff_token = await proxy.sign_in("bob")
        job = await proxy.job(staff_token, "Valve leaks")
        await fleet.idle()  # so that the call goes on B, joined through
        expert = await MediaClient(b, staff_token, job, video=False, audio=False).start()
        customer = await MediaClient(proxy, await proxy.participant(staff_token, job)).start()
        try:
            assert await fleet.holder(job) == B
            await expert.wait_remote(customer.participant_id, "video", frames=10)
            assert expert.ws is not None
            await expert.ws.send_json({"type": "snapshot.request", "request": "r1",
                                       "shapes": [], "camera": customer.participant_id})
            saved = await next_of(expert, "snapshot.saved")
        finally:
            await customer.close()
            await expert.close()
        snapshot = saved["snapshot"]["id"]

        async def image(remote: Server) -> tuple[int, bytes]:
            async with http.get(f"{remote.url}/api/snapshots/{snapshot}/image",
                                headers={"Authorization": f"Bearer {staff_token}"}) as r:
                return r.status, await r.read()

        status, on_b = await image(b)
        assert status == 200 and on_b.startswith(b"\xff\xd8"), status
        assert await image(a) == (200, on_b)
        assert await image(proxy) == (200, on_b)

        await until_ended(fleet, job)
        admin = await a.sign_in("boss")
        status, body, _ = await a.request("DELETE", f"/api/jobs/{job}", token=admin)
        assert status == 204, body
        for remote in (a, b):
            assert (await image(remote))[0] == 404
    for table in ("snapshots", "frames", "job_keys"):
        assert await fleet.query(f"SELECT 1 FROM {table} WHERE job_id = ?", job) == []
