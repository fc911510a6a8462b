"""videoassist against Janus in one series: relay runs of the same load, interleaved.

Each round runs ``bench.py relay`` once against each server, as a child process of its
own (a fresh generator each time), alternating which goes first; every run's JSON is
appended to a file as it ends. The report holds each server's medians and their ratio
(videoassist over Janus). A run that fails is counted, logged, and the series goes on.
Each run's JSON also says the machine's load average (1 minute) before it began;
each run's progress (its stderr) goes to a file beside the JSON's, ending in ``.log``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loadgen import BenchError
from loadgen.choices import SERVERS

logger = logging.getLogger("bench")

BENCH = Path(__file__).resolve().parents[1] / "bench.py"
# The medians reported for each server; the first is the one the ratio is about.
FIELDS = ("server_cpu_ms_per_packet", "server_cpu_cores", "packets_per_s",
          "delivered_fps_ratio", "added_latency_ms_p95", "first_frame_ms_p95",
          "client_cpu_cores", "machine_cpu_cores", "event_loop_busy_max")
RATIOS = ("server_cpu_ms_per_packet", "server_cpu_cores")
STOP_WITHIN_S = 30.0  # for an interrupted run to close its calls and stop its server


@dataclass(frozen=True)
class Options:
    calls: int
    viewers: int
    rounds: int
    seconds: float
    warmup: float
    join_every: float
    audio: bool
    workers: int | None
    out: Path | None   # where each run's JSON goes, a line each (appended)


def relay_args(options: Options, server: str) -> list[str]:
    args = ["relay", "--server", server, "--streams", str(options.calls),
            "--viewers", str(options.viewers), "--seconds", f"{options.seconds:g}",
            "--warmup", f"{options.warmup:g}", "--join-every", f"{options.join_every:g}",
            "--json"]
    if not options.audio:
        args.append("--no-audio")
    if options.workers is not None and server == "videoassist":
        args += ["--workers", str(options.workers)]
    return args


async def one_run(args: list[str], log: Path) -> dict[str, Any] | None:
    """``bench.py ARGS`` in a child process: its JSON, or None when it failed (its
    stderr's last lines logged). Its stderr is appended to ``log``."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(BENCH), *args, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, stdin=asyncio.subprocess.DEVNULL)
    try:
        stdout, stderr = await proc.communicate()
    except asyncio.CancelledError:  # interrupted: the run stops its server, then ends
        proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), STOP_WITHIN_S)
        except TimeoutError:
            proc.kill()  # its server goes with it (server.die_with_parent)
            await proc.wait()
        raise
    with log.open("ab") as file:
        file.write(f"== bench.py {' '.join(args)}\n".encode() + stderr)
    if proc.returncode != 0:
        tail = "\n".join(stderr.decode(errors="replace").splitlines()[-8:])
        logger.warning("bench.py %s failed (%s):\n%s", " ".join(args), proc.returncode, tail)
        return None
    result: dict[str, Any] = json.loads(stdout)
    return result


def medians(runs: list[dict[str, Any]]) -> dict[str, Any]:
    summary: dict[str, Any] = {"runs": len(runs)}
    for name in FIELDS:
        values = [run[name] for run in runs if isinstance(run.get(name), int | float)]
        summary[name] = round(statistics.median(values), 4) if values else None
        summary[f"{name}_each_run"] = [run.get(name) for run in runs]
    summary["generator_overloaded"] = sum(bool(run.get("generator_overloaded")) for run in runs)
    summary["load_average_before"] = [run.get("load_average_before") for run in runs]
    return summary


async def run(options: Options) -> dict[str, Any]:
    out = options.out or Path(tempfile.mkstemp(
        prefix=f"videoassist-compare-{time.strftime('%Y%m%dT%H%M%S')}-", suffix=".jsonl")[1])
    runs: dict[str, list[dict[str, Any]]] = {server: [] for server in SERVERS}
    failed = dict.fromkeys(SERVERS, 0)
    started = time.monotonic()
    for round_number in range(1, options.rounds + 1):
        order = SERVERS if round_number % 2 else tuple(reversed(SERVERS))
        for server in order:
            logger.info("round %d of %d: %s", round_number, options.rounds, server)
            begun, load = time.monotonic(), os.getloadavg()[0]
            result = await one_run(relay_args(options, server), out.with_suffix(".log"))
            if result is None:
                failed[server] += 1
                continue
            result["load_average_before"] = round(load, 2)  # the machine's, 1 minute
            runs[server].append(result)
            with out.open("a", encoding="utf-8") as file:
                file.write(json.dumps(result) + "\n")
            logger.info("%s: %.4f CPU-ms a packet, %.2f server cores, %.0f packets/s, "
                        "%.1f%% of frames delivered (%.0f s; %.0f s in all)", server,
                        result["server_cpu_ms_per_packet"] or 0, result["server_cpu_cores"],
                        result["packets_per_s"], 100 * result["delivered_fps_ratio"],
                        time.monotonic() - begun, time.monotonic() - started)
    if not all(runs.values()):
        raise BenchError(f"no successful run of {[s for s in SERVERS if not runs[s]]}; "
                         f"the runs that worked are in {out}")
    report: dict[str, Any] = {
        "benchmark": "compare", "calls": options.calls, "viewers": options.viewers,
        "rounds": options.rounds, "seconds": options.seconds,
        "workers_requested": options.workers, "runs_file": str(out),
        "progress_file": str(out.with_suffix(".log")),
        "failed_runs": failed,
    }
    for server in SERVERS:
        report[server] = medians(runs[server])
    for name in RATIOS:
        ours, theirs = report["videoassist"][name], report["janus"][name]
        report[f"ratio_{name}"] = round(ours / theirs, 2) if ours and theirs else None
    return report
