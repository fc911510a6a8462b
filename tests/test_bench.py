"""``scripts/bench.py`` runs end to end and reports every field, with sane values.

A smoke test: one short forward run (a real server process, one call, a late viewer
a second). Performance is measured by the bench and written in docs/performance.md,
never asserted here.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CORES = ("server_cpu_cores", "client_cpu_cores")
MILLISECONDS = ("added_latency_ms_p50", "added_latency_ms_p95",
                "first_frame_ms_p50", "first_frame_ms_p95")
MEGABYTES = ("server_rss_mb", "server_rss_mb_start")


def test_a_short_forward_run_prints_one_json_object_with_every_field() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIDEOASSIST_")}
    proc = subprocess.run(
        [sys.executable, "scripts/bench.py", "relay", "--mode", "forward", "--streams", "1",
         "--seconds", "3", "--json"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    assert "bench: measuring" in proc.stderr  # progress goes to stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 1, proc.stdout  # the JSON alone on stdout
    result = json.loads(lines[0])

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
