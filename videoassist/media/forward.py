"""A track that hands encoded frames to an aiortc sender, which packetizes them
without encoding. One per (publication, viewer), with its own bounded queue, so a
slow viewer drops its own frames and never holds up the publisher or the others."""

from __future__ import annotations

import asyncio
import fractions
from typing import Any

import av
from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError

from videoassist.media.frames import EncodedFrame
from videoassist.media.publication import Publication

VIDEO_QUEUE_FRAMES = 60   # two seconds at 30 fps
AUDIO_QUEUE_FRAMES = 50   # one second of 20 ms Opus packets


class ForwardTrack(MediaStreamTrack):
    def __init__(self, publication: Publication, track_id: str) -> None:
        super().__init__()
        self.kind = publication.kind
        self._id = track_id  # aiortc's own RemoteStreamTrack sets its id this way
        self.publication = publication
        size = VIDEO_QUEUE_FRAMES if self.kind == "video" else AUDIO_QUEUE_FRAMES
        self._queue: asyncio.Queue[EncodedFrame | None] = asyncio.Queue(size)
        self._waiting_for_keyframe = self.kind == "video"
        self.forwarded = 0
        self.dropped = 0

    def offer(self, frame: EncodedFrame) -> None:
        """Queue a frame for this viewer (called by the publication, on the loop)."""
        if self.readyState != "live":
            return
        if self._waiting_for_keyframe:
            if not frame.keyframe:
                self.dropped += 1
                return
            self._waiting_for_keyframe = False
        if self._queue.full():
            if self.kind == "video":
                # Behind by a whole queue: skip to the next keyframe rather than
                # show seconds-old video or break the decoder with a gap.
                self.dropped += self._drain() + 1
                self._waiting_for_keyframe = True
                self.publication.want_keyframe()
                return
            self._queue.get_nowait()  # audio: drop the oldest packet
            self.dropped += 1
        self._queue.put_nowait(frame)

    def _drain(self) -> int:
        count = 0
        while not self._queue.empty():
            self._queue.get_nowait()
            count += 1
        return count

    async def recv(self) -> av.Packet[Any]:
        if self.readyState != "live":
            raise MediaStreamError
        frame = await self._queue.get()
        if frame is None:
            self.stop()
            raise MediaStreamError
        self.forwarded += 1
        packet = av.Packet(frame.data)
        packet.pts = frame.timestamp
        packet.time_base = fractions.Fraction(1, frame.clock_rate)
        return packet

    def end(self) -> None:
        """The publication is gone: let the sender finish."""
        self._drain()
        self._queue.put_nowait(None)

    def stop(self) -> None:
        self.publication.unsubscribe(self)
        super().stop()
