"""Issue 20, finding 8: labels count by the area they are drawn over, and a snapshot
still queued when its requester leaves is not made. Through the real server, with a
real aiortc camera (``call_factory`` of test_snapshots)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import numpy as np
import pytest

from tests.snapshots import test_snapshots
from tests.support.server import receive
from videoassist.appkeys import SNAPSHOTS
from videoassist.errors import BadRequest
from videoassist.snapshots import render

SKIP = ("participant.joined", "media.tracks")
LABEL = test_snapshots.LABEL
call_factory = test_snapshots.call_factory  # the fixture: a call with a real camera


def label(n: int, text: str, width: float, x: float = 0.0, y: float = 0.0) -> dict[str, Any]:
    return {"id": f"t{n}", "kind": "text", "points": [[x, y]], "color": "#ff0000",
            "width": width, "text": text}


async def test_big_labels_are_refused_by_the_area_they_cover(call_factory: Any) -> None:
    """The attack: 190 labels of 60 wide letters at the widest stroke (one message
    within 64 KiB), each within the old per-label ink of 0.1; it took seconds of
    rendering (more at 720p) and held up every other snapshot. Now refused before
    anything is drawn."""
    call = await call_factory((640, 360))
    attack = [label(n, "W" * 60, 0.1, 0.0, (n % 4) / 4) for n in range(190)]
    await call.expert.send_json({"type": "snapshot.request", "request": "big",
                                 "shapes": attack, "camera": call.customer.participant_id})
    error = await receive(call.expert, 60, skip=SKIP)  # the old code draws for seconds
    assert (error["type"], error["code"], error["request"]) == ("error", "bad_request",
                                                                "big"), error
    assert "Too much text" in error["message"]
    assert await call.server.store.snapshots.of_job(call.job_id) == []
    # Labels within the budget are drawn: two of the biggest, or twenty small ones.
    big = [label(n, "Valve 3", 0.1, 0.0, n / 2) for n in range(2)]
    small = [label(n, "drain pipe here", 0.004, (n % 4) / 4, (n // 4) / 5)
             for n in range(2, 22)]
    for shapes in (big, small, [LABEL]):
        saved = await call.snapshot(shapes)
        assert saved["snapshot"]["shapes"] == len(shapes)


def test_a_label_s_cost_is_its_patch_on_the_picture(label_fonts: Any) -> None:
    picture = np.zeros((360, 640, 3), np.uint8)
    short = render._plan_text(label(0, "ab", 0.01), 640, 360, label_fonts)
    long = render._plan_text(label(0, "ab" * 50, 0.01), 640, 360, label_fonts)
    wide = render._plan_text(label(0, "ab", 0.05), 640, 360, label_fonts)
    assert short is not None and long is not None and wide is not None
    assert short.area < long.area <= 640 * 360 and short.area < wide.area
    with pytest.raises(BadRequest, match="Too much text"):
        render.draw(picture, [label(n, "ab" * 50, 0.1, 0.0, 0.0) for n in range(8)],
                    label_fonts)


async def test_a_snapshot_queued_when_its_requester_leaves_is_not_made(
        call_factory: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    call = await call_factory((640, 360))
    service = call.server.app[SNAPSHOTS]
    work = service._work  # both drawing workers held: the next request queues
    await work.acquire()
    await work.acquire()
    try:
        await call.expert.send_json({"type": "snapshot.request", "request": "q",
                                     "shapes": [LABEL], "camera": call.customer.participant_id})
        async with asyncio.timeout(10):
            while not getattr(work, "_waiters", None):
                await asyncio.sleep(0.01)
        await call.expert.close()  # the requester leaves while its snapshot waits
        left = f"participant {call.expert_id}] left"
        async with asyncio.timeout(10):
            while not any(left in r.getMessage() for r in caplog.records):
                await asyncio.sleep(0.02)
    finally:
        work.release()
        work.release()
    async with asyncio.timeout(10):
        while not any("requester has gone" in r.getMessage() for r in caplog.records) and (
                not await call.server.store.snapshots.of_job(call.job_id)):
            await asyncio.sleep(0.02)
        while await call.server.store.snapshots.in_progress(call.job_id):
            await asyncio.sleep(0.02)
    assert await call.server.store.snapshots.of_job(call.job_id) == []
