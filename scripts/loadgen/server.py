"""``python -m videoassist serve`` as a child process, in a temporary data directory,
with one staff user the generator signs in as; optionally under cProfile, or with a
given number of worker processes."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from loadgen import BenchError
from loadgen.choices import TRANSCODE

ROOT = Path(__file__).resolve().parents[2]


async def post_json(http: aiohttp.ClientSession, url: str, path: str, body: dict[str, Any],
                    token: str = "") -> Any:
    """POST ``body`` to the server's API; its JSON answer, or BenchError naming the call."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with http.post(url + path, json=body, headers=headers) as response:
        answer = await response.json(content_type=None)
        if response.status >= 300:
            raise BenchError(f"POST {path}: {response.status} {answer}")
        return answer


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on ``host`` now."""
    with socket.socket() as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


LOOP_CPU = "videoassist_event_loop_cpu_seconds_total"
PR_SET_PDEATHSIG = 1  # linux/prctl.h


def die_with_parent() -> None:
    """In a child process before it runs the server: SIGTERM when the benchmark that
    started it ends, whichever way, so that no server outlives an interrupted run."""
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def event_loop_cpu(exposition: str) -> dict[str, float]:
    """``videoassist_event_loop_cpu_seconds_total`` of a /metrics answer, by worker:
    the ``worker`` label's value (any other labels as ``name=value,...``), or "server"
    for the one loop of a server whose sample carries no label."""
    seconds: dict[str, float] = {}
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            if sample.name == LOOP_CPU:
                labels = sample.labels
                key = labels.get("worker") or ",".join(
                    f"{name}={value}" for name, value in sorted(labels.items())) or "server"
                seconds[key] = sample.value
    return seconds


async def scrape_event_loop_cpu(http: aiohttp.ClientSession, url: str) -> dict[str, float]:
    """GET /metrics (the bench's server sets no metrics token): each loop's CPU."""
    async with http.get(url + "/metrics", timeout=aiohttp.ClientTimeout(total=10)) as response:
        text = await response.text()
        if response.status != 200:
            raise BenchError(f"GET /metrics: {response.status} {text[:200]}")
    seconds = event_loop_cpu(text)
    if not seconds:
        raise BenchError(f"GET /metrics has no {LOOP_CPU}")
    return seconds


class ChildProcess:
    """A server the benchmark runs as a child, its output in ``log_path``: its pid,
    the end of its output, and a check that it still runs."""

    name = "the server"
    log_path: Path
    proc: subprocess.Popen[bytes] | None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def pids(self) -> list[int]:
        """The server's processes the benchmark measures, each with those under it."""
        return [self.pid]

    @property
    def side_pids(self) -> dict[str, int]:
        """Processes beside the server whose CPU is reported too: none."""
        return {}

    def output_tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text("utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def check_alive(self) -> None:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise BenchError(f"{self.name} exited with code {self.proc.returncode}; "
                             f"its last output:\n{self.output_tail()}")


class ServerProcess(ChildProcess):
    def __init__(self, mode: str, workdir: Path, profile: Path | None = None,
                 workers: int | None = None, host: str = "127.0.0.1",
                 env: dict[str, str] | None = None) -> None:
        """``host``: the address it serves on (HTTP and media); ``env``: settings
        of the run's own, over the defaults below."""
        self.workdir = workdir
        self.host = host
        # ``serve --workers N``; None: the server's own default.
        self.workers = workers
        # cProfile's statistics of the serving process, written there when it exits.
        self.profile = profile
        self.data_dir = workdir / "data"
        self.port = free_port(host)
        self.url = f"http://{host}:{self.port}"
        self.username = "bench"
        self.password = secrets.token_urlsafe(24)
        self.log_path = workdir / "server.log"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("VIDEOASSIST_")}
        # The server of this tree, whatever checkout the environment has installed.
        self.env["PYTHONPATH"] = os.pathsep.join(
            filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
        # One process, as the CPU figures (read from this process) and the profile assume.
        self.env.update(VIDEOASSIST_PUBLIC_URL=self.url, VIDEOASSIST_ACCESS_LOG="false",
                        VIDEOASSIST_MEDIA_TRANSCODE=TRANSCODE[mode], VIDEOASSIST_WORKERS="1")
        # The generator's one staff user is every call's participants at once, and its
        # annotation senders go past a person's budget on purpose.
        self.env.update(VIDEOASSIST_CALL_MAX_CONNECTIONS_PER_USER="1000",
                        VIDEOASSIST_CALL_JOINS_PER_MIN="10000",
                        VIDEOASSIST_CALL_MAX_PARTICIPANTS="1000",
                        VIDEOASSIST_ANNOTATION_BYTES_PER_MIN=str(1 << 40))
        # The generator's clients are on loopback, which the ICE candidate policy denies
        # by default (docs/security.md): here it is the clients' LAN.
        self.env.update(VIDEOASSIST_ICE_ALLOWED_PEERS="127.0.0.0/8,::1")
        self.env.update(env or {})
        self.proc: subprocess.Popen[bytes] | None = None

    def _command(self, *args: str, profile: Path | None = None) -> list[str]:
        profiler = ["-m", "cProfile", "-o", str(profile.resolve())] if profile else []
        return [sys.executable, *profiler, "-m", "videoassist", *args,
                "--data-dir", str(self.data_dir)]

    def serve_command(self) -> list[str]:
        workers = [] if self.workers is None else ["--workers", str(self.workers)]
        return self._command("serve", "--host", self.host, "--port", str(self.port),
                             *workers, profile=self.profile)

    def start(self) -> None:
        """Add the staff user with the CLI, then start serving (not yet ready)."""
        self.add_user()
        self.launch()

    def add_user(self) -> None:
        """The staff user the generator signs in as, added with the CLI."""
        result = subprocess.run(
            self._command("user", "add", self.username, "--role", "admin", "--password-stdin"),
            input=self.password + "\n", capture_output=True, text=True, env=self.env,
            cwd=self.workdir, timeout=60, check=False)
        if result.returncode != 0:
            raise BenchError(f"'videoassist user add' failed ({result.returncode}): "
                             f"{(result.stderr or result.stdout).strip()}")

    def launch(self) -> None:
        """Start serving (not yet ready)."""
        with self.log_path.open("wb") as out:
            self.proc = subprocess.Popen(
                self.serve_command(),
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=self.env,
                cwd=self.workdir, preexec_fn=die_with_parent)


    async def wait_ready(self, http: aiohttp.ClientSession, within: float = 30.0) -> None:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            self.check_alive()
            with contextlib.suppress(aiohttp.ClientError, OSError, TimeoutError):
                async with http.get(self.url + "/readyz",
                                    timeout=aiohttp.ClientTimeout(total=2)) as response:
                    if response.status == 200:
                        return
            await asyncio.sleep(0.1)
        raise BenchError(f"the server was not ready within {within:.0f} s; "
                         f"its last output:\n{self.output_tail()}")

    def stop(self) -> None:
        """SIGTERM (the server drains, and stops at once when no call is left), then
        SIGKILL after 10 s, or 30 s under the profiler, which writes its file on exit."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30 if self.profile else 10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
