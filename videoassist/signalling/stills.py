"""Camera stills: what a phone on a thin link sends instead of video (docs/protocol.md,
"Stills").

A still travels over the signalling socket as one binary frame: a 2-byte big-endian
header length, the header (a JSON object, UTF-8), then the JPEG. ``read`` checks a
client's frame whole before anything is relayed: the header's fields, the size of
the frame, that the bytes are one JPEG (SOI ... EOI) and that the size its frame
header (SOF) says is the one the header says. Nothing is decoded and nothing is
written anywhere: the call keeps each sender's newest still in memory (``Latest``),
for those who join later and for snapshots, and forgets it with the sender.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from typing import Any

from videoassist.errors import BadRequest, PayloadTooLarge

MIN_SIDE = 16
MAX_SIDE = 2048
MAX_HEADER_BYTES = 1024
MAX_SEQ = 2**53 - 1
# JPEG markers whose segment holds the picture's size: the start-of-frame markers of
# every coding (baseline, progressive, lossless, arithmetic), not DHT (C4), JPG (C8)
# or DAC (CC).
_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
# Markers without a length: TEM and the restart markers (inside scans only, but harmless).
_BARE = {0x01, *range(0xD0, 0xD8)}


@dataclass(frozen=True)
class Still:
    """One still as the server relays it."""

    sender: int  # participant id
    seq: int  # the sender's number for it
    width: int
    height: int
    at: float  # Unix seconds when the server received it
    jpeg: bytes

    def header(self) -> dict[str, Any]:
        return {"type": "still", "from": self.sender, "seq": self.seq,
                "width": self.width, "height": self.height, "at": self.at}

    def frame(self) -> bytes:
        """The binary frame the others get: the header with ``from`` and ``at``."""
        return pack(self.header(), self.jpeg)


@dataclass(frozen=True)
class Sent:
    """A client's still, checked."""

    seq: int
    width: int
    height: int
    jpeg: bytes


def pack(header: dict[str, Any], jpeg: bytes) -> bytes:
    """A still frame: the header's length, the header, the JPEG."""
    raw = json.dumps(header, separators=(",", ":")).encode()
    return struct.pack(">H", len(raw)) + raw + jpeg


@dataclass(frozen=True)
class Header:
    """What a still's header says, and where its JPEG starts."""

    seq: int
    width: int
    height: int
    start: int


def read(frame: bytes, head: Header, max_bytes: int) -> Sent:
    """Check the rest of a client's still frame, whose header ``header(frame)`` read;
    ``BadRequest`` (or ``PayloadTooLarge``) names what is wrong with it (the caller
    answers it with the header's ``seq``)."""
    if len(frame) > max_bytes:
        raise PayloadTooLarge(f"A still must be at most {max_bytes} bytes, header "
                              "included.")
    jpeg = frame[head.start:]
    size = jpeg_size(jpeg)
    if size != (head.width, head.height):
        raise BadRequest(f"The JPEG is {size[0]}x{size[1]}, not the {head.width}x"
                         f"{head.height} its header says.")
    return Sent(head.seq, head.width, head.height, jpeg)


