"""The ``videoassist`` command and ``videoassist serve`` as child processes, the way an
operator runs them.

Every command gets ``--data-dir`` and an environment without ``VIDEOASSIST_*``
variables (``clean_env``). ``videoassist`` runs a command to completion, ``ok`` one that
must succeed; ``ServeProcess`` is ``videoassist serve`` with its output read by a thread.
"""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.server import free_port, local_peers, own_addresses

LINK_TOKEN = r"[A-Za-z0-9_-]{43}"  # a one-time link's token, as printed and shown
# How long a server's start and its lines may take before a test gives up on them. A
# guard against a hang, not a measure: a start is well under 10 s on a quiet 2-core
# machine, and took over 20 s beside two CPU hogs and other tests' servers and
# browsers (two workers each importing aiortc, PyAV and OpenCV). Start-up time is the
# benchmark's to measure.
START_S = 90.0


def stable_media_addresses() -> dict[str, str]:
    """``serve``'s media sockets on this machine's own addresses only, not on a veth end
    of a test's network namespace, which goes with the namespace, and a call's media
    with it if ICE chose a pair there (``tests.support.netns``). The default, every
    address aioice finds, is what the servers in the tests' own process use
    (``server``, ``server_factory``), which keep off those veths themselves."""
    return {"VIDEOASSIST_MEDIA_ADDRESSES": ",".join(own_addresses())}


# While a test's servers run on PostgreSQL (``server_databases``): the database of a data
# directory, which commands and ``serve`` on that directory are given as
# VIDEOASSIST_DATABASE_URL, as an operator's environment would.
database_of: Callable[[Path], str] | None = None


def _database_env(data_dir: Path) -> dict[str, str]:
    return {} if database_of is None else {"VIDEOASSIST_DATABASE_URL": database_of(data_dir)}


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without any VIDEOASSIST_* variable but the tests'
    ICE_ALLOWED_PEERS (``local_peers``), plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIDEOASSIST_")}
    env["VIDEOASSIST_ICE_ALLOWED_PEERS"] = ",".join(local_peers())
    env.update(extra)
    return env


@dataclass(frozen=True)
class Result:
    code: int
    out: str
    err: str


def videoassist(data_dir: Path, *args: str, stdin: str = "",
                env: dict[str, str] | None = None) -> Result:
    """Run ``python -m videoassist ARGS --data-dir DATA_DIR`` to completion."""
    proc = subprocess.run(
        [sys.executable, "-m", "videoassist", *args, "--data-dir", str(data_dir)],
        input=stdin, capture_output=True, text=True, timeout=30,
        env=clean_env(**_database_env(data_dir)) if env is None else env, cwd=data_dir.parent,
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


def ok(data_dir: Path, *args: str, stdin: str = "") -> str:
    """Run a command that must succeed; return its stdout."""
    result = videoassist(data_dir, *args, stdin=stdin)
    assert result.code == 0, result
    assert "Traceback" not in result.out + result.err, result
    return result.out


# The serve processes running now (and those that exited since the last test phase): a
# test that fails shows the end of each one's output (tests/conftest.py,
# ``pytest_runtest_makereport``, which forgets those that exited).
RUNNING: list[ServeProcess] = []
OUTPUT_SHOWN_LINES = 120
# The server's own word that its calls were held up (docs/deploy.md, Logs): kept for the
# whole run in test-artifacts/held-up.log, from passing tests too, with the test's name.
HELD_UP = re.compile(r"the event loop was [0-9.]+ s late|the database took [0-9.]+ s")
HELD_UP_LOG = Path(__file__).resolve().parents[2] / "test-artifacts" / "held-up.log"


class ServeProcess:
    """``videoassist serve`` as a child process; a thread reads its stdout and stderr.

    The child gets no PYTHONUNBUFFERED: lines an operator must see at once (the
    set-password link) have to be flushed by the server itself.
    """

    def __init__(self, data_dir: Path, port: int | None = None,
                 env: dict[str, str] | None = None, stderr_apart: bool = False,
                 unset: tuple[str, ...] = ()) -> None:
        """``stderr_apart``: stderr (the log) goes to ``err_lines``, not the output;
        ``unset``: variables the child must not get (an older release refuses settings
        it does not know)."""
        self.data_dir = data_dir
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.lines: list[str] = []
        self.err_lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "videoassist", "serve", "--host", "127.0.0.1",
             "--port", str(self.port), "--data-dir", str(data_dir)],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE if stderr_apart else subprocess.STDOUT,
            text=True, env={k: v for k, v in clean_env(
                **{**_database_env(data_dir), **stable_media_addresses(),
                   **(env or {})}).items() if k not in unset},
            cwd=data_dir.parent,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self._err_reader = threading.Thread(target=self._read_err, daemon=True)
        if stderr_apart:
            self._err_reader.start()
        RUNNING.append(self)

    def _read_err(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.err_lines.append(line)

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)
            self._queue.put(line)
        self._queue.put(None)

    def tail(self) -> str:
        """The end of what it wrote, its log included: shown with a failed test."""
        shown = self.lines[-OUTPUT_SHOWN_LINES:]
        if self.err_lines:  # stderr apart: the end of each
            shown = ["(stdout)\n", *shown, "(stderr)\n", *self.err_lines[-OUTPUT_SHOWN_LINES:]]
        return "".join(shown)

    @property
    def output(self) -> str:
        """Everything the server wrote so far, stdout and stderr interleaved."""
        return "".join(self.lines)

    def wait_for(self, pattern: str, timeout: float = START_S) -> re.Match[str]:
        """The first new output line matching ``pattern``; fail with the output if none."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                line = self._queue.get(timeout=remaining)
            except queue.Empty:
                break
            if line is None:
                pytest.fail(f"the server exited ({self.proc.wait()}) before printing "
                            f"{pattern!r}; its output:\n{self.output}")
            if match := regex.search(line):
                return match
        pytest.fail(f"no line matching {pattern!r} within {timeout} s; output:\n{self.output}")

    def wait_ready(self, timeout: float = START_S) -> None:
        """Poll /readyz until it answers 200 (the socket is bound after the banner)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"the server exited ({self.proc.returncode}); output:\n{self.output}")
            try:
                with urllib.request.urlopen(self.url + "/readyz", timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError):
                pass
            time.sleep(0.05)
        pytest.fail(f"{self.url}/readyz not ready within {timeout} s; output:\n{self.output}")

    def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM (what systemd sends), then SIGKILL after ``timeout``; the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout)
        self._reader.join(timeout)
        assert self.proc.stdout is not None
        self.proc.stdout.close()
        if self.proc.stderr is not None:
            self._err_reader.join(timeout)
            self.proc.stderr.close()
        self._keep_held_up()
        return self.proc.returncode

    def _keep_held_up(self) -> None:
        held = [line for line in self.lines + self.err_lines if HELD_UP.search(line)]
        if held:
            HELD_UP_LOG.parent.mkdir(exist_ok=True)
            test = os.environ.get("PYTEST_CURRENT_TEST", "(between tests)")
            with HELD_UP_LOG.open("a", encoding="utf-8") as log:
                log.write(f"# {test}: {self.url}\n" + "".join(held))


def post_json(url: str, body: dict[str, object]) -> int:
    """POST ``body`` as JSON to a served process; the status of its answer."""
    request = urllib.request.Request(url, json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code
