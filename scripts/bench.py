#!/usr/bin/env python3
"""Measure ``videoassist serve``: its media relay, its snapshots, and annotations.

    python scripts/bench.py relay --mode forward|transcode --streams N --seconds S --json
    python scripts/bench.py relay --streams 8 --viewers 2 --workers 2   # per worker
    python scripts/bench.py relay --streams 8 --viewers 2 --server janus  # the same on Janus
    python scripts/bench.py relay --calls 4 --viewers 2 --nodes 2  # nodes behind nginx
    python scripts/bench.py compare --calls 8 --viewers 2 --rounds 3   # both, interleaved
    python scripts/bench.py relay --streams 16 --profile server.prof   # where its CPU goes
    python scripts/bench.py relay --streams 4 --small-buffer-join-every 1  # late, 256 KiB
    python scripts/bench.py snapshot --sizes 640x360,1280x720 --keyframe-every K --json
    python scripts/bench.py annotations --shapes N --json
    python scripts/bench.py resilience --scenarios offline-5,reload --repetitions 20 --json
    python scripts/bench.py tracking --size 1280x720 --shapes 3 --rounds 5 --json

Starts the server as a child process and, in this process, calls over loopback whose
publishers send a pre-encoded 30 fps VP8 clip (and Opus). ``relay``: N calls, each
with V viewers counting the frames and RTP packets they get, undecoded; CPU (the
server's per packet delivered, each worker's, each event loop's busy share), memory,
loss, latency; against videoassist or Debian's Janus, or (``--nodes N``) N videoassist
nodes on a PostgreSQL database of the run's own behind nginx, reporting each node's
calls, CPU and event loop. ``compare``: relay runs against both servers, interleaved,
and the ratio of their medians.
``snapshot``: for each size, a staff member in the call asks for snapshots of the
publisher's camera, one at a time; the time from request to saved, and the CPU.
``annotations``: the browser client itself, an expert and a customer in two headless
Chromiums (Debian's, through Playwright); the expert draws arrows, one at a time, and
each is timed from the expert's pointerup to the customer's overlay painting it. The
method and the measured tables: docs/performance.md.
``resilience``: a call through a stalled server, a customer offline, moved to another
address, on a thin link, or reloading its page (loadgen/resilience.py, as root: the
customer is in a network namespace of its own); from the network's return, how soon
each side gets the other's new frames, and whether chat or drawings were lost.
``tracking``: pinned shapes (issue 23) on a video of a moving camera whose every frame's
homography is known (tests/support/scene.py): their error against that ground truth,
how soon they are found again after leaving the frame, the server's CPU with them
pinned against without (interleaved windows) and the delay to their transforms
(loadgen/tracking.py).
Progress goes to stderr; with ``--json``, stdout holds one JSON object, nothing else.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import subprocess
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # videoassist, and tests.support.clips for the clip

from bench_table import flatten  # noqa: E402  (found next to this file, as loadgen)
from loadgen import BenchError  # noqa: E402
from loadgen.choices import (  # noqa: E402
    DEFAULT_SCENARIOS,
    MAX_MOVES,
    SERVERS,
    TRANSCODE,
    parse_scenario,
)

# Each benchmark's module (aiortc, aiohttp, the server's own) is imported once the
# command line is known to be good, and only the one that runs.

logger = logging.getLogger("bench")


Run = Callable[[], Coroutine[Any, Any, dict[str, Any]]]


def parse_size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(n) for n in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not WIDTHxHEIGHT: {text!r}") from None
    if not (16 <= width <= 4096 and 16 <= height <= 4096) or width % 2 or height % 2:
        raise argparse.ArgumentTypeError(f"{text}: even sides from 16 to 4096 pixels")
    return width, height


def parse_args(argv: list[str] | None) -> tuple[Run, bool]:
    """The benchmark to run, and whether to print JSON."""
    parser = argparse.ArgumentParser(prog="bench.py", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="benchmark", required=True, metavar="BENCHMARK")
    relay = sub.add_parser("relay", help="publishers and viewers through the server")
    relay.add_argument("--mode", choices=sorted(TRANSCODE), default="forward",
                       help="forward encoded frames, or re-encode for every viewer")
    relay.add_argument("--streams", "--calls", type=int, default=1,
                       help="calls, each one publisher and --viewers viewers (default 1)")
    relay.add_argument("--viewers", type=int, default=1,
                       help="viewers in each call, each receiving the publisher's video "
                            "and audio (default 1)")
    relay.add_argument("--workers", type=int, metavar="N",
                       help="pass --workers N to videoassist serve (default: not passed, "
                            "the server's own default)")
    relay.add_argument("--nodes", type=int, metavar="N",
                       help="N videoassist nodes (serve --workers 1, each its own port "
                            "and data directory) on a throwaway PostgreSQL database, "
                            "behind nginx with docs/deploy.md's site; the calls go "
                            "through nginx (default: one server, reached directly)")
    relay.add_argument("--server", choices=SERVERS, default="videoassist",
                       help="the server to measure: videoassist, or Debian's janus "
                            "(its videoroom plugin) under the same load")
    relay.add_argument("--seconds", type=float, default=30.0,
                       help="length of the measured window (default 30)")
    relay.add_argument("--warmup", type=float, default=2.0,
                       help="seconds between the last call's set-up and the window; late "
                            "viewers already join, uncounted (default 2)")
    relay.add_argument("--join-every", type=float, default=1.0,
                       help="seconds between late viewers timed to their first frame "
                            "(default 1; 0: none)")
    relay.add_argument("--small-buffer-join-every", type=float, default=0.0,
                       metavar="SECONDS",
                       help="seconds between late viewers that receive and decode as a "
                            "browser does (aiortc's own receiver), their socket receive "
                            "buffer 256 KiB, timed to their first decoded picture and "
                            "staying 2 s after it, their sockets' drops counted "
                            "(default 0: none)")
    relay.add_argument("--no-audio", action="store_true", help="publish video only")
    relay.add_argument("--profile", type=Path, metavar="FILE",
                       help="run the server under cProfile (its event loop's thread, its "
                            "whole life), write the statistics to FILE and report the "
                            "functions with the most own time; the server's CPU figures "
                            "then include the profiler's own cost")
    relay.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    compare = sub.add_parser("compare", help="relay runs on videoassist and on janus, "
                                             "interleaved: the medians and their ratio")
    compare.add_argument("--calls", type=int, default=8, help="calls (default 8)")
    compare.add_argument("--viewers", type=int, default=2,
                         help="viewers in each call (default 2)")
    compare.add_argument("--rounds", type=int, default=3,
                         help="runs of each server, one of each a round (default 3)")
    compare.add_argument("--seconds", type=float, default=30.0,
                         help="each run's measured window (default 30)")
    compare.add_argument("--warmup", type=float, default=2.0,
                         help="each run's warm-up (default 2)")
    compare.add_argument("--join-every", type=float, default=0.0,
                         help="seconds between late viewers (default 0: none, the "
                              "forwarding alone)")
    compare.add_argument("--no-audio", action="store_true", help="publish video only")
    compare.add_argument("--workers", type=int, metavar="N",
                         help="videoassist serve --workers N (Janus has no such option)")
    compare.add_argument("--out", type=Path, metavar="FILE.jsonl",
                         help="append each run's JSON there (default: a new file in the "
                              "temp directory, named in the report)")
    compare.add_argument("--json", action="store_true",
                         help="print one JSON object on stdout")
    snap = sub.add_parser("snapshot", help="snapshot requests, from request to saved")
    snap.add_argument("--sizes", default="640x360,1280x720",
                      help="camera sizes, WIDTHxHEIGHT, comma-separated, measured in turn "
                           "(default 640x360,1280x720)")
    snap.add_argument("--keyframe-every", type=int, default=0, metavar="FRAMES",
                      help="the camera's own keyframe interval in frames; 0 (default): "
                           "only when the server asks, as a browser's encoder")
    snap.add_argument("--snapshots", type=int, default=50,
                      help="measured snapshots per call and size (default 50)")
    snap.add_argument("--warmup-snapshots", type=int, default=5,
                      help="snapshots per call taken first and not counted (default 5)")
    snap.add_argument("--pause", type=float, default=0.2,
                      help="seconds from an answer to the next request: a random pause "
                           "between this and twice this (default 0.2)")
    snap.add_argument("--calls", type=int, default=1,
                      help="calls at once, each a camera and a requester (default 1)")
    snap.add_argument("--no-audio", action="store_true", help="publish video only")
    snap.add_argument("--breakdown", action="store_true",
                      help="afterwards, time the server's capture and rendering steps "
                           "in this process on the same clips")
    snap.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    notes = sub.add_parser("annotations",
                           help="arrows in the browser client, from pointerup to painted")
    notes.add_argument("--shapes", type=int, default=50,
                       help="measured arrows (default 50)")
    notes.add_argument("--warmup-shapes", type=int, default=5,
                       help="arrows drawn first and not counted (default 5)")
    notes.add_argument("--clear-every", type=int, default=10, metavar="SHAPES",
                       help="press Clear when the picture has this many arrows (default 10)")
    notes.add_argument("--pause", type=float, default=0.2,
                       help="seconds from a paint to the next arrow: a random pause "
                            "between this and twice this (default 0.2)")
    notes.add_argument("--phone-scale", type=float, default=3.0,
                       help="the customer page's devicePixelRatio (default 3)")
    notes.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    resilience = sub.add_parser("resilience",
                                help="outages of a call: how soon it is live again")
    resilience.add_argument("--scenarios", default=",".join(DEFAULT_SCENARIOS),
                            help="comma-separated, in order: stall-S, offline-S, drop-S "
                                 "(S seconds), move, thin, thin-phone, reload (default "
                                 f"{','.join(DEFAULT_SCENARIOS)})")
    resilience.add_argument("--repetitions", type=int, default=20,
                            help="of each scenario but thin and thin-phone, one window each "
                                 "(default 20)")
    resilience.add_argument("--thin-seconds", type=float, default=20.0,
                            help="the thin scenarios' window (default 20)")
    resilience.add_argument("--without-socket-ping", action="store_true",
                            help="the aiortc clients as the web client was before it "
                                 "pinged a silent socket (for comparison)")
    resilience.add_argument("--json", action="store_true",
                            help="print one JSON object on stdout")
    track = sub.add_parser("tracking",
                           help="pinned shapes followed by the server, against ground truth")
    track.add_argument("--size", type=parse_size, default=(1280, 720),
                       help="the scene's WIDTHxHEIGHT (default 1280x720; encoded once, "
                            "about 20 s at 720p, and cached in the temp directory)")
    track.add_argument("--shapes", type=int, default=3,
                       help="circles pinned on the appliance in each pinned window "
                            "(default 3, at most 8: the call's limit)")
    track.add_argument("--rounds", type=int, default=5,
                       help="rounds of a pinned and an unpinned window, interleaved "
                            "(default 5)")
    track.add_argument("--window", type=float, default=13.0,
                       help="seconds of each window, each from the scene's start (default "
                            "13: the whole scene, the appliance leaving and coming back)")
    track.add_argument("--breakdown", action="store_true",
                       help="afterwards, time the tracking thread's steps (decoding, "
                            "scaling, following) in this process on the same clip")
    track.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    args = parser.parse_args(argv)
    if args.benchmark == "tracking":
        if not 1 <= args.shapes <= 8 or args.rounds < 1 or not 1 <= args.window <= 120:
            parser.error("--shapes: from 1 to 8; --rounds: at least 1; --window: from 1 "
                         "to 120 seconds")
        from loadgen import tracking as tracking_bench
        tracking_options = tracking_bench.Options(args.size, args.shapes, args.rounds,
                                                  args.window, args.breakdown)
        return lambda: tracking_bench.run(tracking_options), bool(args.json)
    if args.benchmark == "resilience":
        scenarios = tuple(s.strip() for s in args.scenarios.split(",") if s.strip())
        try:
            for name in scenarios:
                parse_scenario(name)
        except ValueError as exc:
            parser.error(f"--scenarios: {exc}")
        if not scenarios or len(set(scenarios)) != len(scenarios):
            parser.error("--scenarios: at least one, each once")
        if args.repetitions < 1 or ("move" in scenarios and args.repetitions > MAX_MOVES):
            parser.error(f"--repetitions: at least 1, and with move at most {MAX_MOVES} "
                         "(each move takes a veth pair of the run's namespace)")
        if not 3 <= args.thin_seconds <= 600:
            parser.error("--thin-seconds: from 3 to 600")
        from loadgen import resilience as resilience_bench
        resilience_options = resilience_bench.Options(scenarios, args.repetitions,
                                                      args.thin_seconds,
                                                      socket_ping=not args.without_socket_ping)
        return lambda: resilience_bench.run(resilience_options), bool(args.json)
    if args.benchmark == "annotations":
        if args.shapes < 1 or args.warmup_shapes < 0 or args.clear_every < 1 \
                or args.pause < 0 or not 0.5 <= args.phone_scale <= 4:
            parser.error("--shapes and --clear-every must be at least 1, --warmup-shapes "
                         "and --pause at least 0, --phone-scale from 0.5 to 4")
        from loadgen import annotations as annotations_bench
        annotation_options = annotations_bench.Options(args.shapes, args.warmup_shapes,
                                                       args.clear_every, args.pause,
                                                       args.phone_scale)
        return lambda: annotations_bench.run(annotation_options), bool(args.json)
    if args.benchmark in ("relay", "compare"):
        calls = args.streams if args.benchmark == "relay" else args.calls
        if calls < 1 or args.viewers < 1 or (args.workers is not None and args.workers < 1):
            parser.error("--streams (--calls), --viewers and --workers must be at least 1")
        if args.seconds <= 0 or args.join_every < 0 or args.warmup < 0:
            parser.error("--seconds must be above 0, --join-every and --warmup at least 0")
        if args.benchmark == "relay" and args.small_buffer_join_every < 0:
            parser.error("--small-buffer-join-every must be at least 0")
    if args.benchmark == "compare":
        if args.rounds < 1:
            parser.error("--rounds must be at least 1")
        from loadgen import compare as compare_bench
        compare_options = compare_bench.Options(
            args.calls, args.viewers, args.rounds, args.seconds, args.warmup,
            args.join_every, audio=not args.no_audio, workers=args.workers,
            out=args.out.resolve() if args.out else None)
        return lambda: compare_bench.run(compare_options), bool(args.json)
    if args.benchmark == "relay":
        if args.server == "janus" and (args.mode != "forward" or args.profile
                                       or args.workers is not None or args.nodes is not None):
            parser.error("--server janus: forward mode only, without --profile, --workers "
                         "or --nodes")
        if args.nodes is not None and not (1 <= args.nodes <= 8 and args.workers is None
                                           and args.profile is None):
            parser.error("--nodes: from 1 to 8, without --workers (each node runs one) "
                         "or --profile")
        from loadgen import relay as relay_bench
        options = relay_bench.Options(args.mode, args.streams, args.seconds, args.warmup,
                                      args.join_every, audio=not args.no_audio,
                                      profile=args.profile.resolve() if args.profile else None,
                                      viewers=args.viewers, workers=args.workers,
                                      server=args.server, nodes=args.nodes,
                                      small_buffer_join_every=args.small_buffer_join_every)
        return lambda: relay_bench.run(options), bool(args.json)
    try:
        sizes = tuple(parse_size(s) for s in args.sizes.split(",") if s.strip())
    except argparse.ArgumentTypeError as exc:
        parser.error(f"--sizes: {exc}")
    if not sizes or len(set(sizes)) != len(sizes):
        parser.error("--sizes: at least one size, each once")
    if args.keyframe_every < 0 or args.snapshots < 1 or args.warmup_snapshots < 0 \
            or args.pause < 0 or args.calls < 1:
        parser.error("--snapshots and --calls must be at least 1; --keyframe-every, "
                     "--warmup-snapshots and --pause at least 0")
    from loadgen import snapshot as snapshot_bench
    snapshot_options = snapshot_bench.Options(
        sizes, args.keyframe_every, args.snapshots, args.warmup_snapshots, args.pause,
        args.calls, audio=not args.no_audio, breakdown=args.breakdown)
    return lambda: snapshot_bench.run(snapshot_options), bool(args.json)


def print_table(result: dict[str, Any]) -> None:
    flat = flatten(result)
    width = max(map(len, flat))
    for name, value in flat.items():
        if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            print(name)  # a table, such as the profile's functions: a row a line
            for row in value:
                print("   ", "  ".join(str(cell) for cell in row.values()))
        else:
            print(f"{name:<{width}}  {value}")


def tree_commit() -> dict[str, Any]:
    """The commit of this tree, whose server and client the run measured, and whether
    videoassist/ or web/ differed from it; None where git cannot tell."""
    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True,
                                  text=True, timeout=30, check=True)
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip()

    changed = git("status", "--porcelain", "--", "videoassist", "web")
    return {"commit": git("rev-parse", "--short", "HEAD"),
            "changed": None if changed is None else bool(changed)}


async def interruptible(run: Run) -> dict[str, Any]:
    """``run()``, cancelled by SIGINT or SIGTERM: it then closes its calls and stops its
    server (and compare its run) on the way out, while the rest of the loop still runs
    (asyncio's own Ctrl-C cancels every task at once, aiortc's too, and the way out
    then waits forever)."""
    task = asyncio.current_task()
    assert task is not None
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, task.cancel)
    return await run()


def main(argv: list[str] | None = None) -> int:
    # Our progress at INFO; aiortc's and aioice's chatter only from WARNING up.
    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")
    logger.setLevel(logging.INFO)
    run, as_json = parse_args(argv)
    code = tree_commit()  # before the run, which may take minutes
    try:
        result = asyncio.run(interruptible(run))
    except BenchError as exc:
        logger.error("error: %s", exc)
        return 1
    except (KeyboardInterrupt, asyncio.CancelledError):
        logger.error("interrupted")
        return 130
    result["code"] = code
    if as_json:
        print(json.dumps(result))
    else:
        print_table(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
