"""The snapshot benchmark: from ``snapshot.request`` to ``snapshot.saved``, per size.

For each picture size, one call (or ``calls``): a camera publishing a pre-encoded clip
of that size, which answers keyframe requests as a browser does, and a staff member
who watches it (undecoded) and asks for snapshots of it over /ws, one at a time, with
a realistic set of shapes. Latency is from sending the request to ``snapshot.saved``
on the requester's socket. The server's CPU is read over the snapshots' window and
over a quiet window before it (the call alone). docs/performance.md explains each
reported field.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import math
import os
import random
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np

from loadgen import BenchError
from loadgen.media import Camera, CameraClip, audio_track, camera_clip
from loadgen.peers import Participant
from loadgen.probes import CpuMark, LoopLag, percentile
from loadgen.server import ServerProcess, post_json
from tests.support import clips
from videoassist.media.capture import MAX_DECODE_FRAMES

logger = logging.getLogger("bench")

FIRST_FRAME_TIMEOUT_S = 20.0
REQUEST_TIMEOUT_S = 10.0   # an answer later than this counts as an error ("timeout")
LATE_ANSWER_S = 30.0       # ...and is still awaited, or the next request is a conflict
QUIET_WINDOW_S = 2.0       # the calls alone, before the snapshots: the idle server CPU
SETUP_CONCURRENCY = 4


def _pen_stroke(points: int = 50) -> list[list[float]]:
    """A wavy underline, as a finger draws one."""
    return [[round(0.15 + 0.5 * i / (points - 1), 4),
             round(0.72 + 0.04 * math.sin(4 * math.pi * i / (points - 1)), 4)]
            for i in range(points)]


# What an expert typically draws before a snapshot: an arrow, a circle, a label, a
# pen stroke of 50 points (widths as fractions of the picture's width).
SHAPES: list[dict[str, Any]] = [
    {"id": "arrow", "kind": "arrow", "points": [[0.2, 0.8], [0.45, 0.55]],
     "color": "#ff3b30", "width": 0.008},
    {"id": "circle", "kind": "circle", "points": [[0.62, 0.4], [0.7, 0.46]],
     "color": "#ffcc00", "width": 0.006},
    {"id": "label", "kind": "text", "points": [[0.5, 0.2]], "color": "#ffffff",
     "width": 0.004, "text": "this valve, not the one behind it"},
    {"id": "pen", "kind": "pen", "points": _pen_stroke(), "color": "#34c759",
     "width": 0.005},
]


@dataclass(frozen=True)
class Options:
    sizes: tuple[tuple[int, int], ...]
    keyframe_every: int   # the camera's own keyframe interval, frames; 0: only on request
    snapshots: int        # measured, per call and size
    warmup: int           # snapshots per call before the measured ones, not counted
    pause: float          # seconds from an answer to the next request: pause to 2 * pause
    calls: int
    audio: bool
    breakdown: bool       # also time the server's steps in this process, afterwards


@dataclass(frozen=True)
class Sample:
    latency_ms: float
    since_keyframe: int        # the camera's frames since its last keyframe, at the request
    picture_age_ms: float      # the request's time minus the picture's captured_at


@dataclass
class SnapshotCall:
    """A camera and a requester who watches it and asks for its snapshots."""

    job_id: int
    size: tuple[int, int]
    camera: Camera
    participants: list[Participant] = field(default_factory=list)
    frames_seen: int = 0
    watching: asyncio.Event = field(default_factory=asyncio.Event)
    _pending: dict[str, asyncio.Future[tuple[float, dict[str, Any]]]] = field(
        default_factory=dict)

    @property
    def requester(self) -> Participant:
        return self.participants[1]

    def on_frame(self, codec: str, data: bytes, timestamp: int) -> None:
        """The requester's tap: frames are counted, never decoded."""
        if codec != "opus":
            self.frames_seen += 1
            self.watching.set()

    def on_message(self, message: dict[str, Any]) -> None:
        """The requester's server messages beside SDP, on the event loop."""
        kind = message.get("type")
        if kind == "snapshot.saved" or (kind == "error"
                                        and message.get("ref") == "snapshot.request"):
            future = self._pending.get(str(message.get("request")))
            if future is not None and not future.done():
                future.set_result((time.monotonic(), message))
        elif kind == "error":
            logger.warning("job %d: the server says %s", self.job_id, message)

    async def take(self, request: str) -> Sample | str:
        """One snapshot: its sample, or the error's code."""
        ws = self.requester.ws
        assert ws is not None and self.camera_id is not None
        future = asyncio.get_running_loop().create_future()
        self._pending[request] = future
        since_keyframe = self.camera.since_keyframe
        asked_at = time.time()
        sent = time.monotonic()
        await ws.send_json({"type": "snapshot.request", "camera": self.camera_id,
                            "request": request, "shapes": SHAPES})
        try:
            async with asyncio.timeout(REQUEST_TIMEOUT_S):
                arrived, message = await asyncio.shield(future)
        except TimeoutError:
            logger.warning("job %d: no answer to %s within %g s", self.job_id, request,
                           REQUEST_TIMEOUT_S)
            try:
                async with asyncio.timeout(LATE_ANSWER_S):
                    await future
            except TimeoutError:
                raise BenchError(f"no answer to snapshot request {request} in "
                                 f"{REQUEST_TIMEOUT_S + LATE_ANSWER_S:g} s") from None
            return "timeout"
        finally:
            self._pending.pop(request, None)
        if message["type"] == "error":
            logger.warning("job %d: %s refused: %s", self.job_id, request, message)
            return str(message.get("code", "error"))
        snapshot = message["snapshot"]
        if (snapshot["width"], snapshot["height"]) != self.size:
            raise BenchError(f"a {self.size[0]}x{self.size[1]} camera gave a "
                             f"{snapshot['width']}x{snapshot['height']} snapshot")
        return Sample((arrived - sent) * 1000, since_keyframe,
                      (asked_at - snapshot["captured_at"]) * 1000)

    @property
    def camera_id(self) -> int | None:
        return self.participants[0].id

    async def series(self, tag: str, count: int, pause: float,
                     rng: random.Random) -> list[Sample | str]:
        """``count`` snapshots, one at a time, a random pause of ``pause`` to twice that
        after each answer (so that requests fall anywhere in the keyframe interval)."""
        results: list[Sample | str] = []
        for number in range(count):
            results.append(await self.take(f"{tag}-{number}"))
            await asyncio.sleep(pause * (1 + rng.random()))
        return results


