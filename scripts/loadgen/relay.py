"""The relay benchmark: N calls through the server, measured over a window.

Each call is one publisher (720p30 VP8 and, unless disabled, Opus) and V viewers, so
the server forwards N x V outgoing video streams. Beside them: the direct pair (the
latency baseline) and, every ``join_every`` seconds, a viewer joining a running call to
time its first frame, then leaving; with ``small_buffer_join_every``, also late viewers
that receive and decode as a browser does, their socket receive buffer 256 KiB, timed
to their first decoded picture. The server is videoassist or, for comparison,
Janus (``backends``). docs/performance.md explains each reported field.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from loadgen import BenchError
from loadgen.backends import Backend, FleetBackend, Peer, backend
from loadgen.media import (
    DESCRIPTION,
    FirstFrame,
    FirstPicture,
    PacketCount,
    ReceiveBuffer,
    TimedTrack,
    Viewer,
    audio_track,
    load_video_clip,
    video_track,
)
from loadgen.peers import DirectPair
from loadgen.probes import (
    CpuMark,
    LoopLag,
    children_by_parent,
    descendants,
    drops_since,
    percentile,
    profile_top,
    server_cpu_seconds,
    server_rss_mb,
    udp_drops,
    worker_cpu_seconds,
)

logger = logging.getLogger("bench")

FIRST_FRAME_TIMEOUT_S = 5.0
SETUP_CONCURRENCY = 4   # calls negotiated at once
ARRIVAL_GRACE_S = 1.0   # after the window, for frames sent in it still on their way
# Past this, the direct pair (the baseline) is late by more than a frame interval: the
# generator itself is short of CPU and the run says more about it than about the server.
GENERATOR_OVERLOADED_MS = 1000 / 30
# The small-buffer late viewers' socket receive buffer: what aioice asks for (Linux
# grants twice that), set explicitly so that the measurement does not move with it.
SMALL_BUFFER_BYTES = 256 * 1024
# How long a small-buffer late viewer stays after its first picture: its socket's drops
# are read then, so that they cover the catch-up (a paced one lasts the cached run's
# age, under 2 s with this clip).
SMALL_BUFFER_STAY_S = 2.0


@dataclass(frozen=True)
class Options:
    mode: str           # "forward" or "transcode"
    streams: int        # calls
    seconds: float
    warmup: float
    join_every: float
    audio: bool
    profile: Path | None = None  # run the server under cProfile, its statistics there
    viewers: int = 1    # viewers per call
    workers: int | None = None   # videoassist serve --workers N; None: its default
    server: str = "videoassist"  # or "janus"
    nodes: int | None = None     # N nodes (serve --workers 1) behind nginx; None: one server
    small_buffer_join_every: float = 0.0  # seconds between small-buffer late viewers; 0: none


@dataclass
class Call:
    room: int           # the videoassist job, or the Janus room
    track: TimedTrack   # the publisher's video
    viewers: list[Viewer]
    feed: int | None = None  # the publisher's id once joined (Janus: its feed)
    participants: list[Peer] = field(default_factory=list)


@dataclass(frozen=True)
class Window:
    """What is read at each end of the measured window."""

    cpu: CpuMark
    packets: int                  # RTP packets that had reached the viewers
    workers: dict[int, float]     # CPU seconds of each worker process, by pid
    loops: dict[str, float] | None  # CPU seconds of each worker's event loop
    loops_wall: float             # when the loops were read
    sides: dict[str, float]       # CPU seconds of the processes beside (proxy, database)


class RelayBench:
    def __init__(self, options: Options, server: Backend, http: aiohttp.ClientSession,
                 clip: tuple[bytes, ...]) -> None:
        self.options = options
        self.server = server
        self.http = http
        self.clip = clip
        self.calls: list[Call] = []
        self.baseline = DirectPair(clip, options.audio)
        self.loop_lag = LoopLag()
        # RTP packets the server delivered: at every viewer, late ones included.
        self.packets = PacketCount()
        # Late joins, from the warm-up on: (when it began, ms to its first frame or
        # None if it got none). Those begun in the window are reported.
        self.joins: list[tuple[float, float | None]] = []
        # The same joins' signalling alone (videoassist): from the WebSocket's connect
        # to the server's ``joined``, as (when it began, ms).
        self.signalling_ms: list[tuple[float, float]] = []
        # Small-buffer late joins: (when it began, ms to its first decoded picture or
        # None, datagrams dropped at its socket), and the buffer the kernel granted.
        self.small_joins: list[tuple[float, float | None, int]] = []
        self.small_buffer_granted: int | None = None
        self.window_start = math.inf
        self.rss_trace: list[tuple[float, float]] = []  # (second of the window, MiB)
        self.window: tuple[Window, Window] | None = None  # its two ends, once measured

    # -- setting up ----------------------------------------------------------------

    async def setup(self) -> None:
        await self.server.sign_in(self.http)
        self.loop_lag.start()
        await self.baseline.start()
        # A fleet's calls one after another: each placement then sees the calls before
        # it (placed at once, several would find the same node least loaded).
        limit = asyncio.Semaphore(1 if self.options.nodes else SETUP_CONCURRENCY)
        done = itertools.count(1)

        async def open_call(number: int) -> None:
            async with limit:
                room = await self.server.open_call(number)
                track = video_track(self.clip)
                call = Call(room, track, [Viewer(track, self.clip)
                                          for _ in range(self.options.viewers)])
                self.calls.append(call)  # before joining, so that close() finds it
                publisher = self.server.participant(
                    room, None, [track, *([audio_track()] if self.options.audio else [])])
                call.participants.append(publisher)
                await publisher.join()
                call.feed = publisher.id
                for viewer in call.viewers:
                    peer = self.server.participant(room, call.feed, [], viewer.on_frame,
                                                   self.packets)
                    call.participants.append(peer)
                    await peer.join()
                logger.info("call %d/%d negotiated", next(done), self.options.streams)

        tasks = [asyncio.create_task(open_call(n)) for n in range(1, self.options.streams + 1)]
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        viewers = [v for call in self.calls for v in call.viewers] + [self.baseline.viewer]
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
        and leaves once its first frame is in; none with ``join_every`` 0."""
        if not self.options.join_every:
            return
        for number in itertools.count():
            if stop.is_set():
                return
            started = time.monotonic()
            first = FirstFrame(until_keyframe=not self.server.starts_at_keyframe)
            call = self.calls[number % len(self.calls)]
            joiner = self.server.participant(call.room, call.feed, [], first.on_frame,
                                             self.packets)
            try:
                async with asyncio.timeout(FIRST_FRAME_TIMEOUT_S):
                    await joiner.join()
                    await first.arrived.wait()
                if not first.keyframe:
                    raise BenchError("the first frame is not a keyframe")
                self.joins.append((started, (first.at - started) * 1000))
                if (joined := getattr(joiner, "joined_at", None)) is not None:
                    self.signalling_ms.append((started, (joined - started) * 1000))
            except (TimeoutError, BenchError, aiohttp.ClientError) as exc:
                self.joins.append((started, None))
                logger.warning("late viewer %d: no first frame (%r)", number + 1, exc)
            finally:
                await joiner.leave()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(
                        max(0.0, started + self.options.join_every - time.monotonic())):
                    await stop.wait()

    async def join_small_buffer(self, stop: asyncio.Event) -> None:
        """Every ``small_buffer_join_every`` seconds (or once the last has left) a new
        viewer joins a running call, round robin: aiortc's own receiver and decoder,
        its sockets' receive buffer SMALL_BUFFER_BYTES. Timed to its first decoded
        picture; it leaves SMALL_BUFFER_STAY_S later (or when the window ends), its
        socket's drops read then."""
        every = self.options.small_buffer_join_every
        if not every:
            return
        with contextlib.suppress(TimeoutError):  # between the other late joins
            async with asyncio.timeout(min(every, self.options.join_every or every) / 2):
                await stop.wait()
        for number in itertools.count():
            if stop.is_set():
                return
            started = time.monotonic()
            call = self.calls[number % len(self.calls)]
            joiner = self.server.participant(call.room, call.feed, [], None, self.packets)
            buffer = ReceiveBuffer(joiner.pc, SMALL_BUFFER_BYTES)
            first = FirstPicture()
            first.watch(joiner.pc)
            ms: float | None = None
            try:
                async with asyncio.timeout(FIRST_FRAME_TIMEOUT_S):
                    await joiner.join()
                    await first.arrived.wait()
                ms = (first.at - started) * 1000
                with contextlib.suppress(TimeoutError):  # or until the window ends
                    async with asyncio.timeout(SMALL_BUFFER_STAY_S):
                        await stop.wait()
            except (TimeoutError, BenchError, aiohttp.ClientError) as exc:
                logger.warning("small-buffer late viewer %d: no first picture (%r)",
                               number + 1, exc)
            finally:
                drops = buffer.drops()
                self.small_buffer_granted = buffer.granted or self.small_buffer_granted
                self.small_joins.append((started, ms, drops))
                await joiner.leave()
                await first.close()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(0.0, started + every - time.monotonic())):
                    await stop.wait()

    async def _window_end(self, loops_first: bool) -> Window:
        """Read the counters; the event loops' CPU (a scrape, of videoassist only)
        before the rest at the window's start and after it at its end, so that the
        scrapes fall outside the window."""
        pids = self.server.process.pids
        loops: dict[str, float] | None = None
        loops_wall = 0.0
        if loops_first:
            loops, loops_wall = await self.server.event_loop_cpu(), time.monotonic()
        sides = {role: server_cpu_seconds(pid)
                 for role, pid in self.server.process.side_pids.items()}
        mark = Window(CpuMark.now(*pids), self.packets.packets, worker_cpu_seconds(*pids),
                      loops, loops_wall, sides)
        if not loops_first:
            loops, loops_wall = await self.server.event_loop_cpu(), time.monotonic()
            mark = Window(mark.cpu, mark.packets, mark.workers, loops, loops_wall, sides)
        return mark

    def _viewer_frames(self) -> int:
        return sum(viewer.frames for call in self.calls for viewer in call.viewers)

    async def measure(self) -> dict[str, Any]:
        options = self.options
        logger.info("warming up %g s", options.warmup)
        stop = asyncio.Event()
        joiners = asyncio.create_task(self.join_late(stop))  # from the warm-up on
        small = asyncio.create_task(self.join_small_buffer(stop))
        await asyncio.sleep(options.warmup)
        pids = self.server.process.pids
        self.loop_lag.lags_ms.clear()
        start = await self._window_end(loops_first=True)
        self.rss_trace.append((0.0, server_rss_mb(*pids)))
        drops = server_udp_drops(pids), udp_drops(os.getpid())
        self.window_start = start.cpu.wall
        logger.info("measuring %g s", options.seconds)
        previous, packets_before = start.cpu, start.packets
        frames_before = self._viewer_frames()
        progress_every = 1 if sys.stderr.isatty() else 5
        for second in itertools.takewhile(lambda s: s <= options.seconds, itertools.count(1)):
            await asyncio.sleep(start.cpu.wall + second - time.monotonic())
            self.server.process.check_alive()
            if second < options.seconds:  # the window's end is sampled below
                self.rss_trace.append((float(second), server_rss_mb(*pids)))
            if second % progress_every == 0:
                mark = CpuMark.now(*pids)
                frames, packets = self._viewer_frames(), self.packets.packets
                wall = mark.wall - previous.wall
                self._progress(second, mark.cores_since(previous),
                               (frames - frames_before) / wall,
                               (packets - packets_before) / wall)
                previous, frames_before, packets_before = mark, frames, packets
        await asyncio.sleep(start.cpu.wall + options.seconds - time.monotonic())
        end = await self._window_end(loops_first=False)
        self.window = start, end
        self.rss_trace.append((options.seconds, server_rss_mb(*pids)))
        server_drops = drops_since(drops[0], server_udp_drops(pids))
        client_drops = drops_since(drops[1], udp_drops(os.getpid()))
        lags = list(self.loop_lag.lags_ms)
        stop.set()
        await joiners
        await small
        await asyncio.sleep(ARRIVAL_GRACE_S)
        return self.report(start, end, (server_drops, client_drops), lags)

    def first_frames_ms(self) -> list[float]:
        """The late joins begun in the window that got a first frame: how long it took."""
        return [ms for started, ms in self.joins
                if started >= self.window_start and ms is not None]

    def small_buffer_report(self) -> dict[str, Any]:
        """The small-buffer late joins begun in the window: their first decoded
        picture, failures, and the datagrams dropped at their sockets."""
        joins = [(ms, drops) for started, ms, drops in self.small_joins
                 if started >= self.window_start]
        first = [ms for ms, _ in joins if ms is not None]
        return {
            "small_buffer_join_every_s": self.options.small_buffer_join_every,
            "small_buffer_rcvbuf_bytes": self.small_buffer_granted,
            "small_buffer_first_frame_ms_p50": percentile(first, 50),
            "small_buffer_first_frame_ms_p95": percentile(first, 95),
            "small_buffer_first_frame_ms_max": round(max(first), 2) if first else None,
            "small_buffer_first_frame_samples": len(first),
            "small_buffer_first_frame_failures": len(joins) - len(first),
            "small_buffer_udp_drops": sum(drops for _, drops in joins),
            "small_buffer_joins_with_drops": sum(1 for _, drops in joins if drops),
        }

    def _progress(self, second: int, cores: tuple[float, float, float], fps: float,
                  packets_per_s: float) -> None:
        options = self.options
        logger.info(
            "%s %s %d calls x %d viewers: %d/%g s, server %.2f cores %.0f MB, client %.2f "
            "cores, %.1f fps a viewer, %.0f packets/s, %d late joins, client loop late by "
            "%.0f ms at most",
            options.server, options.mode, options.streams, options.viewers, second,
            options.seconds, cores[0], self.rss_trace[-1][1], cores[1],
            fps / (options.streams * options.viewers), packets_per_s,
            len(self.first_frames_ms()), max(self.loop_lag.lags_ms[-500:], default=0.0))

    def report(self, start_window: Window, end_window: Window, drops: tuple[int, int],
               lags: list[float]) -> dict[str, Any]:
        start, end = start_window.cpu, end_window.cpu
        server_cores, client_cores, machine_cores = end.cores_since(start)
        sent = delivered = unchanged = published = 0
        latencies: list[float] = []
        worst = 1.0
        for call in self.calls:
            published += sum(1 for t in call.track.send_times if start.wall <= t < end.wall)
            for viewer in call.viewers:
                s, d, lat, same = viewer.window(start.wall, end.wall)
                sent, delivered, unchanged = sent + s, delivered + d, unchanged + same
                latencies += lat
                worst = min(worst, d / s if s else 0.0)
        _, _, baseline, _ = self.baseline.viewer.window(start.wall, end.wall)
        relay_p50, relay_p95 = percentile(latencies, 50), percentile(latencies, 95)
        base_p50, base_p95 = percentile(baseline, 50), percentile(baseline, 95)
        rss = [mb for _, mb in self.rss_trace]
        signalling = [ms for started, ms in self.signalling_ms if started >= self.window_start]
        wall = end.wall - start.wall
        packets = end_window.packets - start_window.packets
        server_cpu_s = end.server - start.server
        return {
            "server": self.server.name,
            "mode": self.options.mode,
            "streams": self.options.streams,
            "viewers": self.options.viewers,
            "workers_requested": self.options.workers,
            "nodes_requested": self.options.nodes,
            "seconds": round(wall, 1),
            "warmup_s": self.options.warmup,
            "join_every_s": self.options.join_every,
            "server_cpu_cores": round(server_cores, 3),
            "server_cpu_ms_per_packet": round(server_cpu_s * 1000 / packets, 4)
            if packets else None,
            "packets_delivered": packets,
            "packets_per_s": round(packets / wall, 1),
            **workers_report(start_window, end_window),
            "client_cpu_cores": round(client_cores, 3),
            "machine_cpu_cores": round(machine_cores, 3),
            "cpu_count": os.cpu_count(),
            "delivered_fps_ratio": round(delivered / sent, 4) if sent else 0.0,
            "delivered_ratio_worst_stream": round(worst, 4),
            "publisher_fps": round(published / wall / len(self.calls), 2),
            "added_latency_ms_p50": _minus(relay_p50, base_p50),
            "added_latency_ms_p95": _minus(relay_p95, base_p95),
            "latency_ms_p50": relay_p50,
            "latency_ms_p95": relay_p95,
            "baseline_latency_ms_p50": base_p50,
            "baseline_latency_ms_p95": base_p95,
            "first_frame_ms_p50": percentile(self.first_frames_ms(), 50),
            "first_frame_ms_p95": percentile(self.first_frames_ms(), 95),
            "first_frame_samples": len(self.first_frames_ms()),
            "join_signalling_ms_p50": percentile(signalling, 50),
            "join_signalling_ms_p95": percentile(signalling, 95),
            "first_frame_failures": sum(1 for started, ms in self.joins
                                        if started >= self.window_start and ms is None),
            **self.small_buffer_report(),
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
            "unidentified_frames": sum(viewer.unidentified for call in self.calls
                                       for viewer in call.viewers),
            "audio": self.options.audio,
            "video": DESCRIPTION,
        }

    async def close(self) -> None:
        participants = [p for call in self.calls for p in reversed(call.participants)]
        await asyncio.gather(*(p.leave() for p in participants), return_exceptions=True)
        await self.baseline.close()
        await self.loop_lag.stop()


