"""The pipe from the node a client landed on to the node that holds its call, against a
holder that closes the way a busy or dying process does: its close frame and the end
of its connection arrive together, before the pipe can answer the close."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import struct
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from videoassist.cluster.proxy import Closed, Moved, Proxies

WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
ANSWER = b'{"type": "error", "code": "link_revoked"}'


async def _abrupt_holder(code: int, reason: str, answer: bytes | None = ANSWER
                         ) -> tuple[asyncio.Server, str]:
    """A holder that takes the WebSocket handshake and the auth message, then answers
    with ``answer`` (if any) and a close frame with ``code``, and drops the connection in the
    same breath: the pipe reads the close after the connection is gone."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await reader.readuntil(b"\r\n\r\n")
        key = next(line.split(b":", 1)[1].strip() for line in request.split(b"\r\n")
                   if line.lower().startswith(b"sec-websocket-key:"))
        accept = base64.b64encode(hashlib.sha1(key + WS_GUID).digest())
        writer.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                     b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n")
        head = await reader.readexactly(2)  # the auth message, masked as a client's
        length = head[1] & 0x7F
        if length == 126:
            length = struct.unpack("!H", await reader.readexactly(2))[0]
        await reader.readexactly(4 + length)
        payload = struct.pack("!H", code) + reason.encode()
        text = b"" if answer is None else bytes([0x81, len(answer)]) + answer
        writer.write(text + bytes([0x88, len(payload)]) + payload)
        writer.transport.abort()  # flushes what is written, then resets

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    host, port = server.sockets[0].getsockname()[:2]
    return server, f"{host}:{port}"


@pytest.fixture
async def front() -> AsyncIterator[tuple[str, Proxies, asyncio.Queue[Moved | Closed], list[str]]]:
    """A node's public socket reduced to the pipe: it takes the client's auth message
    and pipes the socket to the holder whose address is put in ``holders``."""
    proxies = Proxies("secret")
    results: asyncio.Queue[Moved | Closed] = asyncio.Queue()
    holders: list[str] = []

    async def ws(request: web.Request) -> web.WebSocketResponse:
        client = web.WebSocketResponse()
        await client.prepare(request)
        auth = await client.receive(timeout=5)
        results.put_nowait(await proxies.pipe(client, holders[0], 1, auth.data, "127.0.0.1",
                                          "[test]"))
        return client

    app = web.Application()
    app.router.add_get("/ws", ws)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}/ws", proxies, results, holders
    finally:
        await proxies.close()
        await runner.cleanup()


async def test_the_holders_close_code_reaches_the_client_when_its_connection_ends_at_once(
        front: tuple[str, Proxies, asyncio.Queue[Moved | Closed], list[str]]) -> None:
    # aiohttp marks a client socket's close 1006 when answering the close fails, though
    # the close frame said otherwise (seen under load with a real holder): the code
    # must come from the frame, not be taken for the holder's death (call_lost, 1011).
    url, _, results, holders = front
    holder, address = await _abrupt_holder(4403, "link_revoked")
    holders.append(address)
    try:
        async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
            await ws.send_str('{"type": "auth"}')
            assert (await ws.receive(timeout=5)).data == ANSWER.decode()
            msg = await ws.receive(timeout=5)
            assert msg.type == aiohttp.WSMsgType.CLOSE, msg
            assert (ws.close_code, msg.extra) == (4403, "link_revoked")
        assert await asyncio.wait_for(results.get(), 5) == Closed(4403, "link_revoked")
    finally:
        holder.close()
        await holder.wait_closed()


async def test_a_holder_that_says_moved_in_an_abrupt_close_is_placed_again(
        front: tuple[str, Proxies, asyncio.Queue[Moved | Closed], list[str]]) -> None:
    url, _, results, holders = front
    # The holder's first word is the close: "not my call".
    holder, address = await _abrupt_holder(4300, "moved", answer=None)
    holders.append(address)
    try:
        async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
            await ws.send_str('{"type": "auth"}')
            await ws.receive(timeout=5)
        assert await asyncio.wait_for(results.get(), 5) == Moved()
    finally:
        holder.close()
        await holder.wait_closed()
