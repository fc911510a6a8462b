"""The shared freeze (docs/protocol.md, "Freeze"), through the real server: a customer
publishes a real camera (an aiortc peer sending a moving clip), staff on /ws freeze it.
Everyone gets the same frame, the customer included; a snapshot while frozen is that
frame to the byte, and a live one again once resumed; whoever joins later gets it; it
ends when the one who froze it leaves; a customer can neither freeze nor resume."""

from __future__ import annotations

import asyncio
import json
import struct
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from tests.support.peers import MediaClient
from tests.support.server import Server, leave, receive
from videoassist.appkeys import MEDIA
from videoassist.signalling.outbox import Outbox

WAIT_S = 10.0
# Skipped while waiting for what a test looks for: others' comings, media set-up.
NOISE = ("participant.joined", "media.tracks", "sdp.offer", "media.mode", "camera.state")


def unpack(data: bytes) -> tuple[dict[str, Any], bytes]:
    (length,) = struct.unpack_from(">H", data)
    return json.loads(data[2:2 + length]), data[2 + length:]


async def frozen_frame(ws: aiohttp.ClientWebSocketResponse) -> tuple[dict[str, Any], bytes]:
    """The next binary frame on a staff socket (JSON noise passed over), read."""
    async with asyncio.timeout(WAIT_S):
        while True:
            msg = await ws.receive()
            if msg.type == aiohttp.WSMsgType.BINARY:
                return unpack(msg.data)
            assert msg.type == aiohttp.WSMsgType.TEXT, (msg.type, msg.data)
            message = msg.json()
            assert message["type"] in NOISE, message


class Call:
    """An expert on /ws and a customer publishing a real camera, in one job's call."""

    def __init__(self, server: Server) -> None:
        self.server = server

    async def start(self) -> Call:
        server = self.server
        _, self.token = await server.staff("expert")
        self.job_id = await server.job(self.token)
        self.expert, self.expert_joined = await server.join_call(self.token, self.job_id)
        self.expert_id = self.expert_joined["you"]["id"]
        self.customer = MediaClient(server, await server.participant(self.token, self.job_id),
                                    audio=False)
        await self.customer.start()
        self.camera = self.customer.participant_id
        assert self.customer.video is not None
        async with asyncio.timeout(WAIT_S):
            while self.customer.video.sent < 10:
                await asyncio.sleep(0.02)
        return self

    async def freeze(self, ws: aiohttp.ClientWebSocketResponse | None = None
                     ) -> tuple[dict[str, Any], bytes]:
        before = len(self.customer.stills)
        await (ws or self.expert).send_json({"type": "freeze", "camera": self.camera})
        header, jpeg = await frozen_frame(self.expert)
        async with asyncio.timeout(WAIT_S):  # the customer gets the very same frame
            while len(self.customer.stills) == before:
                await asyncio.sleep(0.02)
        assert unpack(self.customer.stills[-1][1]) == (header, jpeg)
        return header, jpeg

    async def frames_on(self, count: int = 15) -> None:
        """Wait until the customer's camera has sent ``count`` more frames."""
        assert self.customer.video is not None
        sent = self.customer.video.sent
        async with asyncio.timeout(WAIT_S):
            while self.customer.video.sent < sent + count:
                await asyncio.sleep(0.02)

    async def snapshot(self) -> tuple[dict[str, Any], bytes]:
        """A snapshot of the customer's camera with nothing drawn: (saved, its JPEG)."""
        await self.expert.send_json({"type": "snapshot.request", "camera": self.camera,
                                     "shapes": []})
        saved = await receive(self.expert, timeout=WAIT_S, skip=NOISE)
        assert saved["type"] == "snapshot.saved", saved
        status, jpeg, _ = await self.server.request(
            "GET", f"/api/snapshots/{saved['snapshot']['id']}/image", token=self.token)
        assert status == 200
        return saved["snapshot"], jpeg


@pytest.fixture
async def call(server: Server) -> AsyncIterator[Call]:
    c = await Call(server).start()
    yield c
    await c.customer.close()
    await c.expert.close()


async def test_everyone_sees_one_frame_and_a_snapshot_while_frozen_is_that_frame(
        call: Call) -> None:
    header, jpeg = await call.freeze()
    assert (header["type"], header["camera"], header["by"]) == (
        "frozen", call.camera, call.expert_id)
    assert (header["width"], header["height"]) == (640, 360)  # the clip's, in full
    assert jpeg[:2] == b"\xff\xd8" and jpeg[-2:] == b"\xff\xd9"
    await call.frames_on()  # the clip moves on: a live capture now would be a later frame
    snapshot, image = await call.snapshot()
    assert image == jpeg, "the snapshot is not the frozen frame"
    assert snapshot["captured_at"] == header["at"]

    await call.expert.send_json({"type": "freeze.end"})
    ended = await receive(call.expert, timeout=WAIT_S, skip=NOISE)
    assert ended == {"type": "freeze.ended", "camera": call.camera, "by": call.expert_id}
    assert await call.customer.next_message("freeze.ended") == ended
    snapshot, image = await call.snapshot()  # live again
    assert image != jpeg and snapshot["captured_at"] > header["at"]