def server_udp_drops(pids: list[int]) -> dict[int, int]:
    """``udp_drops`` of the server's processes and every process under them."""
    parents = children_by_parent()
    return udp_drops(*pids, *(child for pid in pids for child in descendants(pid, parents)))


def _minus(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else round(a - b, 2)


def worker_cores(start: Window, end: Window) -> dict[int, float]:
    """Each worker process's cores over the window, by pid."""
    wall = max(end.cpu.wall - start.cpu.wall, 1e-9)
    return {pid: (end.workers[pid] - start.workers[pid]) / wall
            for pid in end.workers.keys() & start.workers.keys()}


def loops_busy(start: Window, end: Window) -> dict[str, float] | None:
    """Each worker's (or node's) event loop busy fraction over the window."""
    if start.loops is None or end.loops is None:
        return None
    loops_wall = max(end.loops_wall - start.loops_wall, 1e-9)
    return {worker: round((end.loops[worker] - start.loops[worker]) / loops_wall, 3)
            for worker in sorted(end.loops.keys() & start.loops.keys())}


def workers_report(start: Window, end: Window) -> dict[str, Any]:
    """Each worker process's cores (the server's children, or the server itself when
    it has none; a fleet's nodes), busiest first, each worker's event loop busy
    fraction, and the cores of the processes beside the server (a fleet's proxy and
    database)."""
    cores = sorted(worker_cores(start, end).values(), reverse=True)
    busy = loops_busy(start, end)
    wall = max(end.cpu.wall - start.cpu.wall, 1e-9)
    return {
        "workers": len(end.workers),
        "worker_cpu_cores": [round(c, 3) for c in cores],
        "event_loop_busy": busy,
        "event_loop_busy_max": None if busy is None else max(busy.values(), default=None),
        **{f"{role}_cpu_cores": round((end.sides[role] - start.sides[role]) / wall, 3)
           for role in sorted(end.sides.keys() & start.sides.keys())},
    }


async def run(options: Options) -> dict[str, Any]:
    """Start the server, run the calls, measure, stop everything; the report."""
    clip = load_video_clip()
    if options.profile:
        options.profile.unlink(missing_ok=True)  # none of an earlier run's
    with backend(options.server, options.mode, options.profile, options.workers,
                 options.nodes) as server:
        process = server.process
        logger.info("starting %s (%s mode) on %s%s%s", server.name, options.mode, process.url,
                    " under cProfile" if options.profile else "",
                    f" with {options.workers} workers" if options.workers else "")
        try:
            process.start()
            # ssl=False: a fleet's nginx has a certificate of the run's own.
            async with aiohttp.ClientSession(
                    connector=aiohttp.TCPConnector(limit=0, ssl=False)) as http:
                await process.wait_ready(http)
                bench = RelayBench(options, server, http, clip)
                try:
                    logger.info("opening %d calls (a publisher and %d viewers each)",
                                options.streams, options.viewers)
                    await bench.setup()
                    result = await bench.measure()
                    if isinstance(server, FleetBackend) and bench.window is not None:
                        result["nodes"] = await server.nodes_report(
                            worker_cores(*bench.window), loops_busy(*bench.window))
                finally:
                    await bench.close()
        finally:
            process.stop()
        if options.profile:
            if not options.profile.is_file():
                raise BenchError(f"the server wrote no profile to {options.profile}; "
                                 f"its last output:\n{process.output_tail()}")
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
