"""Signalling WebSockets piped to the node that holds their call.

A client's WebSocket lands on whichever worker the kernel gives it (SO_REUSEPORT).
When its call is held by another node, this node opens a WebSocket to that node's
internal address, sends the client's ``auth`` message as it came, and then pipes
every message both ways, unchanged, until either side closes. The holder does all the
checks, as for a client of its own; this node only carries bytes. When the holder
closes, the client gets the same close code and reason; when the holder vanishes
without closing (its process died), the client gets a ``call_lost`` error and close
1011, and reconnects (docs/protocol.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import WSMsgType, web

from videoassist.cluster.node import CLIENT_HEADER, SECRET_HEADER

logger = logging.getLogger(__name__)

WS_PATH = "/internal/ws"
# Close code a holder answers with when the call it was sent to is not, or no longer,
# its own (it ended and was placed again elsewhere): the proxying node places again.
# Between nodes only; no client ever sees it.
CLOSE_MOVED = 4300
CLOSE_CALL_LOST = 1011
CALL_LOST = "call_lost"
CALL_LOST_MESSAGE = "The call was interrupted on the server. Reconnecting starts it again."
CONNECT_TIMEOUT_S = 5.0
CLOSE_TIMEOUT_S = 2.0
# How long what a going client sent is still carried to the holder after writing to
# the client failed (its last messages, already in the proxy's socket buffer).
DRAIN_S = 1.0
FRAME_LIMIT = 1024 * 1024  # as the public socket's (api.ws)


@dataclass(frozen=True)
class Moved:
    """The holder said the call is not its own: place again."""


@dataclass(frozen=True)
class Closed:
    """The pipe ended; how the client's socket was closed."""

    code: int
    reason: str


@dataclass(eq=False)
class _Pipe:
    client: web.WebSocketResponse
    call_id: int
    stop: asyncio.Future[tuple[int, str, str]] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future())


class Proxies:
    """This node's pipes, so that a drain can wait for them and a stop close them."""

    def __init__(self, secret: str) -> None:
        self._secret = secret
        self._pipes: set[_Pipe] = set()
        self._idle = asyncio.Event()
        self._idle.set()
        self._session: aiohttp.ClientSession | None = None

    def __len__(self) -> int:
        return len(self._pipes)

    async def wait_idle(self) -> None:
        await self._idle.wait()

    def close_all(self, code: int, reason: str, message: str) -> None:
        """End every pipe: its client gets an ``error`` with ``reason``, then ``code``."""
        for pipe in self._pipes:
            if not pipe.stop.done():
                pipe.stop.set_result((code, reason, message))

    def call_ids(self) -> set[int]:
        """The calls this node carries connections to."""
        return {pipe.call_id for pipe in self._pipes}

    def close_calls(self, call_ids: set[int]) -> None:
        """End the pipes to these calls, which have ended (their node was taken for
        dead): the clients get ``call_lost`` and close 1011, and rejoin."""
        for pipe in self._pipes:
            if pipe.call_id in call_ids and not pipe.stop.done():
                logger.warning("[call %d] the call ended while its node was silent: "
                               "closing a connection carried to it", pipe.call_id)
                pipe.stop.set_result((CLOSE_CALL_LOST, CALL_LOST, CALL_LOST_MESSAGE))

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def pipe(self, client: web.WebSocketResponse, address: str, call_id: int,
                   auth: str, client_address: str, prefix: str) -> Moved | Closed:
        """Carry the client's socket to the holder of call ``call_id`` at ``address``,
        from its ``auth`` message on, until either side closes."""
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(
                total=None, connect=CONNECT_TIMEOUT_S))
        try:
            upstream = await self._session.ws_connect(
                f"http://{address}{WS_PATH}", max_msg_size=FRAME_LIMIT, autoping=True,
                headers={SECRET_HEADER: self._secret, CLIENT_HEADER: client_address})
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            logger.warning("%s the node holding the call (%s) cannot be reached: %s",
                           prefix, address, exc)
            return await _lost(client)
        pipe = _Pipe(client, call_id)
        self._pipes.add(pipe)
        self._idle.clear()
        try:
            return await self._run(pipe, upstream, auth, prefix)
        finally:
            self._pipes.discard(pipe)
            if not self._pipes:
                self._idle.set()
            if not upstream.closed:
                with contextlib.suppress(Exception):
                    async with asyncio.timeout(CLOSE_TIMEOUT_S):
                        await upstream.close()

    async def _run(self, pipe: _Pipe, upstream: aiohttp.ClientWebSocketResponse, auth: str,
                   prefix: str) -> Moved | Closed:
        client = pipe.client
        try:
            await upstream.send_str(auth)
            first = await upstream.receive(timeout=CONNECT_TIMEOUT_S)
        except (ConnectionError, RuntimeError, TimeoutError):
            logger.warning("%s the node holding the call did not answer the auth", prefix)
            return await _lost(client)
        if first.type == WSMsgType.CLOSE and first.data == CLOSE_MOVED:
            return Moved()
        try:
            if not await _forward(first, client):
                return await _closed_by_holder(client, first, prefix)
        except (ConnectionError, RuntimeError):
            return Closed(1006, "client")
        up = asyncio.create_task(_carry(upstream, client))
        down = asyncio.create_task(_carry(client, upstream))
        waits: list[asyncio.Future[Any]] = [up, down, pipe.stop]
        try:
            done, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            if up in done and up.exception() is not None and not down.done():
                # Writing to the client failed: it is going. What it sent before it went
                # (a ``leave`` right after joining, as the holder wrote it an offer) still
                # goes on to the holder, which would otherwise see a lost connection.
                await asyncio.wait([down], timeout=DRAIN_S)
        finally:
            for task in (up, down):
                if not task.done():
                    task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        if pipe.stop in done:
            code, reason, message = pipe.stop.result()
            await _close(client, code, reason, message)
            return Closed(code, reason)
        if up in done:
            if up.exception() is None:
                return await _closed_by_holder(client, up.result(), prefix)
            return Closed(1006, "client")  # writing to the client failed: it is gone
        if down.exception() is not None:  # writing to the holder failed: it is gone
            logger.warning("%s the node holding the call went away", prefix)
            return await _lost(client)
        # The client closed, or vanished: the holder sees it leave when we close.
        return Closed(client.close_code or 1006, "client")


