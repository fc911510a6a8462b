"""nginx in front of a fleet's nodes, with docs/deploy.md's site configuration.

The ``nginx`` block of docs/deploy.md is taken as written; only what a run on one
machine must change is replaced, each replacement checked to apply: the listening
addresses (127.0.0.1 and ports of the run's own), the certificate (self-signed, made
here), the access log, and the ``upstream`` servers: one line per node, on its port,
with the parameters of the Fleet section's ``nginx fleet`` block when the doc has one.
nginx runs in the foreground, one process, in a directory of the run's own.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

from loadgen import BenchError
from loadgen.server import ChildProcess, die_with_parent, free_port
from tests.support.certs import self_signed

DEPLOY_DOC = Path(__file__).resolve().parents[2] / "docs" / "deploy.md"
UPSTREAM_LINE = "server 127.0.0.1:8080;"  # the site's one upstream server


def fenced_blocks(text: str, info: str) -> list[str]:
    """The bodies of a Markdown text's fenced blocks whose info string is ``info``."""
    return re.findall(rf"^```{re.escape(info)}\n(.*?)^```$", text, flags=re.M | re.S)


def upstream_servers(doc: str, ports: list[int]) -> str:
    """The upstream ``server`` lines for nodes on these loopback ports."""
    params = ""
    for block in fenced_blocks(doc, "nginx fleet"):
        if found := re.search(r"^\s*server \S+( [^;]*)?;", block, flags=re.M):
            params = found.group(1) or ""
            break
    return "\n    ".join(f"server 127.0.0.1:{port}{params};" for port in ports)


def site(ports: list[int], tls_port: int, http_port: int, cert: Path, key: Path,
         log: Path) -> str:
    """docs/deploy.md's nginx site for nodes on these loopback ports."""
    doc = DEPLOY_DOC.read_text(encoding="utf-8")
    blocks = fenced_blocks(doc, "nginx")
    if len(blocks) != 1:
        raise BenchError(f"docs/deploy.md has {len(blocks)} nginx blocks, not one")
    text = blocks[0]
    for old, new in [
        (UPSTREAM_LINE, upstream_servers(doc, ports)),
        ("listen 443 ssl http2;", f"listen 127.0.0.1:{tls_port} ssl http2;"),
        ("listen 80;", f"listen 127.0.0.1:{http_port};"),
        ("    listen [::]:443 ssl http2;\n", ""),  # IPv6 may be off on this machine
        ("    listen [::]:80;\n", ""),
        ("/etc/letsencrypt/live/assist.example.com/fullchain.pem", str(cert)),
        ("/etc/letsencrypt/live/assist.example.com/privkey.pem", str(key)),
        ("/var/log/nginx/videoassist.access.log", str(log)),
    ]:
        if text.count(old) != 1:
            raise BenchError(f"docs/deploy.md's nginx block has no {old.strip()!r} (once)")
        text = text.replace(old, new)
    return text



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
        binary = shutil.which("nginx") or "/usr/sbin/nginx"
        if not Path(binary).is_file():
            raise BenchError("no nginx (Debian package 'nginx': scripts/test installs it)")
        cert, key = self_signed(self.directory)
        temp = "\n".join(f"    {kind}_temp_path {self.directory / kind};"
                         for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        conf = self.directory / "nginx.conf"
        conf.write_text(f"""daemon off;
master_process off;
worker_processes 1;
pid {self.directory / 'nginx.pid'};
error_log {self.log_path} warn;
events {{ worker_connections 1024; }}
http {{
{temp}
{site(self.ports, self.tls_port, self.http_port, cert, key, self.directory / 'access.log')}
}}
""")
        with (self.directory / "stderr.log").open("wb") as out:
            self.proc = subprocess.Popen(
                [binary, "-c", str(conf), "-p", str(self.directory), "-e", str(self.log_path)],
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
