"""One participant's incoming track, fanned out to the other participants.

Frames arrive encoded from the receiver's tap and go to each subscriber's bounded
queue as they are: no decoding, no encoding. For video the frames since the last
keyframe are kept (bounded), so a viewer who joins late starts at once from that
keyframe, and so a snapshot can decode the newest picture on demand.

Catching up (``catch_up``): a viewer whose sender starts is handed the cached run,
keyframe first, if that keyframe is at most ``REPLAY_MAX_AGE_S`` old; the viewer's
track paces it (``forward.ForwardTrack``). The publisher is asked for a fresh keyframe
when there is no run, or its keyframe is older than ``FRESH_KEYFRAME_S``: the fresh
keyframe ends the replay, so a viewer reaches live video sooner than the run's age,
and a publisher with a young keyframe is spared one more for every joining viewer.

Nothing of a muted publication is passed on (``set_muted``), whatever the publisher
still sends. Video that cannot decode is never passed on: after frames the receiver
gave up on (a lost packet, ``frames_skipped``) or a mute, nobody gets a frame until
the next keyframe, which is asked for at once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Protocol

from videoassist.errors import Muted, Unavailable
from videoassist.media.counters import MediaCounters
from videoassist.media.frames import EncodedFrame, is_keyframe

if TYPE_CHECKING:
    from aiortc.rtcrtpparameters import RTCRtpCodecParameters

logger = logging.getLogger(__name__)

# Chrome ignores a keyframe request that comes within 300 ms of the previous one.
KEYFRAME_REQUEST_INTERVAL_S = 0.3
# Frames since the last keyframe kept for late viewers and capture; past this the
# cache is dropped and the next viewer or capture asks for a fresh keyframe.
GOP_MAX_FRAMES = 90
GOP_MAX_BYTES = 8 * 1024 * 1024
# A run since a keyframe older than this is not replayed to a viewer that starts:
# paced at twice the publisher's rate, a replay reaches live video after the run's
# age, and a late viewer should not watch more than this of the past.
REPLAY_MAX_AGE_S = 3.0
# A starting viewer's catch-up asks the publisher for a keyframe unless the cached one
# is younger than this (a replay of up to half a second reaches live video within it).
FRESH_KEYFRAME_S = 0.5
# Viewers' bandwidth estimates (REMB) reach the publisher as their lowest, so its
# encoder fits the slowest line; never below this floor, so one viewer on a bad line
# cannot starve the rest (that viewer's own queue drops frames instead).
MIN_VIEWER_ESTIMATE_BPS = 150_000
ESTIMATE_MAX_AGE_S = 5.0      # a viewer's estimate counts this long (Chrome: ~1/s)
ESTIMATE_RESEND_S = 1.0       # tell the publisher again at least this often
ESTIMATE_CHANGE = 0.1         # or at once on a change larger than this


class Subscriber(Protocol):
    """Takes a publication's encoded frames: a viewer's ForwardTrack, or a DecodedFeed."""

    def offer(self, frame: EncodedFrame) -> None: ...

    def discard(self) -> None:
        """Drop what is queued and not yet sent; video then starts at a keyframe."""

    def replay(self, frames: list[EncodedFrame], now: float) -> None:
        """Start from these cached frames, a keyframe first, as of ``now`` (the
        publication's clock)."""

    def end(self) -> None: ...


class Publication:
    def __init__(
        self,
        publication_id: str,
        participant_id: int,
        kind: str,
        request_keyframe: Callable[[], Awaitable[bool]],
        clock: Callable[[], float] = time.monotonic,
        send_estimate: Callable[[int], Awaitable[bool]] | None = None,
        counters: MediaCounters | None = None,
    ) -> None:
        self.id = publication_id
        self.participant_id = participant_id
        self.kind = kind
        self.codec: str | None = None
        self.muted = False  # as the publisher says (media.mute): nothing is passed on
        self._keyframe_needed = False  # video: what came before is missing
        self.codec_parameters: RTCRtpCodecParameters | None = None  # as negotiated
        self._request_keyframe = request_keyframe
        self._send_estimate = send_estimate
        self._estimates: dict[Subscriber, tuple[int, float]] = {}
        self._estimate_sent_at = -1.0
        self.viewer_estimate_bps: int | None = None  # last told to the publisher
        self._clock = clock
        self.subscribers: set[Subscriber] = set()
        self.gop: list[EncodedFrame] = []
        self._gop_bytes = 0
        self._last_request = -1.0
        self._request_pending: asyncio.TimerHandle | None = None
        self._keyframe_waiters: list[asyncio.Future[EncodedFrame]] = []
        self.frames_in = 0
        self.bytes_in = 0
        self.keyframe_requests = 0
        # The router's totals (a publication of its own when it stands alone).
        self.counters = counters if counters is not None else MediaCounters()
        self._received = self.counters.received[kind]
        self.closed = False

    @property
    def log_prefix(self) -> str:
        return f"[participant {self.participant_id} {self.id}]"

    @property
    def clock(self) -> Callable[[], float]:
        """The clock of the frames' ``received`` times."""
        return self._clock

    # -- frames in -------------------------------------------------------------

    def push(self, codec: str, data: bytes, timestamp: int,
             payloads: tuple[bytes, ...] = ()) -> None:
        """The receiver's tap: one encoded frame, on the event loop, and the RTP
        payloads it came in (which forwarding sends on as they are)."""
        if self.closed:
            return
        self.codec = codec
        frame = EncodedFrame(codec, data, timestamp, is_keyframe(codec, data), self._clock(),
                             self.frames_in, payloads)
        if self.frames_in == 0 and self.kind == "video" and not frame.keyframe:
            # A publisher that starts mid-run (a track going on on a new peer
            # connection): viewers cannot start before a keyframe, and a request made
            # before its first packet named no stream.
            self.want_keyframe()
        self.frames_in += 1
        self.bytes_in += len(data)
        self._received.frames += 1
        self._received.bytes += len(data)
        if self.muted:
            return
        if self.kind == "video":
            if self._keyframe_needed:
                if not frame.keyframe:
                    return  # it refers to frames that are missing: it cannot decode
                self._keyframe_needed = False
            self._keep(frame)
        for track in list(self.subscribers):
            track.offer(frame)

    def frames_skipped(self, count: int) -> None:
        """The receiver's tap: ``count`` frames were given up on (a lost packet that was
        not retransmitted in time), so the next frames may not decode."""
        self.counters.skipped_frames += count
        logger.debug("%s gave up on %d frames after a lost packet", self.log_prefix, count)
        if self.kind == "video":
            self._restart_at_keyframe()

    def set_muted(self, muted: bool) -> None:
        """media.mute: pass nothing on while muted; unmuted video starts at a keyframe
        (what came before the mute may not have been passed on)."""
        if muted == self.muted:
            return
        self.muted = muted
        if muted:  # and what viewers have queued, up to seconds of it, is not sent
            for track in list(self.subscribers):
                track.discard()
        if self.kind != "video":
            return
        if muted:
            self._forget_gop()
            for waiter in self._keyframe_waiters:  # a capture in progress
                if not waiter.done():
                    waiter.set_exception(Muted())
            self._keyframe_waiters.clear()
        else:
            self._restart_at_keyframe()

    def _restart_at_keyframe(self) -> None:
        self._forget_gop()
        self._keyframe_needed = True
        self.want_keyframe()

    def _forget_gop(self) -> None:
        self.gop = []
        self._gop_bytes = 0

    def _keep(self, frame: EncodedFrame) -> None:
        if frame.keyframe:
            self.gop = [frame]
            self._gop_bytes = len(frame.data)
            for waiter in self._keyframe_waiters:
                if not waiter.done():
                    waiter.set_result(frame)
            self._keyframe_waiters.clear()
        elif self.gop:
            self.gop.append(frame)
            self._gop_bytes += len(frame.data)
            if len(self.gop) > GOP_MAX_FRAMES or self._gop_bytes > GOP_MAX_BYTES:
                self._forget_gop()

    # -- subscribers -----------------------------------------------------------

    def subscribe(self, track: Subscriber, *, catch_up: bool = True) -> None:
        """Add a subscriber; with ``catch_up`` it is ready and gets the cached frames
        at once, else it calls ``catch_up`` itself when it is (a viewer's sender
        starts only once its connection is up)."""
        self.subscribers.add(track)
        if catch_up:
            self.catch_up(track)

    def catch_up(self, track: Subscriber) -> None:
        """Start a ready subscriber: video from the cached keyframe and the frames
        since, if that keyframe is at most ``REPLAY_MAX_AGE_S`` old, else from the next
        keyframe; that one is asked for unless the cached keyframe is younger than
        ``FRESH_KEYFRAME_S`` (see the module docstring)."""
        if self.kind != "video" or self.closed:
            return
        now = self._clock()
        age = now - self.gop[0].received if self.gop else None
        if age is not None and age <= REPLAY_MAX_AGE_S:
            track.replay(list(self.gop), now)
        if age is None or age > FRESH_KEYFRAME_S:
            self.want_keyframe()

    def unsubscribe(self, track: Subscriber) -> None:
        self.subscribers.discard(track)
        self._estimates.pop(track, None)

    # -- bandwidth -------------------------------------------------------------

    def viewer_estimate(self, viewer: Subscriber, bits_per_second: int) -> None:
        """A viewer's REMB: pass the lowest fresh one on to the publisher."""
        if self._send_estimate is None or self.closed:
            return
        now = self._clock()
        self._estimates[viewer] = (bits_per_second, now)
        for stale in [v for v, (_, at) in self._estimates.items()
                      if now - at > ESTIMATE_MAX_AGE_S]:
            del self._estimates[stale]
        lowest = max(MIN_VIEWER_ESTIMATE_BPS, min(b for b, _ in self._estimates.values()))
        previous = self.viewer_estimate_bps
        if (previous is None or abs(lowest - previous) > previous * ESTIMATE_CHANGE
                or now - self._estimate_sent_at >= ESTIMATE_RESEND_S):
            self.viewer_estimate_bps = lowest
            self._estimate_sent_at = now
            task = asyncio.ensure_future(self._send_estimate(lowest))
            task.add_done_callback(_log_failure)

    # -- keyframes -------------------------------------------------------------

    def want_keyframe(self) -> None:
        """Ask the publisher for a keyframe, at most once per interval (coalesced);
        never while muted (unmuting asks)."""
        if self.kind != "video" or self.closed or self.muted:
            return
        wait = self._last_request + KEYFRAME_REQUEST_INTERVAL_S - self._clock()
        if wait <= 0:
            self._send_request()
        elif self._request_pending is None:
            loop = asyncio.get_running_loop()
            self._request_pending = loop.call_later(wait, self._send_request)

    def _send_request(self) -> None:
        self._request_pending = None
        if self.closed:
            return
        self._last_request = self._clock()
        self.keyframe_requests += 1
        self.counters.keyframe_requests += 1
        task = asyncio.ensure_future(self._request_keyframe())
        task.add_done_callback(_log_failure)

    async def next_keyframe(self, timeout_s: float) -> EncodedFrame:
        """Request a keyframe and wait for it to arrive (``Muted`` if muted)."""
        if self.muted:
            raise Muted()
        future: asyncio.Future[EncodedFrame] = asyncio.get_running_loop().create_future()
        self._keyframe_waiters.append(future)
        self.want_keyframe()
        try:
            async with asyncio.timeout(timeout_s):
                return await future
        finally:
            if future in self._keyframe_waiters:
                self._keyframe_waiters.remove(future)

    def close(self) -> None:
        self.closed = True
        if self._request_pending is not None:
            self._request_pending.cancel()
        for waiter in self._keyframe_waiters:  # a capture in progress: the camera left
            if not waiter.done():
                waiter.set_exception(Unavailable("That camera is not live."))
        self._keyframe_waiters.clear()
        for track in list(self.subscribers):
            track.end()
        self.subscribers.clear()
        self.gop = []


def _log_failure(task: asyncio.Future[bool]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.warning("keyframe request failed: %s", task.exception())