class SnapshotBench:
    def __init__(self, options: Options, server: ServerProcess,
                 http: aiohttp.ClientSession) -> None:
        self.options = options
        self.server = server
        self.http = http
        self.token = ""
        self.loop_lag = LoopLag()
        self.lags_ms: list[float] = []  # over the measured windows only

    async def _api(self, path: str, body: dict[str, Any]) -> Any:
        return await post_json(self.http, self.server.url, path, body, self.token)

    async def sign_in(self) -> None:
        session = await self._api("/api/session", {"username": self.server.username,
                                                   "password": self.server.password})
        self.token = session["token"]
        self.loop_lag.start()

    async def _open_call(self, size: tuple[int, int], clip: CameraClip, number: int,
                         calls: list[SnapshotCall]) -> None:
        job = await self._api("/api/jobs", {"title": f"bench snapshots {number}"})
        call = SnapshotCall(job["id"], size, Camera(clip))
        calls.append(call)  # before joining, so that the clean-up finds it
        tracks = [call.camera, *([audio_track()] if self.options.audio else [])]
        publisher = Participant(self.http, self.server.url, self.token, call.job_id, tracks)
        call.participants.append(publisher)
        await publisher.join()
        requester = Participant(self.http, self.server.url, self.token, call.job_id, [],
                                call.on_frame, call.on_message)
        call.participants.append(requester)
        await requester.join()
        async with asyncio.timeout(FIRST_FRAME_TIMEOUT_S):
            await call.watching.wait()

    async def measure_size(self, size: tuple[int, int], clip: CameraClip) -> dict[str, Any]:
        options = self.options
        name = f"{size[0]}x{size[1]}"
        calls: list[SnapshotCall] = []
        limit = asyncio.Semaphore(SETUP_CONCURRENCY)

        async def open_call(number: int) -> None:
            async with limit:
                await self._open_call(size, clip, number, calls)

        try:
            logger.info("%s: opening %d calls (a camera and a requester each)", name,
                        options.calls)
            await asyncio.gather(*(open_call(n) for n in range(1, options.calls + 1)))
            rngs = [random.Random(f"{name}/{n}") for n in range(options.calls)]
            logger.info("%s: %d warm-up snapshots", name, options.warmup)
            await asyncio.gather(*(call.series(f"w{n}", options.warmup, options.pause, rng)
                                   for n, (call, rng) in enumerate(zip(calls, rngs,
                                                                       strict=True))))
            self.server.check_alive()
            quiet = CpuMark.now(self.server.pid)
            await asyncio.sleep(QUIET_WINDOW_S)
            start = CpuMark.now(self.server.pid)
            idle_cores = start.cores_since(quiet)[0]
            requests = sum(c.camera.keyframe_requests for c in calls)
            answered = sum(c.camera.keyframes_on_request for c in calls)
            self.loop_lag.lags_ms.clear()
            logger.info("%s: measuring %d snapshots per call, keyframes %s", name,
                        options.snapshots, keyframe_description(options.keyframe_every))
            series = await asyncio.gather(*(
                call.series(f"s{n}", options.snapshots, options.pause, rng)
                for n, (call, rng) in enumerate(zip(calls, rngs, strict=True))))
            end = CpuMark.now(self.server.pid)
            self.lags_ms += self.loop_lag.lags_ms
            self.server.check_alive()
        finally:
            participants = [p for call in calls for p in reversed(call.participants)]
            await asyncio.gather(*(p.leave() for p in participants), return_exceptions=True)
        results = [result for s in series for result in s]
        report = size_report(results, start, end, idle_cores)
        report["keyframe_requests"] = sum(c.camera.keyframe_requests for c in calls) - requests
        report["keyframes_on_request"] = (sum(c.camera.keyframes_on_request for c in calls)
                                          - answered)
        logger.info("%s: p50 %s ms, p95 %s ms, max %s ms, %d errors, server %.2f cores",
                    name, report["latency_ms_p50"], report["latency_ms_p95"],
                    report["latency_ms_max"], report["errors"], report["server_cpu_cores"])
        return report


