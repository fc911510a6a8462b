"""nginx in front of a fleet's nodes, with docs/deploy.md's site configuration as the
tests run it (``tests.support.nginx``): the doc's site, its addresses, certificate
(self-signed, made here) and log replaced, and the Fleet section's upstream with one
server per node. nginx runs in the foreground, one process, in a directory of the
run's own.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time
from pathlib import Path

from loadgen import BenchError
from loadgen.server import ChildProcess, die_with_parent, free_port
from tests.support import nginx
from tests.support.certs import self_signed


class Nginx(ChildProcess):
    """nginx with the documented site in front of ``ports``, on https://127.0.0.1:PORT."""

    name = "nginx"

    def __init__(self, directory: Path, ports: list[int]) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.tls_port, self.http_port = free_port(), free_port()
        self.url = f"https://127.0.0.1:{self.tls_port}"
        self.log_path = directory / "error.log"
        self.ports = ports
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        if not Path(nginx.NGINX).is_file():
            raise BenchError("no nginx (Debian package 'nginx': scripts/test installs it)")
        cert, key = self_signed(self.directory)
        try:
            text = nginx.site(self.ports, self.tls_port, self.http_port, cert, key,
                              self.directory / "access.log")
        except nginx.SiteError as e:
            raise BenchError(str(e)) from e
        conf = nginx.write_conf(self.directory, text, error_log=self.log_path, level="warn",
                                worker_connections=1024)
        with (self.directory / "stderr.log").open("wb") as out:
            self.proc = subprocess.Popen(
                nginx.command(conf),
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                cwd=self.directory, preexec_fn=die_with_parent)

    async def wait_listening(self, within: float = 10.0) -> None:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", self.tls_port)
            except OSError:
                await asyncio.sleep(0.05)
                continue
            writer.close()
            await writer.wait_closed()
            return
        raise BenchError(f"nginx did not listen within {within:.0f} s; its last output:\n"
                         f"{self.output_tail()}")

    def stop(self) -> None:
        """SIGQUIT (a graceful stop), then SIGKILL after 10 s."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGQUIT)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
