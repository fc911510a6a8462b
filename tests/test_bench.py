"""``scripts/bench.py`` runs end to end and reports every field, with sane values.

Smoke tests: one short forward run (a real server process, one call, a late viewer
a second) and three snapshots at 640x360. Performance is measured by the bench and
written in docs/performance.md, never asserted here.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

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
