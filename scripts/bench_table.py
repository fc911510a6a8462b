#!/usr/bin/env python3
"""Medians of benchmark runs, as the markdown tables of docs/performance.md.

    python scripts/bench_table.py runs.jsonl [more.jsonl ...] [--per-run FIELD,FIELD]

Reads what ``scripts/bench.py ... --json`` printed, one JSON object a line, and groups
the runs by configuration: a relay run by its mode and streams ("forward 16", with its
window and warm-up when not the defaults), a snapshot or annotations run by its
options, a tracking run by its size, shapes and windows (a relay run against Janus,
with several viewers a call or a number of workers says so). One table per benchmark:
a row per field (nested ones by dotted name), a column per configuration in the order
first met, each cell the median of its runs. A yes/no field says in how many runs it
was true ("1 of 3"); a field without a value in any run, "none"; a value every run
shares goes under the table. ``--per-run`` adds each run's value in brackets:
"118 (95.2, 118, 140)". Under a relay table: the server's cores a stream, how many
forwarded streams one re-encoded stream's cores carry, and videoassist's CPU per
delivered packet against Janus's under the same load.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# What names a configuration rather than measuring it: not a row of the tables.
IDENTITY = {"benchmark", "mode", "streams", "seconds", "warmup_s", "join_every_s", "audio",
            "server", "viewers", "workers_requested", "nodes_requested", "keyframe_every",
            "calls",
            "snapshots", "warmup_snapshots", "pause_s", "shapes", "warmup_shapes",
            "clear_every", "size", "rounds", "window_s"}
# The same in every run of a machine: under the table when it is.
MACHINE = {"cpu_count"}
PER_STREAM = "server_cpu_cores_per_stream"  # derived for relay runs, after server_cpu_cores
PER_PACKET = "server_cpu_ms_per_packet"


class TableError(Exception):
    """Input that is not a benchmark's JSON: one line on stderr, exit 2."""


@dataclass
class Column:
    label: str
    runs: list[dict[str, Any]] = field(default_factory=list)


