"""Camera stills and media modes (docs/protocol.md, "Degrading"): real WebSocket clients
through the real server. A still is one binary frame (2-byte header length, JSON
header, JPEG); the server checks it whole, keeps the newest per sender in memory only,
relays it to everyone else, and acknowledges it to the sender. Every refusal has its
attack here: each bad frame gets its own clear error, and reaches nobody."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import aiohttp
import cv2
import numpy as np
import pytest

from tests.support.peers import MediaClient
from tests.support.server import Server, ServerFactory, leave, receive, two_parties
from videoassist.signalling.outbox import Outbox
from videoassist.signalling.stills import Latest, Still, pack

WAIT_S = 5.0
CANARY = b"still-canary-7f3e9a"


def jpeg(width: int = 640, height: int = 480, comment: bytes = CANARY) -> bytes:
    """A real JPEG of that size (a gradient with a square), with ``comment`` in a COM
    segment right after its start marker."""
    image = np.zeros((height, width, 3), np.uint8)
    image[:, :, 1] = np.linspace(0, 255, width, dtype=np.uint8)
    cv2.rectangle(image, (width // 4, height // 4), (width // 2, height // 2), (0, 0, 255), -1)
    ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 80])
    assert ok
    data = encoded.tobytes()
    return data[:2] + comment_segment(comment) + data[2:] if comment else data


def comment_segment(text: bytes) -> bytes:
    return b"\xff\xfe" + struct.pack(">H", len(text) + 2) + text


def padded(frame_bytes: int, seq: int = 1) -> bytes:
    """A valid still frame of exactly ``frame_bytes`` bytes: comments pad its JPEG."""
    base = jpeg(64, 48, comment=b"")
    header = {"type": "still", "seq": seq, "width": 64, "height": 48}
    missing = frame_bytes - len(pack(header, base))
    pads = b""
    while missing > 0:
        chunk = min(missing, 65535 + 2)  # a segment holds 65533 bytes of text at most
        if missing - chunk in (1, 2, 3):  # keep the last segment at least 4 bytes long
            chunk -= 4
        pads += comment_segment(b"x" * (chunk - 4))
        missing -= chunk
    frame = pack(header, base[:2] + pads + base[2:])
    assert len(frame) == frame_bytes
    return frame


def still(seq: int = 1, width: int = 640, height: int = 480, body: bytes | None = None,
          **header: Any) -> bytes:
    return pack({"type": "still", "seq": seq, "width": width, "height": height, **header},
                jpeg(width, height) if body is None else body)


def unpack(frame: bytes) -> tuple[dict[str, Any], bytes]:
    (length,) = struct.unpack_from(">H", frame)
    return json.loads(frame[2:2 + length]), frame[2 + length:]


async def next_frame(ws: aiohttp.ClientWebSocketResponse) -> aiohttp.WSMessage:
    return await ws.receive(timeout=WAIT_S)


async def binary(ws: aiohttp.ClientWebSocketResponse) -> tuple[dict[str, Any], bytes]:
    msg = await next_frame(ws)
    assert msg.type == aiohttp.WSMsgType.BINARY, (msg.type, msg.data)
    return unpack(msg.data)


async def quiet(ws: aiohttp.ClientWebSocketResponse) -> None:
    """Nothing waits for this client: a ping sent now is answered next."""
    await ws.send_json({"type": "ping"})
    msg = await next_frame(ws)
    assert msg.type == aiohttp.WSMsgType.TEXT and msg.json() == {"type": "pong"}, (
        msg.type, msg.data)


async def call(server: Server) -> tuple[aiohttp.ClientWebSocketResponse,
                                        aiohttp.ClientWebSocketResponse, int, str, int]:
    """(the expert's socket, the customer's, the customer's id, the staff token, the
    job id), both in the call, every joining message read."""
    staff_token, customer_token, job_id = await two_parties(server)
    expert, _ = await server.join_call(staff_token, job_id)
    customer, joined = await server.join_call(customer_token)
    await receive(expert)  # participant.joined
    return expert, customer, joined["you"]["id"], staff_token, job_id


def holding(root: Path, data: bytes) -> list[Path]:
    """The files under ``root`` that hold ``data``."""
    return [p for p in root.rglob("*") if p.is_file() and data in p.read_bytes()]


async def test_a_still_reaches_the_others_whole_and_the_sender_hears_it_went(
        server: Server) -> None:
    expert, customer, customer_id, staff_token, job_id = await call(server)
    await customer.send_json({"type": "media.mode", "mode": "stills",
                              "reason": "packet_loss", "kbps": 240, "loss": 0.11})
    mode = await receive(expert)
    assert {k: v for k, v in mode.items() if k != "since"} == {
        "type": "media.mode", "participant": customer_id, "mode": "stills",
        "reason": "packet_loss", "kbps": 240, "loss": 0.11}
    assert abs(mode["since"] - server.clock()) < 5
    picture = jpeg()
    before = server.clock()
    await customer.send_bytes(still(7, body=picture))
    header, relayed = await binary(expert)
    assert relayed == picture
    assert {k: v for k, v in header.items() if k != "at"} == {
        "type": "still", "from": customer_id, "seq": 7, "width": 640, "height": 480}
    assert before <= header["at"] <= server.clock()
    # The first of the two a sender may send at once: the next may go now.
    assert await receive(customer) == {"type": "still.relayed", "seq": 7, "viewers": 1,
                                    "next_in_s": 0}

    # Someone joining later is told the mode, then given the newest still.
    other, _ = await server.join_call(staff_token, job_id)
    late = await receive(other)
    assert late == mode
    header, relayed = await binary(other)
    assert (header["from"], header["seq"], relayed) == (customer_id, 7, picture)
    await quiet(other)

    # Back to video: the others are told; a late joiner gets the mode, no still.
    await receive(expert)  # participant.joined
    await customer.send_json({"type": "media.mode", "mode": "video", "reason": "link_ok",
                              "kbps": 1800, "loss": 0.0})
    assert (await receive(expert))["mode"] == "video"
    assert (await receive(other))["mode"] == "video"
    third, _ = await server.join_call(staff_token, job_id)
    assert (await receive(third))["mode"] == "video"
    await quiet(third)

    # Kept in memory only: nothing of the still was written anywhere.
    for ws in (expert, customer, other, third):
        await leave(ws)
    assert holding(Path(server.settings.data_dir), CANARY) == []


def test_a_slow_viewer_is_sent_only_the_newest_still() -> None:
    """Stills a viewer has not read yet are replaced by a newer one of the same sender
    at once, full outbox or not; nothing else is dropped."""
    box = Outbox(8)
    for seq in range(5):
        box.put({"type": "still", "from": 2, "frame": bytes([seq])})
        box.put({"type": "still", "from": 3, "frame": bytes([10 + seq])})
        box.put({"type": "pong"})
    waiting = [box._messages.popleft() for _ in range(box.qsize())]
    assert [m.get("frame") for m in waiting] == [None] * 4 + [b"\x04", b"\x0e", None]


BAD_FRAMES: list[tuple[str, bytes, str, str]] = [
    ("empty", b"", "bad_request", "header's length"),
    ("one byte", b"\x00", "bad_request", "header's length"),
    ("header past the frame", struct.pack(">H", 500) + b"{}", "bad_request", "within the frame"),
    ("header too long", struct.pack(">H", 2000) + b" " * 2000, "bad_request", "2 to 1024"),
    ("header not JSON", struct.pack(">H", 5) + b"{oops" + jpeg(), "bad_request", "not valid JSON"),
    ("header not UTF-8", struct.pack(">H", 2) + b"\xff\xfe" + jpeg(), "bad_request",
     "not valid JSON"),
    ("header a list", struct.pack(">H", 3) + b"[1]" + jpeg(), "bad_request", "JSON object"),
    ("another type", pack({"type": "chat.message", "seq": 1}, jpeg()), "bad_request",
     "of type 'still'"),
    ("no seq", pack({"type": "still", "width": 640, "height": 480}, jpeg()), "bad_request",
     "'seq'"),
    ("negative seq", still(-1), "bad_request", "'seq'"),
    ("width a string", pack({"type": "still", "seq": 1, "width": "640", "height": 480},
                            jpeg()), "bad_request", "16 to 2048"),
    ("width true", pack({"type": "still", "seq": 1, "width": True, "height": 480}, jpeg()),
     "bad_request", "16 to 2048"),
    ("too small", still(1, 15, 15, body=jpeg(15, 15)), "bad_request", "16 to 2048"),
    ("too large", still(1, 2049, 16, body=b"\xff\xd8\xff\xd9"), "bad_request", "16 to 2048"),
    ("not a JPEG", still(1, body=b"\x89PNG\r\n\x1a\n" + b"\x00" * 100), "bad_request",
     "start marker"),
    ("cut short", still(1, body=jpeg()[:-100]), "bad_request", "end marker"),
    ("a JPEG of another size", still(1, 800, 600, body=jpeg(640, 480)), "bad_request",
     "640x480, not the 800x600"),
    ("no frame header", still(1, body=b"\xff\xd8" + comment_segment(b"hi") + b"\xff\xda"
                              + b"\x00\x02" + b"\xff\xd9"), "bad_request", "no frame header"),
    ("no scan", still(1, body=b"\xff\xd8" + comment_segment(b"hello") + b"\xff\xd9"),
     "bad_request", "no picture data"),
    ("a segment past the end", still(1, body=b"\xff\xd8\xff\xe0\x7f\xff\x00\x00\xff\xd9"),
     "bad_request", "runs past its end"),
    ("garbage between segments", still(1, body=b"\xff\xd8\x00\x00\x00\x00\xff\xd9"),
     "bad_request", "does not start with a marker"),
]


async def test_each_bad_still_is_refused_with_a_clear_error_and_reaches_nobody(
        server_factory: ServerFactory) -> None:
    server = await server_factory(still_min_interval_s=0)
    expert, customer, _, _, _ = await call(server)
    for seq, (name, frame, code, words) in enumerate(BAD_FRAMES):
        await customer.send_bytes(frame)
        error = await receive(customer)
        assert (error["type"], error["code"], error["ref"]) == ("error", code, "still"), (
            name, error)
        assert words in error["message"], (name, error)
        await quiet(expert)  # nothing was relayed
        # The connection lives, and a good still goes through after it.
        await customer.send_bytes(still(1000 + seq))
        assert (await binary(expert))[0]["seq"] == 1000 + seq, name
        assert (await receive(customer))["type"] == "still.relayed", name
    await leave(expert)
    await leave(customer)


async def test_a_still_of_the_largest_size_is_taken_one_byte_more_is_too_large(
        server_factory: ServerFactory) -> None:
    limit = 20_000
    server = await server_factory(still_max_bytes=limit, still_min_interval_s=0)
    expert, customer, _, _, _ = await call(server)
    await customer.send_bytes(padded(limit, seq=1))
    header, _ = await binary(expert)
    assert header["seq"] == 1
    assert (await receive(customer))["type"] == "still.relayed"
    await customer.send_bytes(padded(limit + 1, seq=2))
    error = await receive(customer)
    assert (error["code"], error["ref"], error["seq"]) == ("too_large", "still", 2), error
    assert "at most 20000 bytes" in error["message"]
    await quiet(expert)
    await leave(expert)
    await leave(customer)


def test_a_sender_has_two_stills_at_once_then_one_per_interval() -> None:
    """``Latest``'s bucket, on explicit times: two at once; the third waits what one
    interval refills; a sender that paces itself slower than the interval is never
    told to wait (``next_in_s`` 0)."""
    latest, interval = Latest(), 0.5

    def take(sender: int, now: float) -> float:
        """Send at ``now`` (it must be allowed); the wait the acknowledgement gives."""
        assert latest.wait_s(sender, now, interval) == 0, now
        latest.keep(Still(sender, 1, 640, 480, 0.0, b""), now, interval)
        return latest.wait_s(sender, now, interval)

    assert take(1, 10.0) == 0  # one left
    assert take(1, 10.0) == pytest.approx(0.5)  # none left: one refills in 0.5 s
    assert latest.wait_s(1, 10.2, interval) == pytest.approx(0.3)
    assert take(1, 10.5) == pytest.approx(0.5)  # the refilled one, taken
    assert latest.wait_s(2, 10.5, interval) == 0  # senders apart
    for now in (20.0, 20.8, 21.6, 22.4):  # the web client's 0.8 s
        assert take(1, now) == 0
    latest.forget(1)
    assert take(1, 22.5) == 0 and take(1, 22.5) == pytest.approx(0.5)  # anew
    assert latest.wait_s(1, 23.0, 0) == 0  # no interval: no limit


async def test_stills_past_the_bucket_are_refused(server_factory: ServerFactory) -> None:
    """Two stills at once go through, the second's acknowledgement saying how long
    until the next may; a third at once is refused, saying the same. (An interval of
    60 s, so that nothing refills meanwhile however slow the machine.)"""
    server = await server_factory(still_min_interval_s=60)
    expert, customer, _, _, _ = await call(server)
    for seq in (1, 2):
        await customer.send_bytes(still(seq))
        assert (await binary(expert))[0]["seq"] == seq
        relayed = await receive(customer)
        assert (relayed["type"], relayed["seq"]) == ("still.relayed", seq), relayed
        if seq == 1:
            assert relayed["next_in_s"] == 0, relayed
    assert 50 < relayed["next_in_s"] <= 60, relayed
    await customer.send_bytes(still(3))
    error = await receive(customer)
    assert (error["code"], error["ref"], error["seq"]) == ("rate_limited", "still", 3), error
    assert "at most 2 at once and one every 60 s on average" in error["message"], error
    await quiet(expert)
    await leave(expert)
    await leave(customer)
    # With no interval, any number go through: the interval, not anything else,
    # refused it. (Each is awaited at the expert: a still sent before the one waiting
    # for a client has left replaces it there, as signalling.outbox says.)
    server = await server_factory(still_min_interval_s=0)
    expert, customer, _, _, _ = await call(server)
    for seq in (1, 2, 3):
        await customer.send_bytes(still(seq))
        assert (await binary(expert))[0]["seq"] == seq
        relayed = await receive(customer)
        assert (relayed["type"], relayed["seq"], relayed["next_in_s"]) == (
            "still.relayed", seq, 0), relayed
    await leave(expert)
    await leave(customer)


async def test_a_muted_cameras_stills_are_refused(server: Server) -> None:
    staff_token, customer_token, job_id = await two_parties(server)
    expert, _ = await server.join_call(staff_token, job_id)
    customer = await MediaClient(server, customer_token, audio=False).start()
    assert customer.ws is not None
    try:
        await customer.ws.send_json({"type": "media.mute", "kind": "video", "muted": True})
        await customer.ws.send_bytes(still(1))
        error = await customer.next_message("error")
        assert (error["code"], error["ref"], error["seq"]) == ("conflict", "still", 1), error
        assert "camera is muted" in error["message"]
        await customer.ws.send_json({"type": "media.mute", "kind": "video", "muted": False})
        await customer.ws.send_bytes(still(2))
        assert (await customer.next_message("still.relayed"))["seq"] == 2
    finally:
        await customer.close()
        await leave(expert)


@pytest.mark.parametrize("message, words", [
    ({"mode": "hd", "reason": "link_ok"}, "'mode' is one of video, reduced, stills"),
    ({"mode": "stills", "reason": "because"}, "'reason' is one of"),
    ({"mode": "stills", "reason": "low_bandwidth", "kbps": -1}, "'kbps'"),
    ({"mode": "stills", "reason": "low_bandwidth", "kbps": 2.5}, "'kbps'"),
    ({"mode": "stills", "reason": "packet_loss", "loss": 1.5}, "'loss'"),
    ({"mode": "stills", "reason": "packet_loss", "loss": "10%"}, "'loss'"),
])
async def test_a_bad_media_mode_is_refused_and_not_relayed(
        server: Server, message: dict[str, Any], words: str) -> None:
    expert, customer, _, _, _ = await call(server)
    await customer.send_json({"type": "media.mode", **message})
    error = await receive(customer)
    assert (error["code"], error["ref"]) == ("bad_request", "media.mode"), error
    assert words in error["message"], error
    await quiet(expert)
    await leave(expert)
    await leave(customer)


async def test_a_snapshot_in_stills_mode_is_of_the_newest_still(server: Server) -> None:
    """In stills mode the video is stale (here: there is none at all): a snapshot takes
    the sender's newest still, at its size; out of stills mode, the video as ever."""
    expert, customer, customer_id, _, _ = await call(server)
    await customer.send_bytes(still(1, 800, 600, body=jpeg(800, 600)))
    await binary(expert)
    await receive(customer)  # still.relayed
    request = {"type": "snapshot.request", "camera": customer_id, "shapes": []}
    # A still, but not in stills mode: the camera's video is what a snapshot takes.
    await expert.send_json({**request, "request": "a"})
    error = await receive(expert)
    assert (error["code"], error["request"]) == ("not_found", "a"), error
    await customer.send_json({"type": "media.mode", "mode": "stills", "reason": "low_bandwidth",
                              "kbps": 90, "loss": None})
    await receive(expert)  # media.mode
    await expert.send_json({**request, "request": "b"})
    saved = await receive(expert)
    assert saved["type"] == "snapshot.saved", saved
    assert (saved["request"], saved["snapshot"]["width"], saved["snapshot"]["height"]) == (
        "b", 800, 600)
    stored = await server.store.snapshots.get(saved["snapshot"]["id"])
    assert stored.camera.participant_id == customer_id
    await leave(expert)
    await leave(customer)