async def test_whoever_joins_while_frozen_gets_the_frame_and_it_ends_when_its_author_leaves(
        call: Call) -> None:
    header, jpeg = await call.freeze()
    _, other_token = await call.server.staff("expert")
    other, _ = await call.server.join_call(other_token, call.job_id)
    try:
        assert await frozen_frame(other) == (header, jpeg)
        # A freeze anew replaces it, for everyone: the newest frame, by the new author.
        await call.frames_on()
        await other.send_json({"type": "freeze", "camera": call.camera})
        newer, newer_jpeg = await frozen_frame(other)
        assert newer["by"] != call.expert_id and newer["at"] > header["at"]
        assert await frozen_frame(call.expert) == (newer, newer_jpeg)
        await leave(other)  # its author leaves: the picture is live again for the rest
        ended = await call.customer.next_message("freeze.ended")
        assert ended == {"type": "freeze.ended", "camera": call.camera, "by": None}
    finally:
        await other.close()


async def test_a_customer_can_neither_freeze_nor_resume(call: Call) -> None:
    """The customer's own socket asks, as an attacker with its participant token would."""
    assert call.customer.ws is not None
    await call.customer.ws.send_json({"type": "freeze", "camera": call.camera})
    refused = await call.customer.next_message("error")
    assert (refused["code"], refused.get("ref")) == ("forbidden", "freeze"), refused
    header, _ = await call.freeze()
    await call.customer.ws.send_json({"type": "freeze.end"})
    refused = await call.customer.next_message("error")
    assert (refused["code"], refused.get("ref")) == ("forbidden", "freeze.end"), refused
    # Still frozen: the expert's snapshot is the frozen frame.
    snapshot, _ = await call.snapshot()
    assert snapshot["captured_at"] == header["at"]


async def test_a_camera_not_in_the_call_or_muted_is_refused(call: Call) -> None:
    await call.expert.send_json({"type": "freeze", "camera": 2**40})
    refused = await receive(call.expert, timeout=WAIT_S, skip=NOISE)
    assert (refused["code"], refused.get("ref")) == ("not_found", "freeze"), refused
    assert call.customer.ws is not None
    await call.customer.ws.send_json({"type": "media.mute", "kind": "video", "muted": True})
    async with asyncio.timeout(WAIT_S):  # the server's media plane has it muted
        while not call.server.app[MEDIA].muted(call.camera, "video"):
            await asyncio.sleep(0.02)
    await call.expert.send_json({"type": "freeze", "camera": call.camera})
    refused = await receive(call.expert, timeout=WAIT_S, skip=NOISE)
    assert (refused["code"], refused.get("ref")) == ("conflict", "freeze"), refused
    assert "muted" in refused["message"], refused
    assert not [m for _, m in call.customer.stills if unpack(m)[0]["type"] == "frozen"]


async def test_the_cameras_owner_leaving_ends_it(call: Call) -> None:
    await call.freeze()
    await call.customer.close()  # a phone that left for good
    async with asyncio.timeout(WAIT_S):
        while True:
            message = await receive(call.expert, timeout=WAIT_S)
            if message["type"] == "freeze.ended":
                break
    assert message == {"type": "freeze.ended", "camera": call.camera, "by": None}


async def test_a_resume_sent_while_the_frame_is_taken_shows_nothing(call: Call) -> None:
    """``freeze`` then ``freeze.end`` at once: the frame being taken is never shown,
    and the ``pong`` after them comes after the server is done with both."""
    before = len(call.customer.stills)
    for message in ({"type": "freeze", "camera": call.camera}, {"type": "freeze.end"},
                    {"type": "ping"}):
        await call.expert.send_json(message)
    async with asyncio.timeout(WAIT_S):
        while True:
            msg = await call.expert.receive()
            assert msg.type == aiohttp.WSMsgType.TEXT, "a frozen frame after its resume"
            if msg.json()["type"] == "pong":
                break
            assert msg.json()["type"] in NOISE, msg.json()
    assert len(call.customer.stills) == before
    await call.frames_on()
    snapshot, _ = await call.snapshot()  # live
    assert snapshot["captured_at"] > 0


async def test_a_person_gets_three_freezes_at_once_then_one_every_two_seconds(
        call: Call) -> None:
    """The attack: a technician's or expert's client asking for a frame (a decode and a
    JPEG, sent to everyone) as fast as each one lands."""
    for _ in range(3):
        await call.freeze()
    await call.expert.send_json({"type": "freeze", "camera": call.camera})
    refused = await receive(call.expert, timeout=WAIT_S, skip=NOISE)
    assert (refused["code"], refused.get("ref")) == ("rate_limited", "freeze"), refused
    # Resumed (which costs nothing), the same person on a second connection shares
    # the budget.
    await call.expert.send_json({"type": "freeze.end"})
    ended = await receive(call.expert, timeout=WAIT_S, skip=NOISE)
    assert ended["type"] == "freeze.ended", ended
    second, _ = await call.server.join_call(call.token, call.job_id)
    try:
        await second.send_json({"type": "freeze", "camera": call.camera})
        refused = await receive(second, timeout=WAIT_S, skip=NOISE)
        assert (refused["code"], refused.get("ref")) == ("rate_limited", "freeze"), refused
    finally:
        await second.close()


def test_a_slow_client_is_sent_only_the_newest_frozen_picture() -> None:
    """Frozen pictures a client has not read yet are replaced by a newer one at once
    (there is one freeze at a time); nothing else is dropped."""
    box = Outbox(8)
    for n in range(3):
        box.put({"type": "frozen", "frame": bytes([n])})
        box.put({"type": "pong"})
    waiting = [box._messages.popleft() for _ in range(box.qsize())]
    assert [m.get("frame") for m in waiting] == [None, None, b"\x02", None]
    assert box.coalesced == 2
