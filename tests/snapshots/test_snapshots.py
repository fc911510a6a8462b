"""Annotated snapshots through the real server: a real aiortc customer publishes a
synthetic stream with a known pattern, an expert asks over /ws, and the stored JPEG
is fetched back over HTTP and compared with the pattern and the expected drawing."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import cv2
import numpy as np
import pytest

from tests.support.clips import pattern, read_id
from tests.support.peers import MediaClient
from tests.support.server import Server, leave, receive
from videoassist.appkeys import MEDIA, SNAPSHOTS
from videoassist.errors import BadRequest
from videoassist.media.publication import Publication
from videoassist.snapshots import render
from videoassist.snapshots.fonts import LabelFonts

ARROW = {"id": "a1", "kind": "arrow", "points": [[0.2, 0.8], [0.55, 0.45]],
         "color": "#00ff00", "width": 0.01}
CIRCLE = {"id": "c1", "kind": "circle", "points": [[0.7, 0.3], [0.8, 0.3]],
          "color": "#ff00ff", "width": 0.006}
LABEL = {"id": "t1", "kind": "text", "points": [[0.05, 0.2]], "color": "#ffcc00",
         "width": 0.004, "text": "valve"}


@dataclass
class Call:
    server: Server
    staff_token: str
    job_id: int
    expert: aiohttp.ClientWebSocketResponse
    expert_id: int
    customer: MediaClient

    async def snapshot(self, shapes: list[dict[str, Any]], request: str = "r1",
                       camera: int | None = None) -> dict[str, Any]:
        """Ask for a snapshot as the expert; the snapshot.saved message."""
        await self.expert.send_json({
            "type": "snapshot.request", "request": request, "shapes": shapes,
            "camera": self.customer.participant_id if camera is None else camera})
        saved = await receive(self.expert, skip=("participant.joined", "media.tracks"))
        assert saved["type"] == "snapshot.saved", saved
        assert saved["request"] == request
        return saved

    @property
    def publication(self) -> Publication:
        """The customer's camera as the server receives it."""
        return self.server.app[MEDIA].publication(  # type: ignore[attr-defined,no-any-return]
            self.customer.participant_id)

    async def image(self, snapshot_id: int) -> tuple[np.ndarray, bytes, Any]:
        async with self.server.http.get(
            f"{self.server.url}/api/snapshots/{snapshot_id}/image",
            headers={"Authorization": f"Bearer {self.staff_token}"},
        ) as response:
            assert response.status == 200, await response.text()
            jpeg = await response.read()
            headers = response.headers
        image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
        return image, jpeg, headers


@pytest.fixture
async def call_factory(server: Server) -> AsyncIterator[Any]:
    clients: list[MediaClient] = []
    sockets: list[aiohttp.ClientWebSocketResponse] = []

    async def start(size: tuple[int, int] = (640, 360)) -> Call:
        _, staff_token = await server.staff("expert")
        job_id = await server.job(staff_token)
        expert, joined = await server.join_call(staff_token, job_id)
        sockets.append(expert)
        customer = MediaClient(server, await server.participant(staff_token, job_id),
                               audio=False, video_size=size)
        clients.append(customer)
        await customer.start()
        call = Call(server, staff_token, job_id, expert, joined["you"]["id"], customer)
        # A few frames through to the server, the keyframe first, and the frames just
        # after it: the encoder's rate control starves those at 720p (frames 2 to 7 are
        # 13 to 14 levels off the pattern, the others 3 to 9), and a capture may take
        # any frame the server had when asked, however far behind the publisher.
        async with asyncio.timeout(10):
            while call.publication.frames_in < 10:
                await asyncio.sleep(0.02)
        return call

    yield start
    for client in clients:
        await client.close()
    for ws in sockets:
        await ws.close()


def _annotation_mask(image: np.ndarray, clean: np.ndarray) -> np.ndarray:
    """Pixels where the image departs clearly from the clean picture."""
    return (np.abs(image.astype(np.int16) - clean.astype(np.int16)).max(axis=2) > 80)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max(1, (a | b).sum()))


# Portrait: 432 wide, as the frame id barcode needs 384 pixels.
@pytest.mark.parametrize("size", [(640, 360), (1280, 720), (432, 768)],
                         ids=["360p", "720p", "portrait"])
