"""Synthetic media for real aiortc peers: pre-encoded, so the load stays small.

Video frames carry their id as a barcode (``draw_id``/``read_id``) so a viewer can
tell which frame it got, after the server forwarded it, without trusting
timestamps. Clips are encoded once per process and sent as ``av.Packet``s.

Encoded frames a viewer receives are compared with the very frames its publisher's
``PacketTrack`` sent (``PacketTrack.log``), never with the clip encoded again: the
encoder's output is not something to rely on (libvpx in realtime mode with a positive
cpu-used gave different bytes on a busy machine: 85, 99 and 0 frames of 150 differed in
three runs at load 4).
"""

from __future__ import annotations

import asyncio
import fractions
import functools
import math
import time
from typing import Any, cast

import av
import numpy as np
from aiortc import MediaStreamTrack

VIDEO_RATE = 90_000
FPS = 30
AUDIO_STEP = 960  # 20 ms of Opus at 48 kHz
ID_BITS = 12
CLIP_FRAMES = 150  # a clip's length unless asked otherwise: 5 s, ids 0..149
CELL = 32  # pixels per barcode cell, large enough to survive VP8 at any bitrate


def draw_id(image: np.ndarray, frame_id: int) -> None:
    """Write ``frame_id`` as ID_BITS black/white cells along the top-left."""
    for bit in range(ID_BITS):
        value = 255 if frame_id >> bit & 1 else 0
        image[0:CELL, bit * CELL:(bit + 1) * CELL] = value


