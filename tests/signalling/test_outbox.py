"""The outbox's rule for a client that falls behind: superseded messages go, the rest
stays in order (docs/protocol.md, "Liveness")."""

from __future__ import annotations

import asyncio
from typing import Any

from videoassist.signalling.outbox import Outbox


def pointer(sender: int, target: int, x: float) -> dict[str, Any]:
    return {"type": "annotation.pointer", "from": sender, "target": target, "x": x,
            "y": 0.5, "color": "#ff3b30"}


def shape(target: int, shape_id: str, x: float) -> dict[str, Any]:
    return {"type": "annotation.add", "from": 1, "target": target,
            "shape": {"id": shape_id, "kind": "pen", "points": [[0, 0], [x, x]],
                      "color": "#ff3b30", "width": 0.01}}


def chat(text: str) -> dict[str, Any]:
    return {"type": "chat.message", "message": {"text": text}}


async def drain(outbox: Outbox) -> list[dict[str, Any]]:
    return [await outbox.get() for _ in range(outbox.qsize())]


async def test_a_full_outbox_keeps_the_latest_of_each_and_all_the_rest_in_order() -> None:
    outbox = Outbox(8)
    waiting = [pointer(1, 2, 0.1), chat("a"), pointer(3, 2, 0.1), shape(2, "s1", 0.1),
               pointer(1, 2, 0.2), {"type": "annotation.remove", "from": 1, "target": 2,
                                    "id": "s1"},
               shape(2, "s1", 0.2), {"type": "camera.state", "from": 2, "zoom": 1.0}]
    for message in waiting:
        assert outbox.put(message)
    assert outbox.coalesced == 0  # nothing goes while there is room
    assert outbox.put(pointer(1, 2, 0.3))  # full: the sender's older moves go
    assert outbox.put(pointer(1, 4, 0.3))  # another target's pointer: one more
    assert await drain(outbox) == [
        chat("a"), pointer(3, 2, 0.1),
        {"type": "annotation.remove", "from": 1, "target": 2, "id": "s1"},
        shape(2, "s1", 0.2), {"type": "camera.state", "from": 2, "zoom": 1.0},
        pointer(1, 2, 0.3), pointer(1, 4, 0.3)]
    assert outbox.coalesced == 3  # two moves and the shape's earlier state


async def test_what_is_never_dropped_fills_the_outbox() -> None:
    outbox = Outbox(8)
    never = [chat("a"), {"type": "annotation.clear", "from": 1, "target": 2},
             {"type": "annotation.remove", "from": 1, "target": 2, "id": "s1"},
             shape(2, "s1", 0.1), shape(2, "s2", 0.1), shape(3, "s1", 0.1),
             {"type": "participant.left", "participant": {"id": 3}},
             {"type": "sdp.offer", "sdp": "v=0"}]
    for message in never:
        assert outbox.put(message)
    assert not outbox.put(pointer(1, 2, 0.5))  # still full: the client is closed
    assert not outbox.put(chat("b"))
    assert await drain(outbox) == never and outbox.coalesced == 0


async def test_get_waits_for_a_message() -> None:
    outbox = Outbox(8)
    getter = asyncio.create_task(outbox.get())
    await asyncio.sleep(0)
    assert not getter.done()
    outbox.put(chat("a"))
    async with asyncio.timeout(5):
        assert await getter == chat("a")