async def test_snapshot_holds_the_pattern_and_the_arrow_where_the_coordinates_put_it(
        call_factory: Any, size: tuple[int, int], label_fonts: LabelFonts) -> None:
    call = await call_factory(size)
    newest_at_server = call.publication.frames_in - 1
    saved = await call.snapshot([ARROW, CIRCLE, LABEL])
    sent_after = call.customer.video.sent
    info = saved["snapshot"]
    assert (info["width"], info["height"]) == size  # the full received resolution
    assert info["camera"] == call.customer.participant_id
    assert info["author"] == call.expert_id and info["shapes"] == 3

    image, jpeg, headers = await call.image(info["id"])
    assert headers["Content-Type"] == "image/jpeg"
    assert headers["Cache-Control"] == "no-store"
    assert headers["Content-Disposition"].startswith("inline")
    assert image.shape[:2] == (size[1], size[0])

    # The newest frame: at least as new as the newest the server had when asked (its
    # frames are the publisher's, numbered alike), and sent before the answer came.
    frame_id = read_id(image)
    sent_ids = set(call.customer.video.log[newest_at_server:sent_after])
    assert frame_id in sent_ids, (frame_id, sorted(sent_ids))

    # The picture is that frame's pattern (away from the annotations), within the
    # losses of VP8 and JPEG...
    clean = pattern(size[0], size[1], frame_id)
    expected = render.draw(clean, [ARROW, CIRCLE, LABEL], label_fonts)
    untouched = ~_annotation_mask(expected, clean)
    error = np.abs(image.astype(np.int16) - clean.astype(np.int16)).max(axis=2)
    assert float(np.median(error[untouched])) < 12, float(np.median(error[untouched]))

    # ... and the arrow's pixels are where the normalized coordinates put them.
    arrow_expected = _annotation_mask(render.draw(clean, [ARROW], None), clean)
    drawn = _annotation_mask(image, clean)
    arrow_region = cv2.dilate(arrow_expected.astype(np.uint8), np.ones((9, 9), np.uint8)) > 0
    iou = _iou(drawn & arrow_region, arrow_expected)
    assert iou > 0.8, iou
    # Inside the head, one and a half strokes back from the tip, is arrow green.
    (tx, ty), (hx, hy) = ((x * size[0], y * size[1]) for x, y in ARROW["points"])
    back = 1.5 * ARROW["width"] * size[0] / float(np.hypot(hx - tx, hy - ty))
    px, py = round(hx - (hx - tx) * back), round(hy - (hy - ty) * back)
    green = (image[:, :, 1] > 180) & (image[:, :, 0] < 110) & (image[:, :, 2] < 110)
    near_tip = green[py - 1:py + 2, px - 1:px + 2]
    # The shaft starts at the tail: green there, and not one and a half strokes before it.
    qx, qy = round(tx + (hx - tx) * back), round(ty + (hy - ty) * back)
    assert green[qy - 1:qy + 2, qx - 1:qx + 2].any(), "no arrow colour at the arrow's tail"
    ox, oy = round(tx - (hx - tx) * back), round(ty - (hy - ty) * back)
    assert not green[oy - 1:oy + 2, ox - 1:ox + 2].any(), "arrow colour before its tail"
    assert near_tip.any(), "no arrow colour at the arrow's head"

    # The stored record says the same, and names who asked and whose camera.
    stored = await call.server.store.snapshots.get(info["id"])
    assert stored.shapes == [ARROW, CIRCLE, LABEL]
    assert stored.author.participant_id == call.expert_id
    assert stored.camera.participant_id == call.customer.participant_id
    assert stored.camera.role == "customer" and stored.author.role == "expert"
    assert stored.sha256 == hashlib.sha256(jpeg).hexdigest() == info["sha256"]
    assert stored.byte_size == len(jpeg)


def test_expected_rendering_of_the_pattern_is_deterministic() -> None:
    """A control for the comparison above: drawing twice gives the same pixels, and the
    mask finds the arrow (so the IoU check cannot pass on two empty masks)."""
    clean = pattern(640, 360, 7)
    a = render.draw(clean, [ARROW], None)
    assert np.array_equal(a, render.draw(clean, [ARROW], None))
    assert _annotation_mask(a, clean).sum() > 500
    assert read_id(a) == 7


# -- issue 20, finding 8: labels count by the area they are drawn over, and a snapshot
# still queued when its requester leaves is not made ---------------------------------

SKIP = ("participant.joined", "media.tracks")


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
        await leave(call.expert)  # the requester leaves while its snapshot waits
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
