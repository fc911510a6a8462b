"""What waits to be written to one client: a bounded queue that, when it is full, first
drops the messages that a later one in it supersedes (coalescing), so that a client on
a slow link falls behind on where someone points, never on what was said or drawn.

A message is superseded by a later one waiting with the same key (``supersession``):

- ``annotation.pointer``: the same sender pointing on the same target's video. Only
  where it points now matters.
- ``annotation.add``: the same target's video and shape ``id``. A client replaces a
  shape by its id, so the later one is the same shape in a later state.
- ``camera.state``: the same participant's camera, as it is now.
- ``still``: the same participant's camera still (a binary frame, ``frame``). Only the
  newest matters, and a still is large: a new one replaces the one still waiting at
  once, full or not, so at most one still per sender waits for a client.
- ``frozen``: the call's frozen picture (a binary frame); there is one at a time, so a
  new one replaces the one waiting, at once.

Nothing else is ever dropped: chat, notes, errors, shape removals and clears, people
joining and leaving, session descriptions, snapshots saved... and what stays keeps its
order. A client that is still behind after coalescing is closed (4409 ``too_slow``).
This is ``docs/protocol.md``'s rule ("Liveness").
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Hashable
from typing import Any

# How many messages wait for a client at most (VIDEOASSIST_WS_OUTBOX_MESSAGES).
OUTBOX_MAX = 256


def supersession(message: dict[str, Any]) -> Hashable | None:
    """The key under which a later message supersedes this one, or None if none does
    (the message is never dropped)."""
    kind = message.get("type")
    if kind == "annotation.pointer":
        return kind, message["from"], message["target"]
    if kind == "annotation.add":
        return kind, message["target"], message["shape"]["id"]
    if kind in ("camera.state", "still"):
        return kind, message["from"]
    return None


class Outbox:
    """Messages waiting to be written to one client, in order; ``put`` from any task,
    ``get`` from the one writer."""

    def __init__(self, maxsize: int = OUTBOX_MAX) -> None:
        self.maxsize = maxsize
        self.coalesced = 0  # messages dropped because a later one superseded them
        self._messages: deque[dict[str, Any]] = deque()
        self._ready = asyncio.Event()

    def qsize(self) -> int:
        return len(self._messages)

    def put(self, message: dict[str, Any]) -> bool:
        """Queue a message; when the outbox is full, coalesce first. False (nothing
        queued) if it is still full: the client is too far behind."""
        if message.get("type") == "still":
            self._drop_stills_of(message["from"])
        elif message.get("type") == "frozen":  # one freeze at a time: the newest
            self._drop_frozen()
        if len(self._messages) >= self.maxsize:
            self._coalesce(message)
            if len(self._messages) >= self.maxsize:
                return False
        self._messages.append(message)
        self._ready.set()
        return True

    def _drop_stills_of(self, sender: int) -> None:
        kept = deque(m for m in self._messages
                     if m.get("type") != "still" or m["from"] != sender)
        self.coalesced += len(self._messages) - len(kept)
        self._messages = kept

    def _drop_frozen(self) -> None:
        kept = deque(m for m in self._messages if m.get("type") != "frozen")
        self.coalesced += len(self._messages) - len(kept)
        self._messages = kept

    def clear(self) -> None:
        """Drop every message waiting: nobody will read them."""
        self._messages.clear()

    async def get(self) -> dict[str, Any]:
        """The next message, waiting for one."""
        while not self._messages:
            self._ready.clear()
            await self._ready.wait()
        return self._messages.popleft()

    def _coalesce(self, newest: dict[str, Any]) -> None:
        """Drop each waiting message that a later one (``newest`` included) supersedes;
        the others keep their order. Only when full, in at most ``maxsize`` steps."""
        later: set[Hashable] = set()
        key = supersession(newest)
        if key is not None:
            later.add(key)
        kept: deque[dict[str, Any]] = deque()
        for message in reversed(self._messages):
            key = supersession(message)
            if key is not None:
                if key in later:
                    continue
                later.add(key)
            kept.appendleft(message)
        self.coalesced += len(self._messages) - len(kept)
        self._messages = kept