def flatten(value: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested results as dotted names: ``sizes.1280x720.latency_ms_p95``."""
    flat: dict[str, Any] = {}
    for name, item in value.items():
        if isinstance(item, dict) and item:
            flat.update(flatten(item, f"{prefix}{name}."))
        else:
            flat[prefix + name] = item
    return flat


def read_runs(paths: Iterable[Path]) -> list[dict[str, Any]]:
    runs = []
    for path in paths:
        for number, line in enumerate(path.read_text("utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                run = json.loads(line)
            except json.JSONDecodeError as exc:
                raise TableError(f"{path}:{number}: not JSON ({exc})") from None
            if not isinstance(run, dict):
                raise TableError(f"{path}:{number}: not a JSON object")
            runs.append(run)
    return runs


def benchmark(run: dict[str, Any]) -> str:
    """``relay``, ``snapshot`` or ``annotations`` (relay runs carry no name of their own)."""
    if "benchmark" in run:
        return str(run["benchmark"])
    if "mode" in run and "streams" in run:
        return "relay"
    raise TableError(f"not a run of scripts/bench.py: {sorted(run)[:6]}...")


def label(run: dict[str, Any]) -> str:
    """A configuration's column heading."""
    kind = benchmark(run)
    if kind == "relay":
        server = "" if run.get("server", "videoassist") == "videoassist" else f"{run['server']} "
        parts = [f"{server}{run['mode']} {run['streams']}"]
        if run.get("viewers", 1) != 1:
            parts[0] += f" x {run['viewers']} viewers"
        if run.get("workers_requested") is not None:
            workers = run["workers_requested"]
            parts.append(f"{workers} worker{'' if workers == 1 else 's'}")
        if run.get("nodes_requested") is not None:
            nodes = run["nodes_requested"]
            parts.append(f"{nodes} node{'' if nodes == 1 else 's'} behind nginx")
        if abs(float(run.get("seconds", 30)) - 30) > 1:
            parts.append(f"{float(run['seconds']):.0f} s")
        if run.get("warmup_s", 2) != 2:
            parts.append(f"warm-up {run['warmup_s']:g} s")
        if run.get("join_every_s", 1) == 0:
            parts.append("no late viewers")
        elif run.get("join_every_s", 1) != 1:
            parts.append(f"a join every {run['join_every_s']:g} s")
        if run.get("audio") is False:
            parts.append("no audio")
        return ", ".join(parts)
    if kind == "snapshot":
        keyframes = run.get("keyframe_every", 0)
        return (f"keyframes {'on request' if not keyframes else f'every {keyframes}'}, "
                f"{run.get('calls', 1)} calls at once, pause {run.get('pause_s', 0.2):g} s")
    if kind == "annotations":
        return f"{run.get('shapes')} arrows"
    if kind == "tracking":
        return (f"{run.get('size')}, {run.get('shapes')} shapes, {run.get('rounds')} rounds "
                f"of {run.get('window_s', 0):g} s")
    return kind


def group(runs: list[dict[str, Any]]) -> dict[str, list[Column]]:
    """Benchmark -> its configurations, each with its runs, in the order first met."""
    tables: dict[str, dict[str, Column]] = {}
    for run in runs:
        columns = tables.setdefault(benchmark(run), {})
        heading = label(run)
        columns.setdefault(heading, Column(heading)).runs.append(run)
    return {kind: list(columns.values()) for kind, columns in tables.items()}


def number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def fmt(value: float) -> str:
    """Three significant digits, whole numbers from 1000 up (no 1.39e+03)."""
    if abs(value) >= 1000:
        return f"{value:.0f}"
    return f"{value:.3g}"


def cell(values: list[Any], per_run: bool = False) -> str:
    """The median of the runs' values (or how many said yes), and each run's if asked."""
    present = [v for v in values if v is not None]
    if not present:
        return "none"
    if all(isinstance(v, bool) for v in present):
        return f"{sum(present)} of {len(values)}"
    if all(number(v) for v in present):
        text = fmt(statistics.median(present))
        if per_run and len(values) > 1:
            text += " (" + ", ".join("none" if v is None else fmt(v) for v in values) + ")"
        return text
    if all(isinstance(v, list) and v and all(number(x) for x in v) for v in present):
        lengths = {len(v) for v in present}
        if len(lengths) == 1:  # element by element, as server_rss_mb_every_30s
            return " ".join(fmt(statistics.median(xs)) for xs in zip(*present, strict=True))
    texts = {json.dumps(v, sort_keys=True) if not isinstance(v, str) else v for v in present}
    return texts.pop() if len(texts) == 1 else "varies"


def derived(kind: str, run: dict[str, Any]) -> dict[str, Any]:
    """A run's flat fields, with the relay's server cores a stream after its cores."""
    flat: dict[str, Any] = {}
    for name, value in flatten(run).items():
        flat[name] = value
        streams = run.get("streams", 0) * run.get("viewers", 1)  # outgoing video streams
        if kind == "relay" and name == "server_cpu_cores" and number(value) \
                and number(streams) and streams > 0:
            flat[PER_STREAM] = value / streams
    return flat


def table(kind: str, columns: list[Column], per_run: frozenset[str] = frozenset()) -> str:
    """One benchmark's markdown table, the values all its runs share under it."""
    flats = [[derived(kind, run) for run in column.runs] for column in columns]
    names: list[str] = []
    for runs in flats:
        for flat in runs:
            names += [n for n in flat if n not in names and n.split(".")[0] not in IDENTITY]
    shared: list[str] = []
    rows = [
        "| field | " + " | ".join(column.label for column in columns) + " |",
        "|---|" + "---:|" * len(columns),
        "| runs | " + " | ".join(str(len(column.runs)) for column in columns) + " |",
    ]
    for name in names:
        if name.startswith("server_profile."):
            continue  # a profile is read with pstats, not as a median
        values = [[flat.get(name) for flat in runs] for runs in flats]
        everything = [v for column in values for v in column]
        if (name in MACHINE or not number(everything[0])) \
                and all(v == everything[0] for v in everything):
            shared.append(f"`{name}` {cell(everything)}")  # cpu_count, video, code...
            continue
        cells = [cell(column, name in per_run) for column in values]
        rows.append(f"| `{name}` | " + " | ".join(cells) + " |")
    lines = [f"### {kind}", "", *rows, ""]
    if shared:
        lines += ["Every run: " + "; ".join(shared) + ".", ""]
    if kind == "relay":
        lines += equal_cpu(columns, flats)
        lines += against_janus(columns, flats)
    return "\n".join(lines)


def against_janus(columns: list[Column], flats: list[list[dict[str, Any]]]) -> list[str]:
    """videoassist's median CPU per delivered packet over Janus's, for each videoassist
    configuration that has a Janus one with the same load."""
    def load(column: Column) -> tuple[Any, ...]:
        run = column.runs[0]
        return (run.get("streams"), run.get("viewers", 1), run.get("seconds"),
                run.get("warmup_s"), run.get("join_every_s"), run.get("audio"))

    medians: dict[str, float] = {}
    for column, runs in zip(columns, flats, strict=True):
        values = [f[PER_PACKET] for f in runs if number(f.get(PER_PACKET))]
        if values:
            medians[column.label] = statistics.median(values)
    janus = {load(c): c.label for c in columns
             if c.runs[0].get("server") == "janus" and c.label in medians}
    lines = []
    for column in columns:
        theirs = janus.get(load(column))
        if column.runs[0].get("server", "videoassist") != "videoassist" \
                or column.label not in medians or theirs is None or not medians[theirs]:
            continue
        lines.append(f"Server CPU a delivered packet, {column.label} against {theirs}: "
                     f"{medians[column.label]:.3g} ms against {medians[theirs]:.3g} ms, "
                     f"{medians[column.label] / medians[theirs]:.1f} times.")
    return [*lines, ""] if lines else []


def equal_cpu(columns: list[Column], flats: list[list[dict[str, Any]]]) -> list[str]:
    """How many times a forwarded stream's server cores a re-encoded stream takes."""
    per_stream: dict[str, float] = {}
    for column, runs in zip(columns, flats, strict=True):
        values = [f[PER_STREAM] for f in runs if number(f.get(PER_STREAM))]
        if values:
            per_stream[column.label] = statistics.median(values)
    modes = {column.label: column.runs[0].get("mode") for column in columns
             if column.runs[0].get("server", "videoassist") == "videoassist"}
    forward = [c for c in per_stream if modes.get(c) == "forward" and per_stream[c] > 0]
    lines = [f"Server cores a stream, {t} against forward: "
             + ", ".join(f"{per_stream[t] / per_stream[f]:.1f} times at {f}" for f in forward)
             + "."
             for t in per_stream if modes.get(t) == "transcode" and forward]
    return [*lines, ""] if lines else []


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench_table.py",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("files", nargs="+", type=Path, metavar="FILE.jsonl")
    parser.add_argument("--per-run", default="", metavar="FIELD,FIELD",
                        help="fields to show each run's value of, in brackets")
    args = parser.parse_args(argv)
    per_run = frozenset(n.strip() for n in args.per_run.split(",") if n.strip())
    try:
        tables = group(read_runs(args.files))
    except (OSError, TableError) as exc:
        print(f"bench_table.py: {exc}", file=sys.stderr)
        return 2
    print("\n".join(table(kind, columns, per_run) for kind, columns in tables.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
