"""Publishers that send a pre-encoded clip, and viewers that count its frames.

Nothing is encoded while the benchmark runs (each clip is encoded once, then cached in
the temp directory) and nothing is decoded but one keyframe per viewer. The relay's
publishers send a ``TimedTrack``; the snapshot benchmark's a ``Camera``, which also
answers keyframe requests, as a browser does.
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import hashlib
import logging
import math
import os
import pickle
import socket
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
from aiortc import RTCPeerConnection
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from loadgen.probes import socket_drops
from tests.support import clips
from videoassist.media import aiortc_hooks
from videoassist.media.frames import is_keyframe

logger = logging.getLogger("bench")

WIDTH, HEIGHT = 1280, 720
CLIP_FRAMES = 120     # 4 s, then the clip repeats (the pts keep growing)
KEYFRAME_EVERY = 60   # 2 s: within the server's cache of frames since a keyframe (90)
FRAME_STEP = clips.VIDEO_RATE // clips.FPS
DESCRIPTION = (f"{WIDTH}x{HEIGHT} {clips.FPS} fps VP8, 1.5 Mbit/s, "
               f"keyframe every {KEYFRAME_EVERY / clips.FPS:g} s")

FrameSink = Callable[[str, bytes, int], None]


def load_video_clip(width: int = WIDTH, height: int = HEIGHT, frames: int = CLIP_FRAMES,
                    keyframe_every: int = KEYFRAME_EVERY) -> tuple[bytes, ...]:
    """A clip of ``clips.pattern``, encoded once and kept in the temp directory across
    runs (by default the relay's 720p clip)."""
    source = Path(clips.__file__).read_bytes()
    key = hashlib.sha256(source + f"{width}x{height}/{frames}/{keyframe_every}".encode())
    path = Path(tempfile.gettempdir()) / f"videoassist-bench-clip-{key.hexdigest()[:16]}.pickle"
    with contextlib.suppress(OSError, pickle.UnpicklingError, EOFError):
        cached = pickle.loads(path.read_bytes())
        if isinstance(cached, tuple) and len(cached) == frames:
            return cached
    logger.info("encoding a %dx%d clip once (cached in %s)", width, height, path)
    clip = clips.video_clip(width, height, frames, keyframe_every)
    partial = path.with_suffix(f".{os.getpid()}")
    partial.write_bytes(pickle.dumps(clip))
    partial.replace(path)
    return clip


class TimedTrack(clips.PacketTrack):
    """A pre-encoded track that notes when each frame went to its sender.

    Frame n has pts n * step and carries the clip's frame n % len(clip), so its index
    can be told from its timestamp on the far side.
    """

    def __init__(self, kind: str, packets: tuple[bytes, ...], *, rate: int, step: int,
                 interval: float) -> None:
        super().__init__(kind, packets, rate=rate, step=step, interval=interval)
        self.send_times: list[float] = []  # monotonic, by frame index

    async def recv(self) -> Any:
        packet = await super().recv()
        self.send_times.append(time.monotonic())
        return packet


def video_track(clip: tuple[bytes, ...]) -> TimedTrack:
    return TimedTrack("video", clip, rate=clips.VIDEO_RATE, step=FRAME_STEP,
                      interval=1 / clips.FPS)


def audio_track() -> TimedTrack:
    return TimedTrack("audio", clips.audio_clip(), rate=48_000, step=960, interval=0.02)


# pattern() moves by 4 levels a frame, modulo 256: frame n + 128 is frame n's picture
# (but for one cell of the barcode), so a clip's second half can follow its own end.
SEAMLESS_FRAMES = 128
# Chrome's encoder ignores a keyframe request within 300 ms of the previous one.
KEYFRAME_ANSWER_INTERVAL_S = 0.3


@dataclass(frozen=True)
class CameraClip:
    frames: tuple[bytes, ...]
    loop_from: int          # after the last frame, play on from this one
    keyframe_every: int     # frames; 0: only the first frame (and on request)


def camera_clip(width: int, height: int, keyframe_every: int) -> CameraClip:
    """A clip for ``Camera``: with a keyframe every ``keyframe_every`` frames, or with
    0, one that loops without any keyframe (its first frame is the only one; the
    loop replays its second half, which shows the first half's pictures again, so
    every looped frame is predicted from the picture it was encoded against, but for
    one barcode cell)."""
    if keyframe_every == 0:
        frames = load_video_clip(width, height, 2 * SEAMLESS_FRAMES, 2 * SEAMLESS_FRAMES)
        return CameraClip(frames, SEAMLESS_FRAMES, 0)
    length = keyframe_every * math.ceil(CLIP_FRAMES / keyframe_every)
    return CameraClip(load_video_clip(width, height, length, keyframe_every), 0,
                      keyframe_every)


class Camera(clips.PacketTrack):
    """A browser's camera as the server sees it: a pre-encoded clip in real time, and
    a keyframe on the next frame when asked (PLI), unless the last answer was less
    than 300 ms ago. After a keyframe, the clip's own interval starts again, as an
    encoder's does after a forced keyframe.

    ``since_keyframe`` is how many frames were sent since the last keyframe, that one
    included: the run the server's capture tap keeps (and decodes) at that moment.
    """

    def __init__(self, clip: CameraClip) -> None:
        super().__init__("video", clip.frames, rate=clips.VIDEO_RATE, step=FRAME_STEP,
                         interval=1 / clips.FPS)
        self.clip = clip
        self.since_keyframe = 0
        self.keyframe_requests = 0    # PLIs received
        self.keyframes_on_request = 0  # of which answered
        self._position = 0            # index in the clip of the next frame
        self._answer_due = False
        self._answered_at = -math.inf

    def keyframe_requested(self) -> None:
        """The sender got a PLI or FIR (``aiortc_hooks.on_keyframe_request``)."""
        self.keyframe_requests += 1
        now = time.monotonic()
        if now - self._answered_at >= KEYFRAME_ANSWER_INTERVAL_S:
            self._answered_at = now
            self._answer_due = True

    async def recv(self) -> av.Packet[Any]:
        if self._start is None:
            self._start = time.monotonic()
        delay = self._start + self.sent * self._interval - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        if self._answer_due:
            self._answer_due = False
            self._position = 0
            self.keyframes_on_request += 1
        data = self.clip.frames[self._position]
        self._position += 1
        if self._position == len(self.clip.frames):
            self._position = self.clip.loop_from
        self.since_keyframe = 1 if is_keyframe("VP8", data) else self.since_keyframe + 1
        packet = av.Packet(data)
        packet.pts = self.sent * self._step
        packet.time_base = fractions.Fraction(1, self._rate)
        self.sent += 1
        return packet


def read_frame_id(data: bytes) -> int:
    """Decode one VP8 keyframe and read its barcode (in an executor)."""
    codec = av.CodecContext.create("vp8", "r")
    codec.thread_count = 1
    for frame in codec.decode(av.Packet(data)):
        return clips.read_id(frame.to_ndarray(format="gray"))
    raise ValueError("the keyframe did not decode")


@dataclass
class Viewer:
    """Which of one publisher's video frames arrived, and when, without decoding them.

    RTP timestamps reach the viewer with an offset of their own (each sender on the way
    adds a random one), so the first keyframe is decoded once to read its barcode, the
    frame's index modulo the clip's length; the newest frame sent with that barcode is
    the one. After that, a frame's index is that one's plus the timestamp difference.
    """

    publisher: TimedTrack
    clip: tuple[bytes, ...]
    arrivals: dict[int, float] = field(default_factory=dict)  # frame index -> monotonic
    unchanged: set[int] = field(default_factory=set)  # frames byte for byte as sent
    frames: int = 0
    audio_frames: int = 0
    unidentified: int = 0
    calibrated: asyncio.Event = field(default_factory=asyncio.Event)
    _origin: tuple[int, int] | None = None  # (RTP timestamp, frame index)
    _calibrating = False
    _pending: list[tuple[int, float, bytes]] = field(default_factory=list)

    def on_frame(self, codec: str, data: bytes, timestamp: int) -> None:
        """The tap's sink, on the event loop."""
        now = time.monotonic()
        if codec == "opus":
            self.audio_frames += 1
            return
        self.frames += 1
        if self._origin is not None:
            self._record(timestamp, now, data)
            return
        self._pending.append((timestamp, now, data))
        if not self._calibrating and codec == "VP8" and is_keyframe(codec, data):
            self._calibrating = True
            sent = len(self.publisher.send_times)
            task = asyncio.ensure_future(self._calibrate(timestamp, now, data, sent))
            task.add_done_callback(_log_failure)

    async def _calibrate(self, timestamp: int, arrived: float, data: bytes, sent: int) -> None:
        loop = asyncio.get_running_loop()
        try:
            frame_id = await loop.run_in_executor(None, read_frame_id, data)
        except (ValueError, av.FFmpegError):
            frame_id = -1
        index = sent - 1 - (sent - 1 - frame_id) % CLIP_FRAMES
        if not 0 <= frame_id < CLIP_FRAMES or not 0 <= index < sent \
                or self.publisher.send_times[index] > arrived:
            self._calibrating = False  # a misread barcode: try the next keyframe
            return
        self._origin = (timestamp, index)
        self.calibrated.set()
        pending, self._pending = self._pending, []
        for item in pending:
            self._record(*item)

    def _record(self, timestamp: int, now: float, data: bytes) -> None:
        assert self._origin is not None
        # A re-encoding sender may round a timestamp by a tick.
        steps = round((timestamp - self._origin[0]) / FRAME_STEP)
        rest = timestamp - self._origin[0] - steps * FRAME_STEP
        index = self._origin[1] + steps
        if abs(rest) > FRAME_STEP // 4 or not 0 <= index < len(self.publisher.send_times):
            self.unidentified += 1
            return
        if index not in self.arrivals:
            self.arrivals[index] = now
            if data == self.clip[index % CLIP_FRAMES]:
                self.unchanged.add(index)

    def window(self, t0: float, t1: float) -> tuple[int, int, list[float], int]:
        """Of the frames sent in [t0, t1): how many, how many arrived, the latency of
        each (ms), how many arrived unchanged."""
        sent = delivered = unchanged = 0
        latencies = []
        for index, sent_at in enumerate(self.publisher.send_times):
            if not t0 <= sent_at < t1:
                continue
            sent += 1
            arrived = self.arrivals.get(index)
            if arrived is not None:
                delivered += 1
                latencies.append((arrived - sent_at) * 1000)
                unchanged += index in self.unchanged
        return sent, delivered, latencies, unchanged


def _log_failure(task: asyncio.Future[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.warning("calibration failed: %r", task.exception())


@dataclass
class FirstFrame:
    """When the first video frame arrived, and whether a decoder could start there.

    With ``until_keyframe``, the first keyframe instead (the first frame a decoder can
    start from), and ``skipped`` counts the frames before it: for a server that
    forwards whatever comes next to a new viewer, as Janus does."""

    until_keyframe: bool = False
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    at: float = 0.0
    keyframe: bool = False
    skipped: int = 0

    def on_frame(self, codec: str, data: bytes, timestamp: int) -> None:
        if codec == "opus" or self.arrived.is_set():
            return
        self.keyframe = is_keyframe(codec, data)
        if self.until_keyframe and not self.keyframe:
            self.skipped += 1
            return
        self.at = time.monotonic()
        self.arrived.set()


@dataclass
class FirstPicture:
    """When the first video picture came out of the decoder of a viewer that receives
    as a browser does: aiortc's own receiver (its jitter buffer, its decoder thread),
    not the tap. A frame a lost packet broke is not a picture, nor is anything before
    a keyframe."""

    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    at: float = 0.0
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def watch(self, pc: RTCPeerConnection) -> None:
        pc.on("track", self._on_track)

    def _on_track(self, track: MediaStreamTrack) -> None:
        if track.kind == "video":
            self._tasks.append(asyncio.create_task(self._read(track)))

    async def _read(self, track: MediaStreamTrack) -> None:
        """Every picture, as a page shows them (aiortc decodes them all anyway, into
        a queue that would grow unread); the first one's time noted."""
        with contextlib.suppress(MediaStreamError):
            while True:
                await track.recv()
                if not self.arrived.is_set():
                    self.at = time.monotonic()
                    self.arrived.set()

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


def ice_sockets(pc: RTCPeerConnection) -> list[Any]:
    """The UDP sockets of a peer connection's ICE transports (asyncio's wrappers)."""
    found: list[Any] = []
    for transceiver in pc.getTransceivers():
        dtls = transceiver.receiver.transport
        if dtls is None:
            continue
        for protocol in dtls.transport._connection._protocols:
            sock = protocol.transport.get_extra_info("socket") if protocol.transport else None
            if sock is not None and all(sock.fileno() != s.fileno() for s in found):
                found.append(sock)
    return found


class ReceiveBuffer:
    """Gives a peer connection's ICE sockets a socket receive buffer of ``size`` bytes
    as soon as they exist (when gathering completes, within ``setLocalDescription``,
    before any media), and reads the datagrams dropped at them for want of room.
    aioice asks for 256 KiB itself; Linux grants twice what is asked (``granted``)."""

    def __init__(self, pc: RTCPeerConnection, size: int) -> None:
        self.size = size
        self.granted: int | None = None
        self._inodes: set[int] = set()
        self._pc = pc
        pc.on("icegatheringstatechange", self._gathered)

    def _gathered(self) -> None:
        if self._pc.iceGatheringState != "complete":
            return
        for sock in ice_sockets(self._pc):
            inode = os.fstat(sock.fileno()).st_ino
            if inode not in self._inodes:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.size)
                self.granted = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
                self._inodes.add(inode)

    def drops(self) -> int:
        """Datagrams dropped so far at the sockets still open."""
        return sum(socket_drops(self._inodes).values())


@dataclass
class PacketCount:
    """RTP packets that reached the viewers' receivers: media and retransmissions
    (RTX), audio and video, each as it came off the wire."""

    packets: int = 0


def count_packets(pc: RTCPeerConnection, count: PacketCount) -> None:
    """Count every RTP packet routed to a receiver of ``pc`` into ``count``.

    aiortc's DTLS transport hands each decrypted RTP packet to
    ``receiver._handle_rtp_packet``, looked up on the receiver for every packet, so
    an attribute of that name on the instance sees each one first. It is set when
    the remote description brings the track, before the transport routes a packet to
    it. (The public ``getStats()`` gives a receiver's media and RTX streams one id,
    so one's count hides the other's.) tests/test_bench.py checks that packets are
    counted, so an aiortc upgrade that moves this shows there."""

    def on_track(track: MediaStreamTrack) -> None:
        receiver = next(t.receiver for t in pc.getTransceivers() if t.receiver.track is track)
        if "_handle_rtp_packet" in vars(receiver):
            return  # counted already (a reused transceiver)
        handle = receiver._handle_rtp_packet

        async def counted(packet: Any, arrival_time_ms: int) -> None:
            count.packets += 1
            await handle(packet, arrival_time_ms=arrival_time_ms)

        receiver._handle_rtp_packet = counted  # type: ignore[method-assign]

    pc.on("track", on_track)


def tap_tracks(pc: RTCPeerConnection, sink: FrameSink) -> None:
    """Hand the encoded frames of every track ``pc`` receives to ``sink``, undecoded."""

    def on_track(track: MediaStreamTrack) -> None:
        receiver = next(t.receiver for t in pc.getTransceivers() if t.receiver.track is track)
        aiortc_hooks.tap_receiver(receiver, sink)

    pc.on("track", on_track)
