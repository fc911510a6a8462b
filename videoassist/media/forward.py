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

That start is a replay, paced (``replay``): the cached keyframe goes out whole at once,
and each frame after it at half its offset from the keyframe as it came to the server,
so at most twice the publisher's rate. Sent in one go, a run of seconds is hundreds of
packets within milliseconds, which overflowed a viewer's socket buffer (issue 19: with
aiortc's 256 KiB, 1,844 packets dropped over 32 late joins, first pictures seconds
late) and would be loss on a phone's link. Frames that arrive meanwhile join the replay's queue,
so the viewer reaches live video after the run's age (at most
``publication.REPLAY_MAX_AGE_S``); a keyframe that arrives meanwhile ends the replay
at once (what was left of it is skipped) and the viewer goes on live from there.

Once the sender has caught up (its queue empty, its loop waiting for the next frame),
a frame goes to it directly (``direct``, set by the ``SlotTrack`` that reads this
track): sent on from the publication's fan-out, without a queue and a task wake-up per
frame and viewer. Whenever the sender cannot take it at once (busy, or its path goes
through TURN) the frame is queued as before, and queued frames always go first."""

from __future__ import annotations

import asyncio
import collections
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

# Three seconds at 30 fps: the whole cached run since a keyframe fits, so a replay
# (whose backlog only shrinks, see ``replay``) never overflows it.
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
        # The replay under way (``replay``): the frames still to send, in order, each
        # due at ``_replay_start`` plus half its offset from ``_replay_origin``.
        self._replay: collections.deque[EncodedFrame] | None = None
        self._replay_start = 0.0
        self._replay_origin = 0.0
        self._wake: asyncio.Future[None] | None = None  # recv waits for the replay
        self.replayed = 0  # frames sent from a replay, the keyframe included
        self.skipped = 0   # frames of a replay a newer keyframe made unnecessary

    def replay(self, frames: list[EncodedFrame], now: float) -> None:
        """Start from the publication's cached run (a keyframe, then the frames since),
        paced: frame ``f`` is due at ``now + (f.received - keyframe.received) / 2``.
        Sent at half their offsets, the frames go out at most at twice the rate they
        came, and the run's age ``a = now - keyframe.received`` is made up in ``a``:
        a frame that arrives ``t`` after ``now`` is due ``(a + t) / 2`` after it,
        which is no later than its arrival from ``t = a`` on, when the replay ends.
        (The backlog, the frames that came and are not yet due, only shrinks: at
        ``now + t`` it is the frames that came in the last ``a - t`` seconds.)"""
        if self.readyState != "live" or not frames:
            return
        self._drop(self._drain())  # nothing is queued before the start; to be sure
        self._replay = collections.deque(frames)
        self._replay_start = now
        self._replay_origin = frames[0].received
        self._waiting_for_keyframe = False
        self._poke()

    def _end_replay(self) -> None:
        """Live from here: what is left of the replay is due now, and goes first."""
        replay, self._replay = self._replay, None
        for frame in replay or ():
            self._queue.put_nowait(frame)
        self._poke()

    def _poke(self) -> None:
        if self._wake is not None and not self._wake.done():
            self._wake.set_result(None)

    def offer(self, frame: EncodedFrame) -> None:
        """Queue a frame for this viewer (called by the publication, on the loop)."""
        if self.readyState != "live" or not self.started:
            return
        if self._waiting_for_keyframe:
            if not frame.keyframe:
                self._drop(1)
                return
            self._waiting_for_keyframe = False
        if self._replay is not None:
            if frame.keyframe:  # a newer keyframe: the rest of the replay is not needed
                self.skipped += len(self._replay)
                self._replay.clear()
                self._end_replay()  # and this keyframe goes as live frames do, below
            elif len(self._replay) >= VIDEO_QUEUE_FRAMES:
                # The sender is behind by a whole queue: as below.
                self._drop(len(self._replay) + 1)
                self._replay = None
                self._poke()
                self._waiting_for_keyframe = True
                self.publication.want_keyframe()
                return
            else:
                self._replay.append(frame)
                self._poke()
                return
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
        if self._replay is not None:
            self._drop(len(self._replay))
            self._replay = None
            self._poke()
        self._drop(self._drain())
        self._waiting_for_keyframe = self.kind == "video"

    def end(self) -> None:
        self._replay = None
        self._poke()
        super().end()

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
        frame = await self._replayed() if self._replay is not None else None
        if frame is None:
            frame = await self._next()
        self._flow.frames += 1
        self._flow.bytes += len(frame.data)
        if frame.payloads:
            return self._forwarded(frame)
        packet = av.Packet(frame.data)
        packet.pts = frame.timestamp
        packet.time_base = self._clock(frame)
        return packet

    async def _replayed(self) -> EncodedFrame | None:
        """The replay's next frame when it is due; None once the replay is over."""
        loop = asyncio.get_running_loop()
        clock = self.publication.clock
        while (replay := self._replay) is not None:
            if self.readyState != "live":
                raise MediaStreamError
            wait: float | None = None
            if replay:
                frame = replay[0]
                due = self._replay_start + (frame.received - self._replay_origin) / 2
                wait = due - clock()
                if wait <= 0:
                    replay.popleft()
                    self.replayed += 1
                    self.forwarded += 1  # as ``_next`` counts what it hands over
                    if due <= frame.received:  # caught up: this frame came no sooner
                        self._end_replay()
                    return frame
            self._wake = wake = loop.create_future()
            timer = None if wait is None else loop.call_later(wait, _resolve, wake)
            try:
                await wake
            finally:
                if timer is not None:
                    timer.cancel()
                self._wake = None
        return None

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


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