def read_id(image: np.ndarray) -> int:
    """The id ``draw_id`` wrote (the image in BGR or gray)."""
    gray = image if image.ndim == 2 else image.mean(axis=2)
    frame_id = 0
    for bit in range(ID_BITS):
        cell = gray[CELL // 4:CELL * 3 // 4, bit * CELL + CELL // 4:(bit + 1) * CELL - CELL // 4]
        if cell.mean() > 128:
            frame_id |= 1 << bit
    return frame_id


def pattern(width: int, height: int, frame_id: int) -> np.ndarray:
    """A moving gradient with the id barcode."""
    x = np.linspace(0, 255, width, dtype=np.float32)
    y = np.linspace(0, 255, height, dtype=np.float32)[:, None]
    base = (x[None, :] + y + frame_id * 4) % 256
    image = np.stack([base, np.roll(base, 40, axis=1), 255 - base], axis=2).astype(np.uint8)
    draw_id(image, frame_id)
    return image


ENCODERS: dict[str, tuple[str, dict[str, str]]] = {
    # A fixed speed, as aiortc's own VP8 encoder: with a positive cpu-used libvpx's
    # realtime mode picks its speed from how long frames take to encode, so a busy
    # machine got a faster, lossier clip (snapshots 13 levels off the pattern where a
    # quiet one was within 12) and different bytes on every encode.
    "VP8": ("libvpx", {"deadline": "realtime", "cpu-used": "-6", "lag-in-frames": "0",
                       "auto-alt-ref": "0"}),
    # Constrained baseline, as WebRTC's H.264 (profile-level-id 42e01f): no B-frames.
    "H264": ("libx264", {"profile": "baseline", "preset": "ultrafast", "tune": "zerolatency"}),
}


@functools.cache
def video_clip(width: int = 640, height: int = 360, frames: int = CLIP_FRAMES,
               keyframe_every: int = 60, codec_name: str = "VP8") -> tuple[bytes, ...]:
    """Encoded frames (VP8, or H.264 in Annex B form) with ids 0..frames-1; a
    keyframe every ``keyframe_every``."""
    encoder, options = ENCODERS[codec_name]
    codec = cast(av.VideoCodecContext, av.CodecContext.create(encoder, "w"))
    codec.width, codec.height, codec.pix_fmt = width, height, "yuv420p"
    codec.time_base = fractions.Fraction(1, VIDEO_RATE)
    codec.framerate = fractions.Fraction(FPS)
    codec.bit_rate = 1_500_000
    codec.gop_size = keyframe_every
    codec.options = {**options, "g": str(keyframe_every), "kf-max-dist": str(keyframe_every)}
    codec.thread_count = 1
    out: list[bytes] = []
    for i in range(frames):
        frame = av.VideoFrame.from_ndarray(pattern(width, height, i), format="bgr24")
        frame = frame.reformat(format="yuv420p")
        frame.pts = i * (VIDEO_RATE // FPS)
        frame.time_base = fractions.Fraction(1, VIDEO_RATE)
        if i % keyframe_every == 0:
            frame.pict_type = av.video.frame.PictureType.I
        packets = codec.encode(frame)
        assert len(packets) == 1, "the encoder must not delay frames"
        out.append(bytes(packets[0]))
    return tuple(out)


@functools.cache
def audio_clip(seconds: float = 1.0) -> tuple[bytes, ...]:
    """20 ms Opus packets of a 440 Hz tone."""
    codec = av.CodecContext.create("libopus", "w")
    codec.sample_rate = 48_000
    codec.layout = "mono"
    codec.format = "s16"
    codec.bit_rate = 32_000
    out: list[bytes] = []
    samples = 960
    for n in range(int(seconds * 50)):
        t = (np.arange(samples) + n * samples) / 48_000
        pcm = (np.sin(2 * math.pi * 440 * t) * 8000).astype(np.int16)[None, :]
        frame = av.AudioFrame.from_ndarray(pcm, format="s16", layout="mono")
        frame.sample_rate = 48_000
        frame.pts = n * samples
        out += [bytes(p) for p in codec.encode(frame)]
    return tuple(out)


class PacketTrack(MediaStreamTrack):
    """Sends a pre-encoded clip in real time, looping, and records what it sent.

    ``sent`` counts frames; ``log[n]`` is the clip index of the frame sent ``n``-th
    (its pts is ``n * step``), so a test can tell which sent frame a viewer got, and
    ``sent_at[n]`` when it went to the sender (monotonic).
    ``restart()`` makes the next frame the clip's first, a keyframe: what an encoder
    does for a keyframe request (a sender of packets cannot encode one), or the
    ``keyframe_delay``-th frame after it, as the keyframe of a publisher on a real line
    comes after the frames sent while the request was on its way (a 100 ms round trip
    is 3 frames at 30 fps; loopback has none). ``restarted_at`` holds the numbers of
    the frames sent so."""

    def __init__(self, kind: str, packets: tuple[bytes, ...], *, rate: int, step: int,
                 interval: float) -> None:
        super().__init__()
        self.kind = kind
        self.packets = packets
        self._rate = rate
        self._step = step
        self._interval = interval
        self._start: float | None = None
        self._first = 0  # the frame number the clip (re)started at
        self._restart_at: int | None = None  # the frame number it restarts at next
        self.keyframe_delay = 0
        self.sent = 0
        self.restarts = 0
        self.log: list[int] = []
        self.sent_at: list[float] = []
        self.restarted_at: list[int] = []

    def restart(self) -> None:
        if self._restart_at is None:
            self._restart_at = self.sent + self.keyframe_delay
        self.restarts += 1

    async def recv(self) -> av.Packet[Any]:
        if self._start is None:
            self._start = time.monotonic()
        delay = self._start + self.sent * self._interval - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        if self._restart_at is not None and self.sent >= self._restart_at:
            self._restart_at = None
            self._first = self.sent
            self.restarted_at.append(self.sent)
        index = (self.sent - self._first) % len(self.packets)
        packet = av.Packet(self.packets[index])
        packet.pts = self.sent * self._step
        packet.time_base = fractions.Fraction(1, self._rate)
        self.log.append(index)
        self.sent_at.append(time.monotonic())
        self.sent += 1
        return packet

    @property
    def step(self) -> int:
        """The pts (RTP ticks) from one frame to the next."""
        return self._step

    @property
    def frame_id(self) -> int:
        """The id in the last frame sent."""
        return self.log[-1]


def video_track(**clip: Any) -> PacketTrack:
    return PacketTrack("video", video_clip(**clip), rate=VIDEO_RATE, step=VIDEO_RATE // FPS,
                       interval=1 / FPS)


def audio_track() -> PacketTrack:
    return PacketTrack("audio", audio_clip(), rate=48_000, step=AUDIO_STEP, interval=0.02)
