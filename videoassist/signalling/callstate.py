"""What a call keeps for those who join it or come back to it (docs/protocol.md,
"Coming back"): the shapes on each participant's video now, and the chat messages
stored from a client's own message id, so that a resend after a reconnection is
stored once. In memory, with the call: a call lives whole in one server process.
"""

from __future__ import annotations

import asyncio
from typing import Any

from videoassist.actors import Actor

# Shapes kept per annotated participant (the oldest go first past it), and client
# message ids remembered per call.
MAX_LIVE_SHAPES = 200
MAX_CLIENT_IDS = 1000


class Shapes:
    """The shapes on each participant's video now, by target then shape id, in drawing
    order, each as its ``annotation.add`` without the type."""

    def __init__(self) -> None:
        self._by_target: dict[int, dict[str, dict[str, Any]]] = {}

    def apply(self, message: dict[str, Any]) -> None:
        """A relayed ``annotation.add``, ``.remove`` or ``.clear`` (with ``from``)."""
        kind, target = message["type"], message["target"]
        shapes = self._by_target.setdefault(target, {})
        if kind == "annotation.add":
            shape_id = message["shape"]["id"]
            shapes.pop(shape_id, None)  # drawn again: it goes on top
            shapes[shape_id] = {"from": message["from"], "target": target,
                                "shape": message["shape"]}
            while len(shapes) > MAX_LIVE_SHAPES:
                del shapes[next(iter(shapes))]
        elif kind == "annotation.remove":
            shapes.pop(message["id"], None)
        elif kind == "annotation.clear":
            shapes.clear()
        if not shapes:
            del self._by_target[target]

    def forget(self, target: int) -> None:
        """The participant left for good: its video, and the shapes on it, are gone."""
        self._by_target.pop(target, None)

    def current(self) -> list[dict[str, Any]]:
        return [shape for shapes in self._by_target.values() for shape in shapes.values()]


class SentChat:
    """The ``chat.message`` sent for each (sender, client id), the newest
    ``MAX_CLIENT_IDS``; hold ``lock`` from looking one up to remembering it."""

    def __init__(self) -> None:
        self._sent: dict[tuple[Actor, str], dict[str, Any]] = {}
        self.lock = asyncio.Lock()

    def get(self, key: tuple[Actor, str]) -> dict[str, Any] | None:
        return self._sent.get(key)

    def remember(self, key: tuple[Actor, str], message: dict[str, Any]) -> None:
        self._sent[key] = message
        while len(self._sent) > MAX_CLIENT_IDS:
            del self._sent[next(iter(self._sent))]
