#!/usr/bin/env python3
"""Measure the media relay of ``videoassist serve``: CPU, memory, loss, latency.

    python scripts/bench.py relay --mode forward|transcode --streams N --seconds S --json

Starts the server as a child process and, in this process, N calls over loopback:
a publisher sending a pre-encoded 720p30 VP8 clip (and Opus) and a viewer counting the
frames it gets, undecoded. The method and the measured tables: docs/performance.md.
Progress goes to stderr; with ``--json``, stdout holds one JSON object, nothing else.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # videoassist, and tests.media.clips for the clip

from loadgen import BenchError  # noqa: E402  (found next to this file)
from loadgen.relay import Options, run  # noqa: E402
from loadgen.server import TRANSCODE  # noqa: E402

logger = logging.getLogger("bench")


def parse_args(argv: list[str] | None) -> tuple[Options, bool]:
    """The run's options, and whether to print JSON."""
    parser = argparse.ArgumentParser(prog="bench.py", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="benchmark", required=True, metavar="BENCHMARK")
    relay = sub.add_parser("relay", help="publishers and viewers through the server")
    relay.add_argument("--mode", choices=sorted(TRANSCODE), default="forward",
                       help="forward encoded frames, or re-encode for every viewer")
    relay.add_argument("--streams", type=int, default=1,
                       help="calls, each one publisher and one viewer (default 1)")
    relay.add_argument("--seconds", type=float, default=30.0,
                       help="length of the measured window (default 30)")
    relay.add_argument("--warmup", type=float, default=2.0,
                       help="seconds between the last call's set-up and the window")
    relay.add_argument("--join-every", type=float, default=1.0,
                       help="seconds between late viewers timed to their first frame")
    relay.add_argument("--no-audio", action="store_true", help="publish video only")
    relay.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    args = parser.parse_args(argv)
    if args.streams < 1:
        parser.error("--streams must be at least 1")
    if args.seconds <= 0 or args.join_every <= 0 or args.warmup < 0:
        parser.error("--seconds and --join-every must be above 0, --warmup at least 0")
    options = Options(args.mode, args.streams, args.seconds, args.warmup, args.join_every,
                      audio=not args.no_audio)
    return options, bool(args.json)


def print_table(result: dict[str, Any]) -> None:
    width = max(map(len, result))
    for name, value in result.items():
        print(f"{name:<{width}}  {value}")


def main(argv: list[str] | None = None) -> int:
    # Our progress at INFO; aiortc's and aioice's chatter only from WARNING up.
    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")
    logger.setLevel(logging.INFO)
    options, as_json = parse_args(argv)
    try:
        result = asyncio.run(run(options))
    except BenchError as exc:
        logger.error("error: %s", exc)
        return 1
    except KeyboardInterrupt:
        return 130
    if as_json:
        print(json.dumps(result))
    else:
        print_table(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