def header(frame: bytes) -> Header:
    """A still's header; ``BadRequest`` names what is wrong with it."""
    if len(frame) < 2:
        raise BadRequest("A still starts with its header's length (2 bytes, big-endian).")
    (length,) = struct.unpack_from(">H", frame)
    if not 2 <= length <= MAX_HEADER_BYTES or 2 + length > len(frame):
        raise BadRequest(f"A still's header is 2 to {MAX_HEADER_BYTES} bytes, within the "
                         "frame.")
    try:
        header = json.loads(frame[2:2 + length].decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise BadRequest("A still's header is not valid JSON.") from None
    if not isinstance(header, dict) or header.get("type") != "still":
        raise BadRequest("A still's header is a JSON object of type 'still'.")
    seq = _whole(header.get("seq"), 0, MAX_SEQ)
    if seq is None:
        raise BadRequest("A still's 'seq' is a non-negative whole number.")
    width = _whole(header.get("width"), MIN_SIDE, MAX_SIDE)
    height = _whole(header.get("height"), MIN_SIDE, MAX_SIDE)
    if width is None or height is None:
        raise BadRequest(f"A still's 'width' and 'height' are whole numbers of pixels, "
                         f"{MIN_SIDE} to {MAX_SIDE}.")
    return Header(seq, width, height, 2 + length)


def _whole(value: object, low: int, high: int) -> int | None:
    """The value if it is a whole number from ``low`` to ``high``, else None."""
    if isinstance(value, int) and not isinstance(value, bool) and low <= value <= high:
        return value
    return None


def jpeg_size(jpeg: bytes) -> tuple[int, int]:
    """(width, height) from a JPEG's frame header; ``BadRequest`` unless the bytes are
    one whole JPEG: SOI, segments up to a frame header and a scan, EOI last."""
    if len(jpeg) < 4 or jpeg[:2] != b"\xff\xd8":
        raise BadRequest("A still is a JPEG: it must start with the JPEG start marker.")
    if jpeg[-2:] != b"\xff\xd9":
        raise BadRequest("The JPEG is cut short: it does not end with its end marker.")
    at, size = 2, None
    while at + 4 <= len(jpeg):
        if jpeg[at] != 0xFF:
            raise BadRequest("The JPEG is malformed: a segment does not start with a marker.")
        marker = jpeg[at + 1]
        if marker == 0xFF:  # fill byte
            at += 1
            continue
        if marker in _BARE:
            at += 2
            continue
        if marker == 0xDA:  # start of scan: the size must be known by now
            break
        (length,) = struct.unpack_from(">H", jpeg, at + 2)
        if length < 2 or at + 2 + length > len(jpeg):
            raise BadRequest("The JPEG is malformed: a segment runs past its end.")
        if marker in _SOF:
            if length < 7:
                raise BadRequest("The JPEG is malformed: its frame header is too short.")
            height, width = struct.unpack_from(">HH", jpeg, at + 5)
            size = (width, height)
        at += 2 + length
    else:
        raise BadRequest("The JPEG is malformed: it has no picture data (no scan).")
    if size is None or 0 in size:
        raise BadRequest("The JPEG is malformed: it has no frame header with its size.")
    return size


# Stills one sender may send back to back; on average one per interval
# (VIDEOASSIST_STILL_MIN_INTERVAL_S). Two, so that a still a lossy link made late (a
# TCP retransmission) and the next one, sent as soon as the late one was acknowledged,
# both go through: the sender need not wait the interval again after the
# acknowledgement, which would add it to the interval its viewers see.
STILLS_AT_ONCE = 2


class Latest:
    """The newest still of each sender in a call, in memory only, and how many stills
    each sender may send now (a token bucket: STILLS_AT_ONCE at once, refilled one per
    interval; monotonic seconds)."""

    def __init__(self) -> None:
        self._by_sender: dict[int, Still] = {}
        # By sender: the stills it could send, and when (monotonic seconds) that held.
        self._credit: dict[int, tuple[float, float]] = {}

    def _available(self, sender: int, now: float, interval_s: float) -> float:
        credit, at = self._credit.get(sender, (STILLS_AT_ONCE, now))
        if interval_s <= 0:
            return STILLS_AT_ONCE
        return min(float(STILLS_AT_ONCE), credit + (now - at) / interval_s)

    def wait_s(self, sender: int, now: float, interval_s: float) -> float:
        """How long the sender must wait before its next still (0: it may send now;
        a millionth of a still short counts as none, against rounding)."""
        missing = 1 - self._available(sender, now, interval_s)
        return 0.0 if missing <= 1e-6 else missing * interval_s

    def keep(self, still: Still, now: float, interval_s: float) -> None:
        """Keep a still the sender was allowed (``wait_s`` was 0): it takes one."""
        self._by_sender[still.sender] = still
        self._credit[still.sender] = (self._available(still.sender, now, interval_s) - 1, now)

    def get(self, sender: int) -> Still | None:
        return self._by_sender.get(sender)

    def forget(self, sender: int) -> None:
        self._by_sender.pop(sender, None)
        self._credit.pop(sender, None)
