"""The tracking benchmark (issue 23): shapes pinned on a moving camera's video, followed
by the server, checked against the scene's ground truth.

One call: a publisher sends ``tests.support.scene``'s clip (photographs on a plane seen
by a moving camera whose homography is known for every frame: pans, zoom, a turn,
shake, the appliance leaving the frame and coming back), video only, and an expert
receives it (undecoded, through the relay benchmark's tap). Each frame the expert gets
is identified: by its bytes, which frame of the clip it is (every frame differs), and by
its RTP timestamp, which frame the publisher sent it was.

The run is ``rounds`` pairs of windows of the same length, interleaved (pinned first in
even rounds, unpinned first in odd ones). Each window starts with the clip started
again (the publisher's track restarts at its keyframe, as an encoder does when asked)
and the expert's first frame ``PIN_AT`` frames into it, so that every window shows the
same stretch of the scene. In a pinned window the expert pins ``shapes`` circles on the
appliance on that frame (``annotation.add`` with ``pinned`` and ``at``, that frame's
RTP timestamp as the expert received it) and removes them at the window's end; in an
unpinned window nothing is pinned. The server's CPU is read over each window.

Reported (docs/performance.md, "Tracking", explains each field): the pinned points'
error against the ground truth as a share of the frame's diagonal while the shape's
centre is in view; how soon a shape is tracked again after it comes back into view;
the share of in-view pictures tracked; the server's CPU with shapes pinned minus
without; the delay from a frame's arrival to its transform being sent (the server's
``videoassist_tracking_delay_seconds`` histogram); and the relay's frame latency to
the expert with and without pins.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import hashlib
import logging
import math
import os
import pickle
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import av
import numpy as np
from aiortc.mediastreams import MediaStreamTrack
from prometheus_client.parser import text_string_to_metric_families

from loadgen import BenchError
from loadgen.peers import Participant
from loadgen.probes import CpuMark, LoopLag, percentile
from loadgen.server import ServerProcess, post_json, scrape_event_loop_cpu
from tests.support import clips, scene
from videoassist.media import aiortc_hooks

logger = logging.getLogger("bench")

FPS = clips.FPS
STEP = clips.VIDEO_RATE // clips.FPS
KEYFRAME_EVERY = 60  # the scene clip's own keyframes (2 s), as tests/media/test_pinning
PIN_AT = 3  # a window starts at the clip's frame this many after its start (the "still")
FIRST_FRAME_TIMEOUT_S = 20.0
WINDOW_START_TIMEOUT_S = 10.0
GRACE_S = 0.5  # after a pinned window, for the transforms of its last frames to come
AWAY_FRAMES = 5  # out of view for at least this many frames: gone, then back
DELAY = "videoassist_tracking_delay_seconds"

# Where the circles go on the appliance (the scene's coffee cup): their centres as
# shares of its box, their radius as a share of its width (as tests/media/test_pinning).
SPOTS = ((0.42, 0.3, 0.12), (0.25, 0.7, 0.1), (0.7, 0.62, 0.1), (0.5, 0.5, 0.15),
         (0.2, 0.25, 0.08), (0.8, 0.3, 0.08), (0.35, 0.85, 0.08), (0.65, 0.85, 0.08))
MAX_SHAPES = len(SPOTS)


@dataclass(frozen=True)
class Options:
    size: tuple[int, int]
    shapes: int
    rounds: int
    window: float  # seconds, each window
    breakdown: bool  # also time the server's tracking steps in this process


def rtp_origin(receiver: Any) -> int | None:
    """The RTP timestamp aiortc's receiver maps to 0 (its private ``TimestampMapper``'s
    origin, as ``tests.support.peers.rtp_origin`` reads it; that module is not imported
    here, whose test client mypy does not check), modulo 2**32; None before a frame."""
    mapper = getattr(receiver, "_RTCRtpReceiver__timestamp_mapper", None)
    origin = getattr(mapper, "_origin", None)
    return None if origin is None else int(origin) & 0xFFFFFFFF


def load_scene_clip(size: tuple[int, int]) -> tuple[bytes, ...]:
    """``scene.clip(size)``, encoded once (20 s at 720p) and kept in the temp directory
    across runs, keyed by the scene's and the encoder's source."""
    source = Path(scene.__file__).read_bytes() + Path(clips.__file__).read_bytes()
    key = hashlib.sha256(source + f"{size[0]}x{size[1]}/{KEYFRAME_EVERY}".encode())
    path = Path(tempfile.gettempdir()) / f"videoassist-bench-scene-{key.hexdigest()[:16]}.pickle"
    with contextlib.suppress(OSError, pickle.UnpicklingError, EOFError):
        cached = pickle.loads(path.read_bytes())
        if isinstance(cached, tuple) and cached and all(isinstance(f, bytes) for f in cached):
            return cached
    logger.info("encoding the %dx%d scene once (cached in %s)", *size, path)
    clip = scene.clip(size, KEYFRAME_EVERY)
    partial = path.with_suffix(f".{os.getpid()}")
    partial.write_bytes(pickle.dumps(clip))
    partial.replace(path)
    return clip


@dataclass(frozen=True)
class Frame:
    """A frame the expert received: the clip's frame it shows, the publisher's send
    number, and when it arrived (monotonic)."""

    clip: int
    sent: int
    arrived: float
    rtp: int


@dataclass(frozen=True)
class Track:
    """An ``annotation.track`` the expert got, and when."""

    arrived: float
    rtp_timestamp: int | None
    shapes: dict[str, dict[str, Any]]


@dataclass
class Window:
    pinned: bool
    start: CpuMark
    loop_start: float  # the server's event loop's CPU seconds (its metric)
    end: CpuMark | None = None
    loop_end: float = 0.0
    first_sent: int = 0  # the publisher's send number of the window's first frame
    last_sent: int = 0  # ...and of the last frame sent before its end
    t0: int = 0  # the clip frame the shapes were pinned on
    points: dict[str, np.ndarray] = field(default_factory=dict)  # id: centre, edge (px)


class Expert:
    """The expert's side: which frame each received frame is, and the transforms.

    A frame's RTP timestamp says which frame the publisher sent it was, once one frame
    is known: the first whose bytes no other frame of the clip has (the 720p clip has
    a few identical frames, skipped blocks only, after its keyframes) is the newest
    sent with those bytes. Every frame's bytes must then be those sent under its
    number."""

    def __init__(self, publisher: clips.PacketTrack) -> None:
        self.publisher = publisher
        counts = collections.Counter(publisher.packets)
        self.unique = {data: n for n, data in enumerate(publisher.packets)
                       if counts[data] == 1}
        self.frames: dict[int, Frame] = {}  # by RTP timestamp as received
        self.by_sent: dict[int, Frame] = {}
        self.tracks: list[Track] = []
        self.errors: list[dict[str, Any]] = []
        self.unidentified = 0
        self.arrived = asyncio.Event()  # a frame came (set anew by each)
        self._origin: tuple[int, int] | None = None  # (mapped timestamp, send number)

    def tap(self, pc: Any) -> None:
        """Hand the received video's encoded frames to ``on_frame``, undecoded."""

        def on_track(track: MediaStreamTrack) -> None:
            receiver = next(t.receiver for t in pc.getTransceivers()
                            if t.receiver.track is track)

            def sink(codec: str, data: bytes, timestamp: int) -> None:
                origin = rtp_origin(receiver)
                if codec != "opus" and origin is not None:
                    self.on_frame(data, timestamp, (timestamp + origin) & 0xFFFFFFFF)

            aiortc_hooks.tap_receiver(receiver, sink)

        pc.on("track", on_track)

    def on_frame(self, data: bytes, timestamp: int, rtp: int) -> None:
        now = time.monotonic()
        log, sent_at, packets = self.publisher.log, self.publisher.sent_at, \
            self.publisher.packets
        if self._origin is None:
            clip_index = self.unique.get(data)
            sent = None if clip_index is None else next(
                (n for n in range(len(log) - 1, -1, -1)
                 if log[n] == clip_index and sent_at[n] <= now), None)
            if sent is None:
                return  # not yet known which: the next frame
            self._origin = (timestamp, sent)
        ticks = (timestamp - self._origin[0]) & 0xFFFFFFFF
        sent = self._origin[1] + ticks // STEP
        if ticks % STEP or not 0 <= sent < len(log) or packets[log[sent]] != data:
            self.unidentified += 1
            return
        frame = Frame(log[sent], sent, now, rtp)
        self.frames[rtp] = frame
        self.by_sent[sent] = frame
        self.arrived.set()

    def on_message(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == "annotation.track":
            self.tracks.append(Track(time.monotonic(), message.get("rtp_timestamp"),
                                     {s["id"]: s for s in message.get("shapes", [])}))
        elif kind == "error":
            logger.warning("the server says %s", message)
            self.errors.append(message)

    async def frame_after(self, sent: int, within: float) -> tuple[int, Frame]:
        """The first frame received that the publisher sent at ``sent`` or later."""
        async with asyncio.timeout(within):
            while True:
                found = [(n, f) for n, f in self.by_sent.items() if n >= sent]
                if found:
                    return min(found, key=lambda item: item[0])
                self.arrived.clear()
                await self.arrived.wait()


def circle(camera: scene.Camera, t: int, spot: tuple[float, float, float], key: str
           ) -> tuple[dict[str, Any], np.ndarray]:
    """A circle on the appliance in frame ``t`` (its place as shares of the appliance's
    box and radius as a share of its width): the shape, and its centre and edge point in
    pixels."""
    corners = camera.appliance_in(t)
    (x0, y0), (x1, y1) = corners.min(axis=0), corners.max(axis=0)
    cx, cy = x0 + spot[0] * (x1 - x0), y0 + spot[1] * (y1 - y0)
    edge = cx + spot[2] * (x1 - x0)
    w, h = camera.size
    shape = {"id": key, "kind": "circle", "color": "#ff3b30", "width": 0.006,
             "points": [[round(cx / w, 5), round(cy / h, 5)], [round(edge / w, 5),
                                                               round(cy / h, 5)]]}
    return shape, np.array(shape["points"]) * camera.size


class TrackingBench:
    def __init__(self, options: Options, server: ServerProcess, http: aiohttp.ClientSession,
                 clip: tuple[bytes, ...]) -> None:
        self.options = options
        self.server = server
        self.http = http
        self.camera = scene.Camera(options.size)
        self.track = clips.PacketTrack("video", clip, rate=clips.VIDEO_RATE, step=STEP,
                                       interval=1 / FPS)
        self.expert = Expert(self.track)
        self.token = ""
        self.job_id = 0
        self.participants: list[Participant] = []
        self.windows: list[Window] = []
        self.loop_lag = LoopLag()

    async def _api(self, path: str, body: dict[str, Any]) -> Any:
        return await post_json(self.http, self.server.url, path, body, self.token)

    async def open_call(self) -> None:
        session = await self._api("/api/session", {"username": self.server.username,
                                                   "password": self.server.password})
        self.token = session["token"]
        self.loop_lag.start()
        self.job_id = (await self._api("/api/jobs", {"title": "bench tracking"}))["id"]
        publisher = Participant(self.http, self.server.url, self.token, self.job_id,
                                [self.track])
        self.participants.append(publisher)
        await publisher.join()
        viewer = Participant(self.http, self.server.url, self.token, self.job_id, [],
                             on_message=self.expert.on_message)
        self.expert.tap(viewer.pc)
        self.participants.append(viewer)
        await viewer.join()
        try:
            await self.expert.frame_after(0, FIRST_FRAME_TIMEOUT_S)
        except TimeoutError:
            raise BenchError(f"the expert got no frame of the scene within "
                             f"{FIRST_FRAME_TIMEOUT_S:g} s") from None

    @property
    def publisher_id(self) -> int:
        publisher_id = self.participants[0].id
        assert publisher_id is not None
        return publisher_id

    async def _send(self, message: dict[str, Any]) -> None:
        ws = self.participants[1].ws
        assert ws is not None
        await ws.send_json(message)

    async def _start_scene(self) -> Frame:
        """Start the clip again; the expert's frame ``PIN_AT`` frames into it."""
        restart = self.track.sent  # the next frame sent is the clip's first (no delay)
        self.track.restart()
        try:
            _, frame = await self.expert.frame_after(restart + PIN_AT, WINDOW_START_TIMEOUT_S)
        except TimeoutError:
            raise BenchError("the expert got no frame of the restarted scene within "
                             f"{WINDOW_START_TIMEOUT_S:g} s") from None
        return frame

    async def window(self, number: int, pinned: bool) -> None:
        frame = await self._start_scene()
        loop_start = await self._loop_cpu()
        window = Window(pinned, CpuMark.now(self.server.pid), loop_start,
                        first_sent=frame.sent, t0=frame.clip)
        self.windows.append(window)
        keys = [f"w{number}-s{k}" for k in range(self.options.shapes)]
        if pinned:
            for key, spot in zip(keys, SPOTS, strict=False):
                shape, points = circle(self.camera, frame.clip, spot, key)
                window.points[key] = points
                await self._send({"type": "annotation.add", "target": self.publisher_id,
                                  "shape": {**shape, "pinned": True, "at": frame.rtp}})
        await asyncio.sleep(self.options.window)
        window.end = CpuMark.now(self.server.pid)
        window.last_sent = self.track.sent - 1
        window.loop_end = await self._loop_cpu()
        if pinned:
            for key in keys:
                await self._send({"type": "annotation.remove", "target": self.publisher_id,
                                  "id": key})
            await asyncio.sleep(GRACE_S)
        self.server.check_alive()

    async def _loop_cpu(self) -> float:
        return sum((await scrape_event_loop_cpu(self.http, self.server.url)).values())

    async def close(self) -> None:
        await self.loop_lag.stop()
        await asyncio.gather(*(p.leave() for p in reversed(self.participants)),
                             return_exceptions=True)


async def scrape(http: aiohttp.ClientSession, url: str) -> dict[str, Any]:
    """The tracking delay histogram's cumulative buckets (upper bound: count), its count
    and sum, and the untracked pictures and keyframe requests, from /metrics."""
    async with http.get(url + "/metrics", timeout=aiohttp.ClientTimeout(total=10)) as response:
        text = await response.text()
        if response.status != 200:
            raise BenchError(f"GET /metrics: {response.status} {text[:200]}")
    found: dict[str, Any] = {"buckets": {}, "count": 0.0, "sum": 0.0, "untracked": 0.0,
                             "keyframe_requests": 0.0}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == f"{DELAY}_bucket":
                found["buckets"][float(sample.labels["le"])] = sample.value
            elif sample.name == f"{DELAY}_count":
                found["count"] = sample.value
            elif sample.name == f"{DELAY}_sum":
                found["sum"] = sample.value
            elif sample.name == "videoassist_untracked_pictures_total":
                found["untracked"] = sample.value
            elif sample.name == "videoassist_keyframe_requests_total":
                found["keyframe_requests"] = sample.value
    if not found["buckets"]:
        raise BenchError(f"GET /metrics has no {DELAY}")
    return found


def histogram_quantile(q: float, buckets: dict[float, float]) -> float | None:
    """The q-quantile of a histogram's cumulative buckets (upper bound: count), linearly
    interpolated within its bucket as Prometheus's ``histogram_quantile`` does; in the
    last (+Inf) bucket, the largest finite bound. None without samples."""
    bounds = sorted(buckets)
    total = buckets[bounds[-1]]
    if total <= 0:
        return None
    rank = q * total
    lower, below = 0.0, 0.0
    for bound in bounds:
        count = buckets[bound]
        if count >= rank:
            if math.isinf(bound):
                return lower
            inside = count - below
            return lower + (bound - lower) * ((rank - below) / inside if inside else 1.0)
        lower, below = bound, count
    return lower


def median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def rounded(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


def evaluate(bench: TrackingBench) -> dict[str, Any]:
    """The pinned windows' transforms against the scene's ground truth, and the frames'
    latency in each kind of window."""
    camera, expert, track = bench.camera, bench.expert, bench.track
    errors: list[float] = []
    in_view_reports = in_view_tracking = out_of_view_reports = out_of_view_tracking = 0
    in_view_frames = reported_frames = unmatched = 0
    reacquire_s: list[float] = []
    reacquire_wall_s: list[float] = []
    reacquire_failures = 0
    after_frame_ms: list[float] = []
    for window in (w for w in bench.windows if w.pinned):
        sent = range(window.first_sent, window.last_sent + 1)
        reported: dict[str, dict[int, tuple[str, float]]] = {key: {} for key in window.points}
        for message in expert.tracks:
            frame = None if message.rtp_timestamp is None else \
                expert.frames.get(message.rtp_timestamp)
            mine = {k: s for k, s in message.shapes.items() if k in window.points}
            if not mine:
                continue
            if frame is None:
                unmatched += 1
                continue
            if frame.sent not in sent:
                continue
            after_frame_ms.append((message.arrived - frame.arrived) * 1000)
            for key, found in mine.items():
                centre, edge = window.points[key]
                truth = camera.truth(window.t0, frame.clip, np.array([centre, edge]))
                visible = bool(camera.in_view(frame.clip, truth[:1])[0])
                tracking = found["state"] == "tracking" and found["matrix"] is not None
                reported[key].setdefault(frame.sent, (found["state"], message.arrived))
                if not visible:
                    out_of_view_reports += 1
                    out_of_view_tracking += tracking
                    continue
                in_view_reports += 1
                if not tracking:
                    continue
                in_view_tracking += 1
                errors.append(_error(camera, found["matrix"], centre, edge, truth))
        for key, (centre, _) in window.points.items():
            seen = [bool(camera.in_view(track.log[n], camera.truth(
                window.t0, track.log[n], centre[None]))[0]) for n in sent]
            in_view_frames += sum(seen)
            reported_frames += sum(1 for n, v in zip(sent, seen, strict=True)
                                   if v and n in reported[key])
            for back in _returns(seen):
                n_back = sent[back]
                tracked = sorted((n, arrived) for n, (state, arrived) in reported[key].items()
                                 if n >= n_back and state == "tracking")
                if not tracked:
                    reacquire_failures += 1
                    continue
                n, arrived = tracked[0]
                reacquire_s.append((n - n_back) / FPS)
                frame = expert.by_sent.get(n_back)
                if frame is not None:
                    reacquire_wall_s.append(arrived - frame.arrived)
    latency = {kind: _latencies(bench, pinned) for kind, pinned in (("pinned", True),
                                                                     ("unpinned", False))}
    p50 = {kind: percentile(values, 50) for kind, values in latency.items()}
    p95 = {kind: percentile(values, 95) for kind, values in latency.items()}
    return {
        "error_diagonal_pct_p50": _pct(errors, 50),
        "error_diagonal_pct_p95": _pct(errors, 95),
        "error_diagonal_pct_max": _pct(errors, 100),
        "error_samples": len(errors),
        "in_view_tracked_share": rounded(in_view_tracking / in_view_reports
                                         if in_view_reports else None),
        "in_view_frames_reported_share": rounded(reported_frames / in_view_frames
                                                 if in_view_frames else None),
        "in_view_frames": in_view_frames,
        "out_of_view_tracking_share": rounded(out_of_view_tracking / out_of_view_reports
                                              if out_of_view_reports else None),
        "reacquisitions": len(reacquire_s),
        "reacquire_failures": reacquire_failures,
        "reacquire_s_p50": rounded(median(reacquire_s)),
        "reacquire_s_max": rounded(max(reacquire_s, default=None)),
        "reacquire_wall_s_p50": rounded(median(reacquire_wall_s)),
        "reacquire_wall_s_max": rounded(max(reacquire_wall_s, default=None)),
        "transform_after_frame_ms_p50": percentile(after_frame_ms, 50),
        "transform_after_frame_ms_p95": percentile(after_frame_ms, 95),
        "transforms_unmatched": unmatched,
        "frame_latency_ms_p50_pinned": p50["pinned"],
        "frame_latency_ms_p50_unpinned": p50["unpinned"],
        "frame_latency_ms_p95_pinned": p95["pinned"],
        "frame_latency_ms_p95_unpinned": p95["unpinned"],
        "frame_latency_ms_p95_added_by_pins": _difference(p95["pinned"], p95["unpinned"]),
    }


def _difference(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else round(a - b, 2)


def _pct(errors: list[float], q: float) -> float | None:
    return None if not errors else round(float(np.percentile(errors, q)) * 100, 2)


def _error(camera: scene.Camera, matrix: list[float], centre: np.ndarray, edge: np.ndarray,
           truth: np.ndarray) -> float:
    """The farther of the circle's centre and edge point from where the scene puts them,
    mapped by the message's matrix (shares of the picture), as a share of the diagonal."""
    w, h = camera.size
    scale = np.diag([w, h, 1.0])
    in_pixels = scale @ np.array(matrix).reshape(3, 3) @ np.linalg.inv(scale)
    mapped = in_pixels @ np.array([[*centre, 1.0], [*edge, 1.0]]).T
    mapped = (mapped[:2] / mapped[2]).T
    return float(np.linalg.norm(mapped - truth, axis=1).max()) / camera.diagonal


def _returns(visible: list[bool]) -> list[int]:
    """Where a shape comes back into view after at least ``AWAY_FRAMES`` out of it."""
    backs, away = [], 0
    for i, seen in enumerate(visible):
        if not seen:
            away += 1
            continue
        if away >= AWAY_FRAMES and i > away:  # out of view, not from the window's start
            backs.append(i)
        away = 0
    return backs


def _latencies(bench: TrackingBench, pinned: bool) -> list[float]:
    """Publisher to expert, ms, of each frame sent in the windows of that kind."""
    sent_at = bench.track.sent_at
    found = []
    for window in (w for w in bench.windows if w.pinned == pinned):
        for n in range(window.first_sent, window.last_sent + 1):
            frame = bench.expert.by_sent.get(n)
            if frame is not None:
                found.append((frame.arrived - sent_at[n]) * 1000)
    return found


def cpu(windows: list[Window]) -> dict[str, Any]:
    """Server cores in each kind of window (medians), and the pinned minus the unpinned
    of each round (their median: the tracking's own cost)."""
    cores = {kind: [w.end.cores_since(w.start) for w in windows
                    if w.pinned == (kind == "pinned") and w.end is not None]
             for kind in ("pinned", "unpinned")}
    server = {kind: [c[0] for c in values] for kind, values in cores.items()}
    differences = [p - u for p, u in zip(server["pinned"], server["unpinned"], strict=False)]
    loop = {kind: [(w.loop_end - w.loop_start) / (w.end.wall - w.start.wall)
                   for w in windows if w.pinned == (kind == "pinned") and w.end is not None]
            for kind in ("pinned", "unpinned")}
    loop_differences = [p - u for p, u in zip(loop["pinned"], loop["unpinned"], strict=False)]
    return {
        "server_cpu_cores_tracking": rounded(median(differences)),
        "server_cpu_cores_tracking_rounds": [round(d, 3) for d in differences],
        "server_cpu_cores_pinned": rounded(median(server["pinned"])),
        "server_cpu_cores_unpinned": rounded(median(server["unpinned"])),
        # Of which the server's event loop (its metric): the rest is the tracking thread.
        "server_loop_cpu_cores_tracking": rounded(median(loop_differences)),
        "client_cpu_cores": rounded(median([c[1] for v in cores.values() for c in v])),
        "machine_cpu_cores": rounded(median([c[2] for v in cores.values() for c in v])),
        # Everything else the machine ran meanwhile (it is shared): the noise's size.
        "other_cpu_cores": rounded(median([c[2] - c[0] - c[1] for v in cores.values()
                                           for c in v])),
    }


def delay(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """The run's tracking delays, from the histogram's growth over it."""
    buckets = {bound: count - before["buckets"].get(bound, 0.0)
               for bound, count in after["buckets"].items()}
    count = after["count"] - before["count"]

    def ms(q: float) -> float | None:
        value = histogram_quantile(q, buckets)
        return None if value is None else round(value * 1000, 1)

    return {
        "tracking_delay_ms_p50": ms(0.5),
        "tracking_delay_ms_p95": ms(0.95),
        "tracking_delay_ms_mean": round((after["sum"] - before["sum"]) / count * 1000, 1)
        if count else None,
        "tracked_pictures": int(count),
        "untracked_pictures": int(after["untracked"] - before["untracked"]),
        "keyframe_requests": int(after["keyframe_requests"] - before["keyframe_requests"]),
    }


def breakdown(clip: tuple[bytes, ...], size: tuple[int, int], shapes: int) -> dict[str, Any]:
    """The tracking thread's steps, timed in this process on the clip (one pass from
    ``PIN_AT``, shapes pinned as in the run): decoding every frame as the feed does
    (no loop filter), scaling the pictures tracked (``trackfeed.MAX_RATE`` a second)
    to the working size, and following the shapes in them; ms a frame (medians and
    means), and the cores that makes at 30 frames and that many tracked a second."""
    from videoassist.media.decoding import decoder_for
    from videoassist.media.trackfeed import MAX_RATE, box_of
    from videoassist.media.tracking import Tracking, working_picture

    camera = scene.Camera(size)
    decoder = decoder_for("VP8", loop_filter=False)
    tracking = Tracking()
    decode_ms: list[float] = []
    scale_ms: list[float] = []
    track_ms: list[float] = []
    every = round(FPS / MAX_RATE)
    for t, data in enumerate(clip):
        begin = time.perf_counter()
        pictures = decoder.decode(av.Packet(data))
        decode_ms.append((time.perf_counter() - begin) * 1000)
        if t < PIN_AT or (t - PIN_AT) % every or not pictures:
            continue
        begin = time.perf_counter()
        picture = working_picture(pictures[-1])
        scale_ms.append((time.perf_counter() - begin) * 1000)
        begin = time.perf_counter()
        tracking.update(picture)
        if t == PIN_AT:
            h, w = picture.shape
            for k, spot in enumerate(SPOTS[:shapes]):
                shape, _ = circle(camera, t, spot, f"s{k}")
                x0, y0, x1, y1 = box_of(shape, w, h)
                tracking.pin(shape["id"], (x0, y0, x1, y1))
        track_ms.append((time.perf_counter() - begin) * 1000)

    def stats(values: list[float]) -> dict[str, float]:
        return {"p50": round(statistics.median(values), 2),
                "mean": round(statistics.fmean(values), 2)}

    return {
        "decode_ms": stats(decode_ms),
        "scale_ms": stats(scale_ms),
        "track_ms": stats(track_ms),
        "track_ms_max": round(max(track_ms), 2),
        "cores": round((statistics.fmean(decode_ms) * FPS
                        + (statistics.fmean(scale_ms) + statistics.fmean(track_ms)) * MAX_RATE)
                       / 1000, 3),
    }


async def run(options: Options) -> dict[str, Any]:
    """Encode (or load) the scene, start the server, run the windows, stop; the report."""
    clip = load_scene_clip(options.size)
    with tempfile.TemporaryDirectory(prefix="videoassist-bench-") as workdir:
        server = ServerProcess("forward", Path(workdir))
        logger.info("starting the server on %s", server.url)
        server.start()
        try:
            async with aiohttp.ClientSession() as http:
                await server.wait_ready(http)
                bench = TrackingBench(options, server, http, clip)
                try:
                    logger.info("opening the call: the scene's publisher and an expert")
                    await bench.open_call()
                    before = await scrape(http, server.url)
                    bench.loop_lag.lags_ms.clear()
                    for number in range(options.rounds):
                        order = (True, False) if number % 2 == 0 else (False, True)
                        for pinned in order:
                            logger.info("round %d of %d: %s, %g s", number + 1,
                                        options.rounds,
                                        f"{options.shapes} shapes pinned" if pinned
                                        else "nothing pinned", options.window)
                            await bench.window(2 * number + pinned, pinned)
                    after = await scrape(http, server.url)
                    lags = list(bench.loop_lag.lags_ms)
                finally:
                    await bench.close()
        finally:
            server.stop()
    w, h = options.size
    result: dict[str, Any] = {
        "benchmark": "tracking",
        "size": f"{w}x{h}",
        "shapes": options.shapes,
        "rounds": options.rounds,
        "window_s": options.window,
        "cpu_count": os.cpu_count(),
        **evaluate(bench),
        **delay(before, after),
        **cpu(bench.windows),
        "frames_unidentified": bench.expert.unidentified,
        "server_errors": len(bench.expert.errors),
        "client_loop_lag_ms_p99": percentile(lags, 99),
        "video": f"tests/support/scene.py, {w}x{h} {FPS} fps VP8, 1 Mbit/s, a keyframe "
                 f"every {KEYFRAME_EVERY} frames, {len(clip) / FPS:.1f} s looping; no audio",
    }
    if options.breakdown:
        logger.info("timing the tracking thread's steps in this process")
        loop = asyncio.get_running_loop()
        result["breakdown"] = await loop.run_in_executor(None, breakdown, clip, options.size,
                                                         options.shapes)
    logger.info("error %s%% / %s%% of the diagonal (p50/p95), tracking %s cores, delay "
                "p95 %s ms", result["error_diagonal_pct_p50"], result["error_diagonal_pct_p95"],
                result["server_cpu_cores_tracking"], result["tracking_delay_ms_p95"])
    return result