def size_report(results: list[Sample | str], start: CpuMark, end: CpuMark,
                idle_cores: float) -> dict[str, Any]:
    samples = [r for r in results if isinstance(r, Sample)]
    errors = collections.Counter(r for r in results if isinstance(r, str))
    latencies = [s.latency_ms for s in samples]
    server_cores, client_cores, machine_cores = end.cores_since(start)
    wall = end.wall - start.wall
    since = [s.since_keyframe for s in samples]
    fixed, per_frame = latency_fit(samples)
    return {
        "count": len(samples),
        "errors": sum(errors.values()),
        "error_codes": dict(errors),
        "latency_ms_p50": percentile(latencies, 50),
        "latency_ms_p95": percentile(latencies, 95),
        "latency_ms_max": round(max(latencies), 2) if latencies else None,
        "latency_ms_min": round(min(latencies), 2) if latencies else None,
        "seconds": round(wall, 1),
        "server_cpu_cores": round(server_cores, 3),
        "server_cpu_cores_idle": round(idle_cores, 3),
        "server_cpu_ms_per_snapshot": round((server_cores - idle_cores) * wall
                                            / max(1, len(results)) * 1000, 1),
        "client_cpu_cores": round(client_cores, 3),
        "machine_cpu_cores": round(machine_cores, 3),
        "frames_since_keyframe_p50": percentile([float(n) for n in since], 50),
        "frames_since_keyframe_max": max(since, default=None),
        "over_cached_run": sum(n > MAX_DECODE_FRAMES for n in since),
        "latency_fit_ms_fixed": fixed,
        "latency_fit_ms_per_frame": per_frame,
        "picture_age_ms_p50": percentile([s.picture_age_ms for s in samples], 50),
    }


