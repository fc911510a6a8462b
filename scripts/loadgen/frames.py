"""Which video frames crossed a call, when they were sent and when they arrived: the
resilience benchmark's measure of "the first new frame after the network came back".

A ``TaggedCamera`` is the snapshot benchmark's ``Camera`` (a pre-encoded clip in real
time, a keyframe on request) whose every frame ends with 8 bytes: ``VAt``, the
publisher's number and the frame's index in send order. The server forwards encoded
frames byte for byte (docs/protocol.md, Media), so the viewer reads the index back
from what it got and looks up when that frame was sent, in the same process and on
the same clock: no timestamp mapping, no calibration, and a frame that waited out an
outage somewhere (in a stalled server's socket buffer, in its cache of the run since
the last keyframe) is known for the old frame it is. VP8 decoders never read past
the frame's last partition, but only aiortc's tap reads these frames here (nothing
decodes them); the Chromium page of the reload scenario gets an untagged camera.
"""

from __future__ import annotations

import bisect
import struct
import time
from dataclasses import dataclass, field
from typing import Any

import av

from loadgen.media import Camera, CameraClip, TimedTrack
from tests.support import clips
from videoassist.media.frames import is_keyframe

MAGIC = b"VAt"
TAG = struct.Struct(">3sBI")  # magic, publisher, index
MAX_BEHIND_S = 0.25


def skip_missed(track: clips.PacketTrack) -> None:
    """A camera or microphone runs in real time: the frames nobody read while there
    was no connection to send them on are gone, not sent in a burst to the next one
    (a ``PacketTrack`` catches up on its schedule)."""
    start = track._start
    if start is not None:
        behind = time.monotonic() - (start + track.sent * track._interval)
        if behind > MAX_BEHIND_S:
            track._start = start + behind


class LiveAudio(TimedTrack):
    """``loadgen.media``'s Opus clip, in real time across connections (``skip_missed``)."""

    async def recv(self) -> Any:
        skip_missed(self)
        return await super().recv()


def live_audio() -> LiveAudio:
    return LiveAudio("audio", clips.audio_clip(), rate=48_000, step=960, interval=0.02)


def tag_of(data: bytes) -> tuple[int, int] | None:
    """(publisher, index) of a tagged frame, or None for any other frame."""
    if len(data) < TAG.size:
        return None
    magic, publisher, index = TAG.unpack_from(data, len(data) - TAG.size)
    return (publisher, index) if magic == MAGIC else None


class TaggedCamera(Camera):
    """A ``Camera`` whose frames carry their send index; ``sent_at[i]`` is when frame
    ``i`` went to the sender (``time.monotonic``)."""

    def __init__(self, clip: CameraClip, publisher: int) -> None:
        super().__init__(clip)
        self.publisher = publisher
        self.sent_at: list[float] = []

    async def recv(self) -> av.Packet[Any]:
        skip_missed(self)
        packet = await super().recv()
        index = len(self.sent_at)
        self.sent_at.append(time.monotonic())
        tagged = av.Packet(bytes(packet) + TAG.pack(MAGIC, self.publisher, index))
        tagged.pts, tagged.time_base = packet.pts, packet.time_base
        return tagged

    def first_sent_after(self, moment: float) -> int:
        """The index of the first frame sent at or after ``moment``."""
        return bisect.bisect_left(self.sent_at, moment)


@dataclass
class Arrivals:
    """What a viewer got of the others' tagged video (and how much audio), each frame's
    first arrival by (publisher, index). Fed by the keeper's tap, on its loop."""

    video: dict[tuple[int, int], float] = field(default_factory=dict)
    keyframes: set[tuple[int, int]] = field(default_factory=set)
    # (arrival, publisher, index, keyframe) of each tagged frame, in arrival order
    order: list[tuple[float, int, int, bool]] = field(default_factory=list)
    audio: list[float] = field(default_factory=list)  # arrival of each audio frame
    # video without a tag (a browser's): arrival, and the publication that carried it
    untagged: list[tuple[float, str]] = field(default_factory=list)
    last: float = 0.0  # the newest arrival of anything

    def on_frame(self, codec: str, data: bytes, timestamp: int, label: str = "") -> None:
        now = time.monotonic()
        self.last = now
        if codec == "opus":
            self.audio.append(now)
            return
        tag = tag_of(data)
        if tag is None:
            self.untagged.append((now, label))
        elif tag not in self.video:
            self.video[tag] = now
            keyframe = is_keyframe(codec, data)
            if keyframe:
                self.keyframes.add(tag)
            self.order.append((now, *tag, keyframe))

    def first_new(self, camera: TaggedCamera, moment: float, *,
                  keyframe: bool = False) -> float | None:
        """When the first frame of ``camera`` sent at or after ``moment`` arrived (with
        ``keyframe``, the first such keyframe, where a decoder can start); None if none
        did yet."""
        first = camera.first_sent_after(moment)
        order = self.order  # appended to by the loop that taps (maybe another thread)
        # A frame sent after the moment arrived after it: look from there on.
        start = bisect.bisect_left(order, (moment,))
        for at, publisher, index, key in order[start:]:
            if publisher == camera.publisher and index >= first and (key or not keyframe):
                return at
        return None

    def delivered(self, camera: TaggedCamera, start: float, end: float) -> tuple[int, int]:
        """Of the frames ``camera`` sent in [start, end): how many, and how many
        arrived."""
        first, last = camera.first_sent_after(start), camera.first_sent_after(end)
        got = sum((camera.publisher, index) in self.video for index in range(first, last))
        return last - first, got

    def keyframe_arrivals(self, camera: TaggedCamera, start: float, end: float) -> list[float]:
        """When each keyframe of ``camera`` sent in [start, end) arrived, in order."""
        first, last = camera.first_sent_after(start), camera.first_sent_after(end)
        return sorted(self.video[(camera.publisher, index)] for index in range(first, last)
                      if (camera.publisher, index) in self.keyframes)
