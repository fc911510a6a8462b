"""The throwaway PostgreSQL of the tests and the benchmark (``storage.throwaway``): a
run killed before its ``stop`` leaves no server running and no directory behind; a
``stop`` leaves no watchdog behind either."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from videoassist.storage.throwaway import ThrowawayPostgres, postgresql_bin

pytestmark = [
    pytest.mark.skipif(postgresql_bin() is None,
                       reason="PostgreSQL is not installed (scripts/test does)"),
    pytest.mark.skipif(os.geteuid() != 0,
                       reason="runs PostgreSQL as its own user: needs root, as the suite's "
                              "cluster does"),
]

REPO = Path(__file__).resolve().parents[2]
GONE_WITHIN_S = 60.0  # pg_ctl stop -m immediate, on a busy machine
STARTER = """
import time
from videoassist.storage.throwaway import ThrowawayPostgres
server = ThrowawayPostgres.start()
print(server.root, server.pid, flush=True)
time.sleep(600)
"""


def alive(pid: int) -> bool:
    """Running (not a zombie: whoever adopted the postmaster may reap it late)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


def test_a_starter_killed_before_its_stop_leaves_nothing_running() -> None:
    starter = subprocess.Popen([sys.executable, "-c", STARTER], cwd=REPO,
                               stdout=subprocess.PIPE, text=True)
    try:
        assert starter.stdout is not None
        root_text, pid_text = starter.stdout.readline().split()
        root, pid = Path(root_text), int(pid_text)
        assert alive(pid) and (root / "data").is_dir()
    finally:
        starter.kill()  # no stop, no cleanup of its own
        starter.wait()
        if starter.stdout is not None:
            starter.stdout.close()
    deadline = time.monotonic() + GONE_WITHIN_S
    while (alive(pid) or root.exists()) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not alive(pid), "the killed run's PostgreSQL still runs"
    assert not root.exists()


def test_stop_stops_the_server_and_its_watchdog() -> None:
    server = ThrowawayPostgres.start()
    pid = server.pid
    assert pid is not None and alive(pid)
    watchdog = server._watchdog
    assert watchdog is not None and watchdog.poll() is None
    server.stop()
    assert watchdog.poll() is not None and not server.root.exists() and not alive(pid)
