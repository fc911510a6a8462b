"""The relay benchmark: N calls through the server, measured over a window.

Each call is one publisher (720p30 VP8 and, unless disabled, Opus) and one viewer, so
the server forwards N outgoing video streams. Beside them: the direct pair (the latency
baseline) and, every ``join_every`` seconds, a viewer joining a running call to time
its first frame, then leaving. docs/performance.md explains each reported field.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import math
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from loadgen import BenchError
from loadgen.media import (
    DESCRIPTION,
    FirstFrame,
    FrameSink,
    TimedTrack,
    Viewer,
    audio_track,
    load_video_clip,
    video_track,
)
from loadgen.peers import DirectPair, Participant
from loadgen.probes import (
    CpuMark,
    LoopLag,
    drops_since,
    percentile,
    process_rss_mb,
    profile_top,
    udp_drops,
)
from loadgen.server import ServerProcess, post_json

logger = logging.getLogger("bench")

FIRST_FRAME_TIMEOUT_S = 5.0
SETUP_CONCURRENCY = 4   # calls negotiated at once
ARRIVAL_GRACE_S = 1.0   # after the window, for frames sent in it still on their way
# Past this, the direct pair (the baseline) is late by more than a frame interval: the
# generator itself is short of CPU and the run says more about it than about the server.
GENERATOR_OVERLOADED_MS = 1000 / 30


@dataclass(frozen=True)
class Options:
    mode: str           # "forward" or "transcode"
    streams: int
    seconds: float
    warmup: float
    join_every: float
    audio: bool
    profile: Path | None = None  # run the server under cProfile, its statistics there


@dataclass
class Call:
    job_id: int
    track: TimedTrack   # the publisher's video
    viewer: Viewer
    participants: list[Participant] = field(default_factory=list)


class RelayBench:
    def __init__(self, options: Options, server: ServerProcess, http: aiohttp.ClientSession,
                 clip: tuple[bytes, ...]) -> None:
        self.options = options
        self.server = server
        self.http = http
        self.clip = clip
        self.token = ""
        self.calls: list[Call] = []
        self.baseline = DirectPair(clip, options.audio)
        self.loop_lag = LoopLag()
        # Late joins, from the warm-up on: (when it began, ms to its first frame or
        # None if it got none). Those begun in the window are reported.
        self.joins: list[tuple[float, float | None]] = []
        self.window_start = math.inf
        self.rss_trace: list[tuple[float, float]] = []  # (second of the window, MiB)

    async def _api(self, path: str, body: dict[str, Any]) -> Any:
        return await post_json(self.http, self.server.url, path, body, self.token)

    def _participant(self, job_id: int, tracks: list[TimedTrack],
                     sink: FrameSink | None = None) -> Participant:
        return Participant(self.http, self.server.url, self.token, job_id, tracks, sink)

    # -- setting up ----------------------------------------------------------------

    async def setup(self) -> None:
        session = await self._api("/api/session", {"username": self.server.username,
                                                   "password": self.server.password})
        self.token = session["token"]
        self.loop_lag.start()
        await self.baseline.start()
        limit = asyncio.Semaphore(SETUP_CONCURRENCY)
        done = itertools.count(1)

        async def open_call(number: int) -> None:
            async with limit:
                job = await self._api("/api/jobs", {"title": f"bench call {number}"})
                track = video_track(self.clip)
                call = Call(job["id"], track, Viewer(track, self.clip))
                self.calls.append(call)  # before joining, so that close() finds it
                publisher = self._participant(
                    call.job_id, [track, *([audio_track()] if self.options.audio else [])])
                call.participants.append(publisher)
                await publisher.join()
                viewer = self._participant(call.job_id, [], call.viewer.on_frame)
                call.participants.append(viewer)
                await viewer.join()
                logger.info("call %d/%d negotiated", next(done), self.options.streams)

        tasks = [asyncio.create_task(open_call(n)) for n in range(1, self.options.streams + 1)]
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        viewers = [call.viewer for call in self.calls] + [self.baseline.viewer]
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max(20.0, self.options.streams * 1.0)):
                for viewer in viewers:
                    await viewer.calibrated.wait()
        if missing := sum(not v.calibrated.is_set() for v in viewers):
            logger.warning("%d viewers have no identified frame yet; measuring anyway",
                           missing)

    # -- measuring ------------------------------------------------------------------

    async def join_late(self, stop: asyncio.Event) -> None:
        """Every ``join_every`` seconds a new viewer joins a running call, round robin,
        and leaves once its first frame is in."""
        for number in itertools.count():
            if stop.is_set():
                return
            started = time.monotonic()
            first = FirstFrame()
            joiner = self._participant(self.calls[number % len(self.calls)].job_id, [],
                                       first.on_frame)
            try:
                async with asyncio.timeout(FIRST_FRAME_TIMEOUT_S):
                    await joiner.join()
                    await first.arrived.wait()
                if not first.keyframe:
                    raise BenchError("the first frame is not a keyframe")
                self.joins.append((started, (first.at - started) * 1000))
            except (TimeoutError, BenchError, aiohttp.ClientError) as exc:
                self.joins.append((started, None))
                logger.warning("late viewer %d: no first frame (%r)", number + 1, exc)
            finally:
                await joiner.leave()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(
                        max(0.0, started + self.options.join_every - time.monotonic())):
                    await stop.wait()

    async def measure(self) -> dict[str, Any]:
        options = self.options
        logger.info("warming up %g s", options.warmup)
        stop = asyncio.Event()
        joiners = asyncio.create_task(self.join_late(stop))  # from the warm-up on
        await asyncio.sleep(options.warmup)
        pid = self.server.pid
        self.loop_lag.lags_ms.clear()
        start = CpuMark.now(pid)
        self.rss_trace.append((0.0, process_rss_mb(pid)))
        drops = udp_drops(pid), udp_drops(os.getpid())
        self.window_start = start.wall
        logger.info("measuring %g s", options.seconds)
        previous = start
        frames_before = sum(call.viewer.frames for call in self.calls)
        progress_every = 1 if sys.stderr.isatty() else 5
        for second in itertools.takewhile(lambda s: s <= options.seconds, itertools.count(1)):
            await asyncio.sleep(start.wall + second - time.monotonic())
            self.server.check_alive()
            if second < options.seconds:  # the window's end is sampled below
                self.rss_trace.append((float(second), process_rss_mb(pid)))
            if second % progress_every == 0:
                mark = CpuMark.now(pid)
                frames = sum(call.viewer.frames for call in self.calls)
                self._progress(second, mark.cores_since(previous),
                               (frames - frames_before) / (mark.wall - previous.wall))
                previous, frames_before = mark, frames
        await asyncio.sleep(start.wall + options.seconds - time.monotonic())
        end = CpuMark.now(pid)
        self.rss_trace.append((options.seconds, process_rss_mb(pid)))
        server_drops = drops_since(drops[0], udp_drops(pid))
        client_drops = drops_since(drops[1], udp_drops(os.getpid()))
        lags = list(self.loop_lag.lags_ms)
        stop.set()
        await joiners
        await asyncio.sleep(ARRIVAL_GRACE_S)
        return self.report(start, end, (server_drops, client_drops), lags)

    def first_frames_ms(self) -> list[float]:
        """The late joins begun in the window that got a first frame: how long it took."""
        return [ms for started, ms in self.joins
                if started >= self.window_start and ms is not None]

    def _progress(self, second: int, cores: tuple[float, float, float], fps: float) -> None:
        options = self.options
        logger.info(
            "%s %d streams: %d/%g s, server %.2f cores %.0f MB, client %.2f cores, "
            "%.1f fps a viewer, %d late joins, client loop late by %.0f ms at most",
            options.mode, options.streams, second, options.seconds, cores[0],
            self.rss_trace[-1][1], cores[1], fps / options.streams, len(self.first_frames_ms()),
            max(self.loop_lag.lags_ms[-500:], default=0.0))

    def report(self, start: CpuMark, end: CpuMark, drops: tuple[int, int],
               lags: list[float]) -> dict[str, Any]:
        server_cores, client_cores, machine_cores = end.cores_since(start)
        sent = delivered = unchanged = 0
        latencies: list[float] = []
        worst = 1.0
        for call in self.calls:
            s, d, lat, same = call.viewer.window(start.wall, end.wall)
            sent, delivered, unchanged = sent + s, delivered + d, unchanged + same
            latencies += lat
            worst = min(worst, d / s if s else 0.0)
        _, _, baseline, _ = self.baseline.viewer.window(start.wall, end.wall)
        relay_p50, relay_p95 = percentile(latencies, 50), percentile(latencies, 95)
        base_p50, base_p95 = percentile(baseline, 50), percentile(baseline, 95)
        rss = [mb for _, mb in self.rss_trace]
        wall = end.wall - start.wall
        return {
            "mode": self.options.mode,
            "streams": self.options.streams,
            "seconds": round(wall, 1),
            "warmup_s": self.options.warmup,
            "join_every_s": self.options.join_every,
            "server_cpu_cores": round(server_cores, 3),
            "client_cpu_cores": round(client_cores, 3),
            "machine_cpu_cores": round(machine_cores, 3),
            "cpu_count": os.cpu_count(),
            "delivered_fps_ratio": round(delivered / sent, 4) if sent else 0.0,
            "delivered_ratio_worst_stream": round(worst, 4),
            "publisher_fps": round(sent / wall / len(self.calls), 2),
            "added_latency_ms_p50": _minus(relay_p50, base_p50),
            "added_latency_ms_p95": _minus(relay_p95, base_p95),
            "latency_ms_p50": relay_p50,
            "latency_ms_p95": relay_p95,
            "baseline_latency_ms_p50": base_p50,
            "baseline_latency_ms_p95": base_p95,
            "first_frame_ms_p50": percentile(self.first_frames_ms(), 50),
            "first_frame_ms_p95": percentile(self.first_frames_ms(), 95),
            "first_frame_samples": len(self.first_frames_ms()),
            "first_frame_failures": sum(1 for started, ms in self.joins
                                        if started >= self.window_start and ms is None),
            "server_rss_mb_start": round(rss[0], 1),
            "server_rss_mb": round(rss[-1], 1),
            "server_rss_mb_peak": round(max(rss), 1),
            "server_rss_mb_every_30s": [round(mb, 1) for t, mb in self.rss_trace if t % 30 == 0],
            "generator_overloaded": base_p95 is None or base_p95 > GENERATOR_OVERLOADED_MS,
            "client_loop_lag_ms_p99": percentile(lags, 99),
            "client_loop_lag_ms_max": round(max(lags, default=0.0), 1),
            "server_udp_drops": drops[0],
            "client_udp_drops": drops[1],
            "unchanged_frames_ratio": round(unchanged / delivered, 4) if delivered else 0.0,
            "unidentified_frames": sum(call.viewer.unidentified for call in self.calls),
            "audio": self.options.audio,
            "video": DESCRIPTION,
        }

    async def close(self) -> None:
        participants = [p for call in self.calls for p in reversed(call.participants)]
        await asyncio.gather(*(p.leave() for p in participants), return_exceptions=True)
        await self.baseline.close()
        await self.loop_lag.stop()


def _minus(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else round(a - b, 2)


async def run(options: Options) -> dict[str, Any]:
    """Start the server, run the calls, measure, stop everything; the report."""
    clip = load_video_clip()
    if options.profile:
        options.profile.unlink(missing_ok=True)  # none of an earlier run's
    with tempfile.TemporaryDirectory(prefix="videoassist-bench-") as workdir:
        server = ServerProcess(options.mode, Path(workdir), options.profile)
        logger.info("starting the server (%s mode) on %s%s", options.mode, server.url,
                    " under cProfile" if options.profile else "")
        server.start()
        try:
            async with aiohttp.ClientSession() as http:
                await server.wait_ready(http)
                bench = RelayBench(options, server, http, clip)
                try:
                    logger.info("opening %d calls (a publisher and a viewer each)",
                                options.streams)
                    await bench.setup()
                    result = await bench.measure()
                finally:
                    await bench.close()
        finally:
            server.stop()
        if options.profile:
            if not options.profile.is_file():
                raise BenchError(f"the server wrote no profile to {options.profile}; "
                                 f"its last output:\n{server.output_tail()}")
            # The server's whole life, its event loop's thread (not the worker threads).
            result["server_profile"] = {"path": str(options.profile),
                                        "top_own_time": profile_top(options.profile)}
    if result["generator_overloaded"]:
        logger.warning("the generator was short of CPU (its direct pair's frames were "
                       "%s ms late at p95): take this run's latencies with care",
                       result["baseline_latency_ms_p95"])
    if options.mode == "transcode" and result["unchanged_frames_ratio"] > 0.5:
        logger.warning("in transcode mode the viewers got the publishers' frames unchanged: "
                       "does this server know VIDEOASSIST_MEDIA_TRANSCODE=always?")
    return result
