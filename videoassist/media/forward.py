"""A track that hands encoded frames to a viewer's sender, which sends them in the RTP
payloads they came in (``aiortc_hooks.PacketSender``): no encoding, and no
packetizing anew. One per (publication, viewer), with its own bounded queue, so a
slow viewer drops its own frames and never holds up the publisher or the others.

A viewer's track takes frames only from its sender's first ``recv()``: aiortc starts
a sender once the viewer's connection is up (ICE and DTLS), often hundreds of
milliseconds after the subscription. Frames queued before then would be stale
when sent, and could fill the queue, so that the viewer then waited for the
publisher's next keyframe (seconds, for a camera that ignores keyframe requests).
At the first ``recv()`` the track starts from the publication's cached keyframe.

Once the sender has caught up (its queue empty, its loop waiting for the next frame),
a frame goes to it directly (``direct``, set by the ``SlotTrack`` that reads this
track): sent on from the publication's fan-out, without a queue and a task wake-up per
frame and viewer. Whenever the sender cannot take it at once (busy, or its path goes
through TURN) the frame is queued as before, and queued frames always go first."""

from __future__ import annotations

import asyncio
import fractions
import logging
from collections.abc import Callable
from typing import Any, Generic, TypeVar

import av
from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError

from videoassist.media.aiortc_hooks import ForwardedFrame
from videoassist.media.frames import EncodedFrame
from videoassist.media.publication import GOP_MAX_FRAMES, Publication

logger = logging.getLogger(__name__)

# Three seconds at 30 fps: the whole cached run since a keyframe fits, and a sender
# flushes that run in one go (packetizing never waits), so a starting viewer never
# overflows its own queue.
VIDEO_QUEUE_FRAMES = GOP_MAX_FRAMES
AUDIO_QUEUE_FRAMES = 50   # one second of 20 ms Opus packets


Item = TypeVar("Item")


class QueuedTrack(MediaStreamTrack, Generic[Item]):
    """A track an aiortc sender reads from a bounded queue the media plane fills;
    ``end()`` lets the sender finish. Counts what it hands over and what it drops."""

    def __init__(self, kind: str, track_id: str, size: int) -> None:
        super().__init__()
        self.kind = kind
        self._id = track_id  # aiortc's own RemoteStreamTrack sets its id this way
        self._queue: asyncio.Queue[Item | None] = asyncio.Queue(size)
        self.forwarded = 0
        self.dropped = 0

    async def _next(self) -> Item:
        if self.readyState != "live":
            raise MediaStreamError
        item = await self._queue.get()
        if item is None:
            self.stop()
            raise MediaStreamError
        self.forwarded += 1
        return item

    def _drain(self) -> int:
        count = 0
        while not self._queue.empty():
            self._queue.get_nowait()
            count += 1
        return count

    def end(self) -> None:
        """The source is gone: let the reader finish."""
        self._drain()
        self._queue.put_nowait(None)

    def stop(self) -> None:
        """Unsubscribed: a reader waiting for the next item gets MediaStreamError."""
        super().stop()
        self.end()


class ForwardTrack(QueuedTrack[EncodedFrame]):
    def __init__(self, publication: Publication, track_id: str) -> None:
        size = VIDEO_QUEUE_FRAMES if publication.kind == "video" else AUDIO_QUEUE_FRAMES
        super().__init__(publication.kind, track_id, size)
        self.publication = publication
        self._flow = publication.counters.forwarded[publication.kind]
        self._waiting_for_keyframe = self.kind == "video"
        self.started = False  # the sender has asked for a frame
        self._time_base: fractions.Fraction | None = None  # 1 / the codec's clock rate
        # Takes a frame for the sender at once, or says False (see the module docstring).
        self.direct: Callable[[ForwardedFrame], bool] | None = None

    def offer(self, frame: EncodedFrame) -> None:
        """Queue a frame for this viewer (called by the publication, on the loop)."""
        if self.readyState != "live" or not self.started:
            return
        if self._waiting_for_keyframe:
            if not frame.keyframe:
                self._drop(1)
                return
            self._waiting_for_keyframe = False
        if self._queue.full():
            if self.kind == "video":
                # Behind by a whole queue: skip to the next keyframe rather than
                # show seconds-old video or break the decoder with a gap.
                self._drop(self._drain() + 1)
                self._waiting_for_keyframe = True
                self.publication.want_keyframe()
                return
            self._queue.get_nowait()  # audio: drop the oldest packet
            self._drop(1)
        elif (self.direct is not None and self._queue.empty() and frame.payloads
              and self.direct(self._forwarded(frame))):
            self._count(frame)
            return
        self._queue.put_nowait(frame)

    def discard(self) -> None:
        """The publisher muted: what is queued is not sent; video restarts at a keyframe."""
        self._drop(self._drain())
        self._waiting_for_keyframe = self.kind == "video"

    def _drop(self, frames: int) -> None:
        self.dropped += frames
        self._flow.dropped += frames

    async def recv(self) -> ForwardedFrame | av.Packet[Any]:  # type: ignore[override]
        """The next frame: its RTP payloads as they came in, which the slot's sender
        sends on as they are (``aiortc_hooks.PacketSender``); a frame that came
        otherwise (none does but in tests) as an ``av.Packet`` to packetize."""
        if not self.started:  # the viewer's connection is up: start from a keyframe
            self.started = True
            self.publication.catch_up(self)
        frame = await self._next()
        self._flow.frames += 1
        self._flow.bytes += len(frame.data)
        if frame.payloads:
            return self._forwarded(frame)
        packet = av.Packet(frame.data)
        packet.pts = frame.timestamp
        packet.time_base = self._clock(frame)
        return packet

    def _clock(self, frame: EncodedFrame) -> fractions.Fraction:
        time_base = self._time_base
        if time_base is None:
            time_base = self._time_base = fractions.Fraction(1, frame.clock_rate)
        return time_base

    def _forwarded(self, frame: EncodedFrame) -> ForwardedFrame:
        return ForwardedFrame(frame.codec, frame.data, frame.payloads, frame.timestamp,
                              self._clock(frame))

    def _count(self, frame: EncodedFrame) -> None:
        """A frame handed to the sender directly, counted as ``recv`` counts one."""
        self.forwarded += 1
        self._flow.frames += 1
        self._flow.bytes += len(frame.data)

    def stop(self) -> None:
        self.direct = None
        self.publication.unsubscribe(self)
        super().stop()
