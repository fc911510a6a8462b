"""The receiver tap: a receiver's encoded frames handed over instead of decoded.

``tap_receiver``: the receiver puts each re-assembled encoded frame into
``self.__decoder_queue`` (a ``queue.Queue``) for its decoder thread. We replace that
queue, before ``receive()`` starts the thread, with one whose ``put`` hands the frame
to us on the event loop and whose ``get`` parks the thread until the receiver stops,
so nothing is decoded and the track's own queue never grows. It also swaps the
receiver's jitter buffer for a ``PromptJitterBuffer`` (``jitter_buffer``), gives the
receiver a ``_FastReceive`` (``fast_receive``), and gives a video receiver's bandwidth
estimator (``__remote_bitrate_estimator``, a ``RemoteBitrateEstimator``) an incoming
bitrate counter (``incoming_bitrate``) that counts as aiortc's ``RateCounter`` does,
to the same figures and so the same REMBs, without a Python step for every
millisecond between two packets (``_RateCounter``). ``request_keyframe``: the
receiver's private ``_send_rtcp_pli(media_ssrc)``."""

from __future__ import annotations

import bisect
import threading
from collections.abc import Callable
from typing import Any

from aiortc import RTCRtpReceiver
from aiortc.rate import RateCounter, RemoteBitrateEstimator

from videoassist.media.aiortc_hooks.fast_receive import _FAST, _FastReceive
from videoassist.media.aiortc_hooks.internals import (
    _DECODER_QUEUE,
    _ESTIMATOR,
    _JITTER_BUFFER,
    IncompatibleAiortc,
    _names,
)
from videoassist.media.aiortc_hooks.jitter_buffer import PromptJitterBuffer

_STARTED = "_RTCRtpReceiver__started"

FrameSink = Callable[[str, bytes, int], None]
"""Called on the event loop with (codec name, encoded frame data, RTP timestamp)."""
PayloadSink = Callable[[str, bytes, int, tuple[bytes, ...]], None]
"""As ``FrameSink``, and the RTP payloads the frame came in, as received."""
SkipSink = Callable[[int], None]
"""Called on the event loop with how many frames were given up on, before the next
frame goes to the ``FrameSink``."""


class _TapQueue:
    """Stands in for the receiver's decoder queue (see the module docstring)."""

    def __init__(self, sink: FrameSink | None, on_skip: SkipSink | None = None,
                 payload_sink: PayloadSink | None = None) -> None:
        self._sink = sink
        self._payload_sink = payload_sink
        self._on_skip = on_skip
        self._stopped = threading.Event()

    def put(self, item: Any) -> None:
        if item is None:  # the receiver is stopping: release the parked thread
            self._stopped.set()
            return
        codec, frame = item
        self._hand_over(codec.name, frame, frame.timestamp)
        for later in getattr(frame, "following", ()):
            # The receiver mapped the first frame's timestamp only: map the rest alike.
            self._hand_over(codec.name, later, frame.timestamp + (
                (later.rtp_timestamp - frame.rtp_timestamp) & 0xFFFFFFFF))

    def _hand_over(self, codec_name: str, frame: Any, timestamp: int) -> None:
        skipped = getattr(frame, "skipped", 0)
        if skipped and self._on_skip is not None:
            self._on_skip(skipped)
        if self._payload_sink is not None:
            self._payload_sink(codec_name, frame.data, timestamp, frame.payloads)
        elif self._sink is not None:
            self._sink(codec_name, frame.data, timestamp)

    def get(self) -> None:
        self._stopped.wait()