async def _forward(msg: aiohttp.WSMessage,
                   to: web.WebSocketResponse | aiohttp.ClientWebSocketResponse) -> bool:
    """Send a data message on; False for anything that ends the socket."""
    if msg.type == WSMsgType.TEXT:
        await to.send_str(msg.data)
        return True
    if msg.type == WSMsgType.BINARY:
        await to.send_bytes(msg.data)
        return True
    return False


async def _carry(source: web.WebSocketResponse | aiohttp.ClientWebSocketResponse,
                 to: web.WebSocketResponse | aiohttp.ClientWebSocketResponse
                 ) -> aiohttp.WSMessage:
    """Forward messages until the source ends; the message that ended it."""
    while True:
        msg = await source.receive()
        if not await _forward(msg, to):
            return msg


async def _closed_by_holder(client: web.WebSocketResponse, last: aiohttp.WSMessage,
                            prefix: str) -> Closed:
    """The holder's side ended: pass its close on, or say the call was lost.

    The code is the close frame's: aiohttp sets ``close_code`` to 1006 when its answer
    to the close cannot be written, which happens when the holder's connection ends
    right after its close frame (a holder under load, or exiting)."""
    code = last.data if last.type == WSMsgType.CLOSE else None
    if isinstance(code, int) and code != 1006:
        reason = last.extra if isinstance(last.extra, str) else ""
        with contextlib.suppress(ConnectionError, RuntimeError):
            await client.close(code=code, message=reason.encode())
        return Closed(code, reason or "client")
    logger.warning("%s the node holding the call went away", prefix)
    return await _lost(client)


async def _lost(client: web.WebSocketResponse) -> Closed:
    await _close(client, CLOSE_CALL_LOST, CALL_LOST, CALL_LOST_MESSAGE)
    return Closed(CLOSE_CALL_LOST, CALL_LOST)


async def _close(client: web.WebSocketResponse, code: int, reason: str, message: str) -> None:
    with contextlib.suppress(ConnectionError, RuntimeError, TimeoutError):
        async with asyncio.timeout(CLOSE_TIMEOUT_S):
            if not client.closed:
                await client.send_json({"type": "error", "code": reason, "message": message})
            await client.close(code=code, message=reason.encode())
