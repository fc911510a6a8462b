"""``scripts/bench.py`` runs end to end and reports every field, with sane values.

Smoke tests: one short forward run (a real server process, one call, a late viewer
a second), the same under cProfile, three snapshots at 640x360, and three arrows drawn
in the browser client (two Chromiums). Performance is measured by the bench and written
in docs/performance.md, never asserted here. ``scripts/bench_table.py``, which turns
runs into that page's tables, is tested on runs made up here.
"""

from __future__ import annotations

import json
import math
import os
import pstats
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]

CORES = ("server_cpu_cores", "client_cpu_cores")
MILLISECONDS = ("added_latency_ms_p50", "added_latency_ms_p95",
                "first_frame_ms_p50", "first_frame_ms_p95")
MEGABYTES = ("server_rss_mb", "server_rss_mb_start")


def run_bench(*args: str) -> tuple[dict[str, Any], str]:
    """The JSON object the bench printed, and its stderr."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIDEOASSIST_")}
    proc = subprocess.run(
        [sys.executable, "scripts/bench.py", *args, "--json"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 1, proc.stdout  # the JSON alone on stdout
    return json.loads(lines[0]), proc.stderr


def test_a_short_forward_run_prints_one_json_object_with_every_field() -> None:
    result, stderr = run_bench("relay", "--mode", "forward", "--streams", "1",
                               "--seconds", "3")
    assert "bench: measuring" in stderr  # progress goes to stderr

    assert result["mode"] == "forward"
    assert result["streams"] == 1
    for name in (*CORES, "delivered_fps_ratio", *MILLISECONDS, *MEGABYTES):
        value = result[name]
        assert isinstance(value, int | float) and not isinstance(value, bool), (name, value)
        assert math.isfinite(value), (name, value)
    cpu_count = os.cpu_count() or 1
    for name in CORES:
        assert 0 < result[name] <= cpu_count, (name, result[name])
    # Frames flowed (how many is for docs/performance.md, not for a test).
    assert 0 < result["delivered_fps_ratio"] <= 1
    # Latencies are relative to a baseline, so the added part may be slightly negative.
    assert -1000 < result["added_latency_ms_p50"] < 60_000
    assert -1000 < result["added_latency_ms_p95"] < 60_000
    assert 0 < result["first_frame_ms_p50"] <= result["first_frame_ms_p95"] < 60_000
    assert result["first_frame_samples"] >= 1
    for name in MEGABYTES:
        assert 10 < result[name] < 64 * 1024, (name, result[name])
    # Forwarding means the viewer gets the publisher's own bytes.
    assert result["unchanged_frames_ratio"] > 0.9
    # Which code ran: this tree's commit.
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                          capture_output=True, text=True, check=True).stdout.strip()
    assert result["code"]["commit"] == head
    assert isinstance(result["code"]["changed"], bool)


def test_a_profiled_run_names_the_functions_where_the_servers_time_went(
        tmp_path: Path) -> None:
    profile = tmp_path / "server.prof"
    result, stderr = run_bench("relay", "--streams", "1", "--seconds", "2",
                               "--profile", str(profile))
    assert "under cProfile" in stderr
    assert profile.is_file()  # for python -m pstats
    assert result["server_profile"]["path"] == str(profile)
    top = result["server_profile"]["top_own_time"]
    assert len(top) == 25
    assert set(top[0]) == {"function", "calls", "own_s", "cumulative_s"}
    own = [row["own_s"] for row in top]
    assert own == sorted(own, reverse=True) and own[0] > 0
    # It profiled the server receiving media, not only starting: the RTP path is in it.
    stats = pstats.Stats(str(profile)).stats  # (file, line, name) -> (_, calls, ...)
    received = [calls for (file, _, name), (_, calls, *_) in stats.items()
                if file.endswith("aiortc/rtcrtpreceiver.py") and name == "_handle_rtp_packet"]
    assert received and received[0] > 0, "no RTP packet handled under the profiler"


def test_three_snapshots_at_360p_report_their_latency_and_no_error() -> None:
    result, stderr = run_bench("snapshot", "--sizes", "640x360", "--snapshots", "3",
                               "--warmup-snapshots", "1", "--pause", "0.05")
    assert "640x360: measuring" in stderr
    assert result["benchmark"] == "snapshot"
    assert result["keyframe_every"] == 0  # the default: keyframes only when asked
    assert result["errors"] == 0
    assert list(result["sizes"]) == ["640x360"]
    size = result["sizes"]["640x360"]
    assert size["count"] == 3 and size["errors"] == 0 and size["error_codes"] == {}
    latencies = [size[f"latency_ms_{n}"] for n in ("min", "p50", "p95", "max")]
    for value in latencies:
        assert isinstance(value, int | float) and math.isfinite(value), latencies
    assert 0 < latencies[0] <= latencies[1] <= latencies[2] <= latencies[3] < 10_000
    cpu_count = os.cpu_count() or 1
    assert 0 < size["server_cpu_cores"] <= cpu_count
    assert 0 <= size["server_cpu_cores_idle"] <= cpu_count
    assert 0 < size["client_cpu_cores"] <= cpu_count
    # The camera's own counts: frames since its keyframe, keyframes it was asked for.
    assert size["frames_since_keyframe_max"] >= 1
    assert 0 <= size["keyframes_on_request"] <= size["keyframe_requests"]


@pytest.mark.browser
def test_three_arrows_are_timed_from_pointerup_to_painted_on_the_phone() -> None:
    result, stderr = run_bench("annotations", "--shapes", "3", "--warmup-shapes", "1",
                               "--clear-every", "2", "--pause", "0.05")
    assert "measuring 3 arrows" in stderr
    assert result["benchmark"] == "annotations"
    assert result["samples"] == 3 and result["errors"] == 0 and result["error_codes"] == {}
    assert result["page_errors"] == []
    # Clear was pressed after two arrows: the third was the only one on the picture.
    assert result["shapes_on_picture_max"] == 2
    latency = result["latency_ms"]
    for stage in ("sent", "received", "painted"):
        values = [latency[stage][n] for n in ("min", "p50", "p95", "max")]
        assert all(isinstance(v, int | float) and math.isfinite(v) for v in values), values
        assert values == sorted(values), (stage, values)
    # Each arrow in order: sent, then received, then painted; all within a minute.
    stages = result["stage_ms"]
    assert latency["sent"]["min"] >= 0
    assert stages["sent_to_received"]["min"] > 0
    assert stages["received_to_painted"]["min"] >= 0
    assert latency["painted"]["max"] < 60_000
    # The pages' clocks agree with each other (the method depends on it).
    skew = result["clock_skew_ms"]
    assert abs(skew["before"]) < 50 and abs(skew["after"]) < 50, skew
    cpu_count = os.cpu_count() or 1
    assert 0 < result["server_cpu_cores"] <= cpu_count
    assert 0 < result["browsers_cpu_cores"] <= cpu_count
    assert result["picture"] != "0x0" and result["camera"] != "0x0"


# -- scripts/bench_table.py ------------------------------------------------------------

def relay_run(mode: str, streams: int, cores: float, first_frame_p95: float | None,
              overloaded: bool, **extra: Any) -> dict[str, Any]:
    """A relay run as ``bench.py relay --json`` prints it, with the fields that matter."""
    return {"mode": mode, "streams": streams, "seconds": 30.0, "warmup_s": 2.0,
            "join_every_s": 1.0, "server_cpu_cores": cores, "cpu_count": 2,
            "first_frame_ms_p95": first_frame_p95, "generator_overloaded": overloaded,
            "server_rss_mb_every_30s": [100.0 + streams, 110.0 + streams], "audio": True,
            "video": "1280x720 30 fps VP8", "code": {"commit": "abc1234", "changed": False},
            **extra}


def bench_table(*args: str) -> str:
    proc = subprocess.run([sys.executable, "scripts/bench_table.py", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def row(table: str, name: str) -> list[str]:
    """The cells of the row of field ``name`` (the column headings for ``field``)."""
    for line in table.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells[0] in (name, f"`{name}`"):
            return cells[1:]
    raise AssertionError(f"no row {name!r} in:\n{table}")


def test_the_table_holds_the_median_of_each_configurations_interleaved_runs(
        tmp_path: Path) -> None:
    runs = [
        relay_run("forward", 16, 0.46, 118.0, False),
        relay_run("transcode", 1, 0.41, 92.9, False),
        relay_run("forward", 16, 0.40, 95.2, True),
        relay_run("transcode", 1, 0.38, None, False),
        relay_run("forward", 16, 0.51, 140.0, False),
        relay_run("transcode", 1, 0.45, 120.0, False),
    ]
    first = tmp_path / "runs.jsonl"
    first.write_text("".join(json.dumps(r) + "\n" for r in runs[:4]) + "\n")  # a blank line
    second = tmp_path / "more.jsonl"  # the series carried on in a second file
    second.write_text("".join(json.dumps(r) + "\n" for r in runs[4:]))
    memory = relay_run("forward", 16, 0.48, 186.0, False, seconds=300.1, warmup_s=120.0,
                       server_rss_mb_every_30s=[161.2, 161.7, 165.0])
    (tmp_path / "memory.jsonl").write_text(json.dumps(memory) + "\n")

    table = bench_table(str(first), str(second), str(tmp_path / "memory.jsonl"),
                        "--per-run", "first_frame_ms_p95")

    # A column per configuration, in the order first met; a run of another length and
    # warm-up is a configuration of its own.
    assert row(table, "field") == ["forward 16", "transcode 1",
                                   "forward 16, 300 s, warm-up 120 s"]
    assert row(table, "runs") == ["3", "3", "1"]
    assert row(table, "server_cpu_cores") == ["0.46", "0.41", "0.48"]
    per_stream = statistics.median([0.46 / 16, 0.40 / 16, 0.51 / 16])
    assert row(table, "server_cpu_cores_per_stream") == [f"{per_stream:.3g}", "0.41", "0.03"]
    # The median of the runs that have a value, each run's in brackets when asked.
    assert row(table, "first_frame_ms_p95") == [
        "118 (118, 95.2, 140)", "106 (92.9, none, 120)", "186"]
    assert row(table, "generator_overloaded") == ["1 of 3", "0 of 3", "0 of 1"]
    assert row(table, "server_rss_mb_every_30s") == ["116 126", "101 111", "161 162 165"]
    # What every run shares is said once, under the table.
    assert "`cpu_count` 2" in table and "`video` 1280x720 30 fps VP8" in table
    assert "`code.commit` abc1234" in table
    for identity in ("mode", "streams", "seconds", "warmup_s", "audio"):
        assert f"`{identity}`" not in table
    # The ratio of the Summary: a re-encoded stream's cores over a forwarded one's.
    ratio = 0.41 / per_stream
    assert (f"Server cores a stream, transcode 1 against forward: {ratio:.1f} times at "
            f"forward 16, {0.41 / 0.03:.1f} times at forward 16, 300 s, warm-up 120 s.") in table


def test_each_benchmark_gets_a_table_of_its_own_with_nested_fields_by_name(
        tmp_path: Path) -> None:
    arrows = [{"benchmark": "annotations", "shapes": 100, "samples": 100,
               "latency_ms": {"painted": {"p50": p50, "p95": p95}}, "page_errors": [],
               "picture": picture}
              for p50, p95, picture in ((3.8, 7.1, "1280x720"), (3.9, 16.9, "1280x720"),
                                        (3.7, 7.2, "640x360"))]
    lines = [json.dumps(relay_run("forward", 1, 0.079, 75.0, False)),
             *map(json.dumps, arrows)]
    (tmp_path / "mixed.jsonl").write_text("\n".join(lines) + "\n")

    table = bench_table(str(tmp_path / "mixed.jsonl"))

    relay, annotations = table.split("### annotations")
    assert "### relay" in relay and "painted" not in relay
    assert row(annotations, "field") == ["100 arrows"]
    assert row(annotations, "latency_ms.painted.p95") == ["7.2"]
    assert row(annotations, "picture") == ["varies"]
    assert "`page_errors` []" in annotations


def test_a_line_that_is_not_a_run_is_refused_with_its_place(tmp_path: Path) -> None:
    runs = tmp_path / "runs.jsonl"
    runs.write_text(json.dumps(relay_run("forward", 1, 0.08, 75.0, False)) + "\n"
                    "bench: measuring 30 s\n")  # stderr mixed in by mistake
    proc = subprocess.run([sys.executable, "scripts/bench_table.py", str(runs)], cwd=ROOT,
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 2
    assert f"{runs}:2: not JSON" in proc.stderr
    assert proc.stdout == ""
