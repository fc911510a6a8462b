"""The fleet behind HAProxy with docs/deploy.md's Fleet backend: WebSockets spread over
every node (leastconn), and the rolling upgrade's second step as the doc gives it for
HAProxy: a node set to drain through the runtime API keeps the connections open
through it, gets no new one, and gets new ones again once set ready."""

from __future__ import annotations

import asyncio

import aiohttp

from tests.support.fleet import Fleet, client
from tests.support.server import Server, join_call, leave, receive

B = 1
NODE_B = "node2"  # B's name in the doc's backend (node1, node2, node3 in port order)


async def chat_reaches_all(sender: aiohttp.ClientWebSocketResponse,
                           sockets: list[aiohttp.ClientWebSocketResponse], text: str) -> None:
    await sender.send_json({"type": "chat.message", "text": text})
    for ws in sockets:
        while (message := await receive(ws, timeout=10))["type"] != "chat.message":
            pass
        assert message["message"]["text"] == text, message


async def new_connections(proxy: Server, count: int) -> None:
    """``count`` requests through HAProxy, each on a connection of its own."""
    for _ in range(count):
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(
                ssl=False, force_close=True)) as http, \
                http.get(f"{proxy.url}/healthz") as answer:
            assert answer.status == 200


async def test_a_node_drained_in_haproxy_keeps_its_websockets_and_gets_no_new_connection(
        fleet: Fleet) -> None:
    haproxy = await asyncio.to_thread(fleet.start_haproxy)
    sockets: list[aiohttp.ClientWebSocketResponse] = []
    async with client() as http:
        proxy, b = fleet.through_haproxy(http), fleet.on(B, http)
        staff_token = await proxy.sign_in("bob")
        job = await proxy.job(staff_token, "Boiler makes a noise")
        customer_token = await proxy.participant(staff_token, job)
        await fleet.idle()  # so that the call goes on B, joined through
        try:
            sockets.append(await join_call(b, staff_token, job))
            # Three WebSockets through HAProxy: leastconn gives each node one (health
            # checks hold no connection), the one on B carried by none, the others
            # carried to B by A and C.
            for token in (customer_token, staff_token, staff_token):
                sockets.append(await join_call(proxy, token, job if token == staff_token else None))
            assert haproxy.open() == {"node1": 1, "node2": 1, "node3": 1}, haproxy.output()
            assert await fleet.holder(job) == B
            await chat_reaches_all(sockets[1], sockets, "before the drain")

            answer = await asyncio.to_thread(
                haproxy.runtime, f"set server videoassist/{NODE_B} state drain")
            assert answer.strip() == "", answer
            before = haproxy.sent()
            await new_connections(proxy, 9)
            after = haproxy.sent()
            assert after[NODE_B] == before[NODE_B], (before, after)
            assert sum(after.values()) - sum(before.values()) == 9, (before, after)
            # Those open through it go on, whichever node they landed on.
            assert haproxy.open()[NODE_B] == 1
            await chat_reaches_all(sockets[1], sockets, "during the drain")
            await chat_reaches_all(sockets[0], sockets, "from B's own")

            await asyncio.to_thread(
                haproxy.runtime, f"set server videoassist/{NODE_B} state ready")
            before = haproxy.sent()
            await new_connections(proxy, 9)
            after = haproxy.sent()
            assert after[NODE_B] > before[NODE_B], (before, after)
        finally:
            for ws in sockets:
                await leave(ws)
            await asyncio.to_thread(haproxy.runtime,
                                    f"set server videoassist/{NODE_B} state ready")
    await fleet.idle()