def tap_receiver(receiver: RTCRtpReceiver, sink: FrameSink | None,
                 on_skip: SkipSink | None = None, *,
                 payload_sink: PayloadSink | None = None) -> None:
    """Send this receiver's encoded frames to ``sink`` (or, with their RTP payloads, to
    ``payload_sink``) instead of its decoder, and the number of video frames given up
    on (a lost packet, see ``PromptJitterBuffer``) to ``on_skip`` before the frame that
    follows them."""
    if getattr(receiver, _STARTED, False):
        raise RuntimeError("tap_receiver must run before the receiver starts")
    for attribute in (_DECODER_QUEUE, _JITTER_BUFFER):
        if not hasattr(receiver, attribute):
            raise IncompatibleAiortc(f"RTCRtpReceiver has no {attribute}")
    old = getattr(receiver, _JITTER_BUFFER)
    setattr(receiver, _JITTER_BUFFER, PromptJitterBuffer(
        capacity=old.capacity, is_video=old._is_video))
    setattr(receiver, _DECODER_QUEUE, _TapQueue(sink, on_skip, payload_sink))
    estimator = getattr(receiver, _ESTIMATOR, None)
    if estimator is not None:
        counter = estimator.incoming_bitrate
        estimator.incoming_bitrate = _RateCounter(counter._window_size, counter._scale)
    receiver.__dict__[_FAST] = _FastReceive(receiver)


def _rate_problems() -> list[str]:
    """What ``_RateCounter`` stands in for."""
    problems = []
    if "incoming_bitrate" not in _names(RemoteBitrateEstimator.__init__):
        problems.append("RemoteBitrateEstimator.__init__ no longer sets incoming_bitrate")
    counter = RateCounter(1000, 8000)
    for name in ("_window_size", "_scale", "add", "rate", "reset"):
        if not hasattr(counter, name):
            problems.append(f"rate.RateCounter has no {name}")
    uses = set(_names(RemoteBitrateEstimator.add))
    if not {"incoming_bitrate", "rate", "add", "reset"} <= uses:
        problems.append("RemoteBitrateEstimator.add no longer counts with incoming_bitrate")
    return problems


class _RateCounter:
    """aiortc's ``rate.RateCounter`` (what came in, over a window of 1 ms buckets), to
    the same figures: the window's start (``_origin_ms``) moves on as aiortc's does,
    and what came before it is forgotten, but by the packets kept in arrival-time
    order rather than a step per millisecond (aiortc's ``_erase_old``: 4 to 30 a
    packet at these rates). A time before the window's start (arrival times are the
    wall clock's, and a packet can come in a few ms before the one that started the
    window) counts where aiortc's ring of buckets puts it: that far from the end of
    the window."""

    def __init__(self, window_size: int, scale: int = 8000) -> None:
        self._window_size = window_size
        self._scale = scale
        self.reset()

    def reset(self) -> None:
        self._times: list[int] = []  # arrival times, in order
        self._values: list[int] = []
        self._origin_ms: int | None = None
        self._count = 0
        self._value = 0

    def _erase_old(self, now_ms: int, origin_ms: int) -> None:
        new_origin_ms = now_ms - self._window_size + 1
        if origin_ms < new_origin_ms:
            self._origin_ms = new_origin_ms
            times = self._times
            if times and times[0] < new_origin_ms:
                old = bisect.bisect_left(times, new_origin_ms)
                self._count -= old
                self._value -= sum(self._values[:old])
                del times[:old], self._values[:old]

    def add(self, value: int, now_ms: int) -> None:
        if self._origin_ms is None:
            self._origin_ms = now_ms
        else:
            self._erase_old(now_ms, self._origin_ms)
            if now_ms < self._origin_ms:
                now_ms = self._origin_ms + (now_ms - self._origin_ms) % self._window_size
        times = self._times
        if not times or times[-1] <= now_ms:
            times.append(now_ms)
            self._values.append(value)
        else:
            at = bisect.bisect_right(times, now_ms)
            times.insert(at, now_ms)
            self._values.insert(at, value)
        self._count += 1
        self._value += value

    def rate(self, now_ms: int) -> int | None:
        if self._origin_ms is not None:
            self._erase_old(now_ms, self._origin_ms)
            active_window_size = now_ms - self._origin_ms + 1
            if self._count > 0 and active_window_size > 1:
                return round(self._scale * self._value / active_window_size)
        return None


async def request_keyframe(receiver: RTCRtpReceiver) -> bool:
    """Ask the publisher for a keyframe (RTCP PLI); False if no stream is known yet."""
    sources = receiver.getSynchronizationSources()
    if not sources:
        return False
    newest = max(sources, key=lambda s: s.timestamp)
    await receiver._send_rtcp_pli(newest.source)
    return True