def latency_fit(samples: list[Sample]) -> tuple[float | None, float | None]:
    """Latency ~ fixed + per_frame * frames since the keyframe, least squares over the
    requests the server answered from its cached run (no keyframe asked for)."""
    cached = [s for s in samples if s.since_keyframe <= MAX_DECODE_FRAMES]
    if len({s.since_keyframe for s in cached}) < 3:
        return None, None
    slope, intercept = np.polyfit([float(s.since_keyframe) for s in cached],
                                  [s.latency_ms for s in cached], 1)
    return round(float(intercept), 1), round(float(slope), 2)


def keyframe_description(keyframe_every: int) -> str:
    if keyframe_every == 0:
        return "only on request (PLI)"
    return f"every {keyframe_every} frames and on request (PLI)"


def breakdown(size: tuple[int, int], clip: CameraClip) -> dict[str, float]:
    """The server's own steps, timed in this process on the same clip (medians of 5):
    decoding a run of 1, 30 and 90 frames as the capture tap does, and drawing the
    shapes, encoding both JPEGs and sealing them as the snapshot service does."""
    from videoassist.media.capture import _decode_last
    from videoassist.snapshots.fonts import LabelFonts
    from videoassist.snapshots.service import SnapshotService
    from videoassist.snapshots.vault import Vault

    def timed(step: Any, *args: Any) -> float:
        times = []
        for _ in range(5):
            begin = time.perf_counter()
            step(*args)
            times.append((time.perf_counter() - begin) * 1000)
        return round(statistics.median(times), 2)

    frames = clip.frames
    result = {f"decode_{n}_frames": timed(_decode_last, "vp8", list(frames[:n]))
              for n in (1, 30, 90) if n <= len(frames)}
    picture = _decode_last("vp8", list(frames[:1]))
    # Only the worker-thread half of SnapshotService.take: no store is needed for it.
    service = SnapshotService(None, Vault(os.urandom(32), None), None, 90,  # type: ignore[arg-type]
                              fonts=LabelFonts.open(()))
    key = os.urandom(32)
    result["draw_jpeg_seal"] = timed(service._render_new, key, 1, picture, SHAPES)
    assert picture.shape[:2] == (size[1], size[0])
    return result


async def run(options: Options) -> dict[str, Any]:
    """Start the server, measure each size in turn, stop everything; the report."""
    camera_clips = {size: camera_clip(*size, options.keyframe_every) for size in options.sizes}
    sizes: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="videoassist-bench-") as workdir:
        server = ServerProcess("forward", Path(workdir))
        logger.info("starting the server on %s", server.url)
        server.start()
        try:
            async with aiohttp.ClientSession() as http:
                await server.wait_ready(http)
                bench = SnapshotBench(options, server, http)
                try:
                    await bench.sign_in()
                    for size, clip in camera_clips.items():
                        sizes[f"{size[0]}x{size[1]}"] = await bench.measure_size(size, clip)
                finally:
                    await bench.loop_lag.stop()
        finally:
            server.stop()
    result: dict[str, Any] = {
        "benchmark": "snapshot",
        "keyframe_every": options.keyframe_every,
        "calls": options.calls,
        "snapshots": options.snapshots,
        "warmup_snapshots": options.warmup,
        "pause_s": options.pause,
        "shapes": len(SHAPES),
        "audio": options.audio,
        "cpu_count": os.cpu_count(),
        "errors": sum(s["errors"] for s in sizes.values()),
        "client_loop_lag_ms_p99": percentile(bench.lags_ms, 99),
        "client_loop_lag_ms_max": round(max(bench.lags_ms, default=0.0), 1),
        "sizes": sizes,
        "video": f"{clips.FPS} fps VP8, 1.5 Mbit/s, keyframes "
                 f"{keyframe_description(options.keyframe_every)}",
    }
    if options.breakdown:
        logger.info("timing the server's steps in this process")
        loop = asyncio.get_running_loop()
        result["breakdown_ms"] = {
            f"{size[0]}x{size[1]}": await loop.run_in_executor(None, breakdown, size, clip)
            for size, clip in camera_clips.items()}
    if result["errors"]:
        logger.warning("%d snapshots failed: see error_codes", result["errors"])
    return result
