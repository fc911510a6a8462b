"""The line between the supervisor and one worker: a socket pair, JSON lines.

The worker says ``{"ready": NODE_ID, "address": "HOST:PORT"}`` once it serves; the
supervisor says ``{"drain": "SIGTERM"}`` when it is told to stop. The worker takes its
orders only from here, never from signals (a Ctrl-C reaches every process of the
terminal's group, and a second signal would exit at once): when the line closes, the
supervisor is gone, and the worker exits at once.
"""

from __future__ import annotations

import asyncio
import json
import socket
from typing import Any

LINE_LIMIT = 64 * 1024


class Control:
    """One end of the line."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer

    @classmethod
    async def open(cls, sock: socket.socket) -> Control:
        reader, writer = await asyncio.open_unix_connection(sock=sock, limit=LINE_LIMIT)
        return cls(reader, writer)

    async def send(self, **message: Any) -> None:
        self._writer.write(json.dumps(message).encode() + b"\n")
        await self._writer.drain()

    async def receive(self) -> dict[str, Any] | None:
        """The next message; None when the other end has closed the line."""
        try:
            line = await self._reader.readline()
        except (ConnectionError, ValueError):
            return None
        if not line:
            return None
        message = json.loads(line)
        if not isinstance(message, dict):
            raise ValueError("a control message is a JSON object")
        return message

    def close(self) -> None:
        self._writer.close()
