"""A WebSocket client on a slow link: it reads only when told to, and its socket's
buffers are small, so that what it does not read backs up to the server within a few
hundred kilobytes instead of the megabytes loopback's TCP buffers hold otherwise.

aiohttp's own client keeps reading into a buffer of its own (half a megabyte) while its
user does not: hence this one, which speaks just enough of RFC 6455 for the tests (text
frames, no extensions, so nothing is compressed).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import socket
import struct
from typing import Any

# The smallest buffers Linux grants (it doubles what is asked, with a floor).
SMALL_BUFFER = 4096


def slow_listening_socket() -> socket.socket:
    """A listening socket on 127.0.0.1 whose accepted connections send through a small
    kernel buffer (Linux: accepted sockets inherit SO_SNDBUF), as a server would to a
    client on a slow link."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SMALL_BUFFER)
    sock.bind(("127.0.0.1", 0))
    return sock


class SlowClient:
    """One WebSocket connection whose reads happen only in ``receive``."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer

    @classmethod
    async def connect(cls, url: str, origin: str) -> SlowClient:
        """Open ``url`` (http://host:port/path) as a WebSocket."""
        host_port, _, path = url.removeprefix("http://").partition("/")
        host, _, port = host_port.partition(":")
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SMALL_BUFFER)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, (host, int(port)))
        # A small stream buffer: past twice this, asyncio stops reading the socket.
        reader, writer = await asyncio.open_connection(sock=sock, limit=SMALL_BUFFER)
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write((f"GET /{path} HTTP/1.1\r\nHost: {host_port}\r\nUpgrade: websocket\r\n"
                      f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                      f"Sec-WebSocket-Version: 13\r\nOrigin: {origin}\r\n\r\n").encode())
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101"), head
        return cls(reader, writer)

    async def send_json(self, message: dict[str, Any]) -> None:
        payload = json.dumps(message).encode()
        mask = os.urandom(4)
        size = len(payload)
        head = (struct.pack("!BB", 0x81, 0x80 | size) if size < 126
                else struct.pack("!BBH", 0x81, 0x80 | 126, size) if size < 65536
                else struct.pack("!BBQ", 0x81, 0x80 | 127, size))
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self._writer.write(head + mask + masked)
        await self._writer.drain()

    async def receive(self) -> tuple[int, bytes]:
        """The next frame: (opcode, payload); a close frame's payload is its code and
        reason."""
        first, second = await self._reader.readexactly(2)
        size = second & 0x7F
        if size == 126:
            (size,) = struct.unpack("!H", await self._reader.readexactly(2))
        elif size == 127:
            (size,) = struct.unpack("!Q", await self._reader.readexactly(8))
        assert not second & 0x80, "a server never masks its frames"
        assert first & 0x80, "the server sends no fragmented messages"
        return first & 0x0F, await self._reader.readexactly(size)

    async def receive_json(self) -> dict[str, Any]:
        """The next text message; an AssertionError naming the close code if the
        server closed instead."""
        opcode, payload = await self.receive()
        if opcode == 0x8:
            code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
            raise AssertionError(f"closed: {code} {payload[2:].decode()}")
        assert opcode == 0x1, opcode
        message: dict[str, Any] = json.loads(payload)
        return message

    async def close(self) -> None:
        self._writer.close()
        with contextlib.suppress(ConnectionError):
            await self._writer.wait_closed()
