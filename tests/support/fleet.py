"""A fleet on one machine, as ops would run it on several: one PostgreSQL database,
N nodes (``videoassist serve --workers 1``, each its own process and data directory,
127.0.0.1 and a port of its own), and nginx in front of them all.

The nodes share what a fleet must share through settings, not files: the database
(``VIDEOASSIST_DATABASE_URL``), the token signing keys, the snapshot key, the node
secret and the TURN secret (docs/deploy.md, Fleet). nginx runs docs/deploy.md's site
configuration with its ``upstream`` block replaced by the Fleet section's (every node
listed), the addresses, certificate and log paths replaced (``tests.support.nginx``).

Everything here is synchronous (processes and files); clients are ``Server`` helpers
on an aiohttp session of the test's own (``Fleet.through`` and ``Fleet.on``).
"""

from __future__ import annotations

import asyncio
import base64
import secrets
import signal
import socket
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from tests.support import haproxy, nginx
from tests.support.certs import self_signed
from tests.support.databases import Cluster, raw_fetchall
from tests.support.process import ServeProcess
from tests.support.server import PASSWORD, Clock, Server, free_port
from videoassist.actors import CLI
from videoassist.config import Settings
from videoassist.domain import accounts
from videoassist.storage import Store

NODE_TIMEOUT_S = 5  # the fleet's VIDEOASSIST_NODE_TIMEOUT_S


class Proxy:
    """A proxy in front of every node, in the foreground, in a directory of its own,
    on https://127.0.0.1:``tls_port``."""

    stop_signal = signal.SIGTERM

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.tls_port, self.http_port = free_port(), free_port()
        self.url = f"https://127.0.0.1:{self.tls_port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def command(self, *args: str) -> list[str]:
        raise NotImplementedError

    def start(self) -> None:
        with (self.directory / "stderr.log").open("wb") as sink:
            self.proc = subprocess.Popen(self.command(), stdout=sink, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while True:
            assert self.proc.poll() is None, self.output()
            try:
                socket.create_connection(("127.0.0.1", self.tls_port), timeout=1).close()
                return
            except OSError:
                assert time.monotonic() < deadline, self.output()
                time.sleep(0.05)

    def output(self) -> str:
        return "\n".join(path.read_text(errors="replace")
                         for path in sorted(self.directory.glob("*.log")))

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(self.stop_signal)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


class Nginx(Proxy):
    """nginx with the fleet's site (docs/deploy.md's, its upstream every node)."""

    stop_signal = signal.SIGQUIT  # graceful

    def __init__(self, directory: Path, node_ports: list[int]) -> None:
        super().__init__(directory)
        cert, key = self_signed(directory)
        self.conf = nginx.write_conf(
            directory, nginx.site(node_ports, self.tls_port, self.http_port, cert, key,
                                  directory / "access.log"),
            error_log=directory / "error.log")

    def command(self, *args: str) -> list[str]:
        return nginx.command(self.conf, *args)


class HAProxy(Proxy):
    """HAProxy with docs/deploy.md's configuration, its backend the Fleet section's;
    ``runtime`` speaks its runtime API, as ops would with ``socat``."""

    def __init__(self, directory: Path, node_ports: list[int]) -> None:
        super().__init__(directory)
        self.conf = haproxy.write_conf(directory, node_ports, self.tls_port, self.http_port)

    def command(self, *args: str) -> list[str]:
        return haproxy.command(self.conf, *args)

    def runtime(self, line: str) -> str:
        return haproxy.runtime(self.directory, line)

    def sent(self) -> dict[str, int]:
        """Connections sent to each node (by its name in the doc: node1, ...) in all."""
        return haproxy.server_stat(self.directory, "stot")

    def open(self) -> dict[str, int]:
        """Connections open to each node now."""
        return haproxy.server_stat(self.directory, "scur")


async def _staff(url: str) -> None:
    """bob (expert) and boss (admin), with the tests' password."""
    store = await Store.open(url, migrate=False)
    try:
        for name, role in (("bob", "expert"), ("boss", "admin")):
            await accounts.add_user(store, name, role, PASSWORD, actor=CLI)
    finally:
        await store.close()


def shared_secrets() -> dict[str, str]:
    """The settings every node of one fleet has alike, generated for this fleet."""
    return {
        "VIDEOASSIST_JWT_KEYS": f"k1:{secrets.token_urlsafe(48)}",
        "VIDEOASSIST_SNAPSHOT_KEY": base64.b64encode(secrets.token_bytes(32)).decode(),
        "VIDEOASSIST_NODE_SECRET": secrets.token_urlsafe(32),
        "VIDEOASSIST_TURN_SECRET": secrets.token_urlsafe(32),
        "VIDEOASSIST_WEBHOOK_SECRET": secrets.token_urlsafe(32),
    }


@dataclass
class Fleet:
    """A database, the nodes on it (by index: A is 0) and, once started, nginx."""

    root: Path
    database_url: str
    env: dict[str, str]
    ports: list[int]
    nodes: list[ServeProcess | None] = field(default_factory=list)
    nginx: Nginx | None = None
    haproxy: HAProxy | None = None
    public_url: str = ""

    @classmethod
    def create(cls, root: Path, cluster: Cluster, size: int = 3, *, migrated: bool = True,
               **env: str) -> Fleet:
        """A fleet on a new database of ``cluster``, nothing started yet. With
        ``migrated``, bob (expert) and boss (admin) exist."""
        url = cluster.create_database(migrated=migrated)
        ports = [free_port() for _ in range(size)]
        fleet = cls(root, url, {}, ports, [None] * size)
        if migrated:
            asyncio.run(_staff(url))
        fleet.env = {
            "VIDEOASSIST_DATABASE_URL": url, "VIDEOASSIST_WORKERS": "1",
            "VIDEOASSIST_TRUST_FORWARDED_FOR": "true", "VIDEOASSIST_DRAIN_TIMEOUT_S": "60",
            # Short, for a node's death to be seen in seconds, yet above the stalls of
            # a live node's loop on 2 busy cores: at 3 s, a node restarting beside the
            # others (CI at load 12) took a live one for dead and ended its call.
            "VIDEOASSIST_NODE_TIMEOUT_S": str(NODE_TIMEOUT_S),
            # Queued only (no receiver): each call.ended a node emits is a row to count.
            "VIDEOASSIST_WEBHOOK_URL": f"http://127.0.0.1:{free_port()}/hooks",
            **shared_secrets(), **env}
        return fleet

    def start(self, *indexes: int, proxy: bool = True) -> None:
        """Start these nodes (all by default) at once, wait until each serves, then
        nginx in front (``proxy``)."""
        if proxy and self.nginx is None:
            self.nginx = Nginx(self.root / "nginx", self.ports)
            self.public_url = f"https://127.0.0.1:{self.nginx.tls_port}"
        for index in indexes or range(len(self.ports)):
            self.launch(index)
        for index in indexes or range(len(self.ports)):
            self.wait_serving(index)
        if proxy and self.nginx is not None and self.nginx.proc is None:
            self.nginx.start()

    def launch(self, index: int) -> ServeProcess:
        """Start node ``index`` (not waiting for it) on its own data directory."""
        previous = self.nodes[index]
        if previous is not None:  # gone (or stopped here): close what reads its output
            previous.stop(5)
        data_dir = self.root / f"node{index}"
        data_dir.mkdir(parents=True, exist_ok=True)
        env = dict(self.env)
        if self.public_url:
            env["VIDEOASSIST_PUBLIC_URL"] = self.public_url
        process = ServeProcess(data_dir, port=self.ports[index], env=env)
        self.nodes[index] = process
        return process

    def wait_serving(self, index: int) -> None:
        process = self.node(index)
        process.wait_for(r"serving on")
        process.wait_ready()

    def node(self, index: int) -> ServeProcess:
        process = self.nodes[index]
        assert process is not None, f"node {index} is not started"
        return process

    def kill(self, index: int) -> None:
        """SIGKILL, as a machine lost: nothing closed, nothing marked."""
        process = self.node(index)
        process.proc.kill()
        process.proc.wait(10)

    def start_haproxy(self) -> HAProxy:
        """HAProxy in front of every node too (beside nginx, which stays the public
        address the nodes are told), started once."""
        if self.haproxy is None:
            self.haproxy = HAProxy(self.root / "haproxy", self.ports)
            self.haproxy.start()
        return self.haproxy

    def stop(self) -> None:
        """The proxies, then every node at once: each node's stop may wait for its drain
        until the KILL (5 s), and one after the other those waits added up."""
        for proxy in (self.nginx, self.haproxy):
            if proxy is not None:
                proxy.stop()
        running = [process for process in self.nodes if process is not None]
        if running:
            with ThreadPoolExecutor(len(running)) as pool:
                list(pool.map(lambda process: process.stop(5), running))

    def output(self) -> str:
        """Every node's output and HAProxy's, for a failing test's report."""
        return "\n".join([f"--- node {i} ---\n{p.output}" for i, p in enumerate(self.nodes)
                          if p is not None]
                         + ([f"--- haproxy ---\n{self.haproxy.output()}"]
                            if self.haproxy is not None else []))

    # -- clients ---------------------------------------------------------------------

    def settings(self) -> Settings:
        return Settings(public_url=self.public_url or "http://127.0.0.1:8080")

    def through(self, http: aiohttp.ClientSession) -> Server:
        """A client of the fleet through nginx (``http`` must not check certificates)."""
        assert self.public_url, "nginx is not started"
        return Server(self.public_url, self.settings(), None, Clock(),  # type: ignore[arg-type]
                      http)

    def through_haproxy(self, http: aiohttp.ClientSession) -> Server:
        """A client of the fleet through HAProxy (started by ``start_haproxy``)."""
        assert self.haproxy is not None, "HAProxy is not started"
        return Server(self.haproxy.url, self.settings(), None, Clock(),  # type: ignore[arg-type]
                      http)

    def on(self, index: int, http: aiohttp.ClientSession) -> Server:
        """A client of node ``index`` alone, on its own port, past nginx."""
        return Server(self.node(index).url, self.settings(), None, Clock(),  # type: ignore[arg-type]
                      http)

    # -- the database, read as its owner would -----------------------------------

    async def query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        return await raw_fetchall(self.database_url, sql, params)

    async def node_id(self, index: int) -> int:
        """The id of node ``index``'s live row (its process's)."""
        [(node_id,)] = await self.query(
            "SELECT id FROM nodes WHERE pid = ? AND stopped_at IS NULL",
            self.node(index).proc.pid)
        return int(node_id)

    async def holder(self, job_id: int) -> int | None:
        """The index of the node holding the job's call in progress, if any."""
        rows = await self.query(
            "SELECT n.pid FROM calls c JOIN nodes n ON n.id = c.node_id"
            " WHERE c.job_id = ? AND c.ended_at IS NULL", job_id)
        if not rows:
            return None
        [(pid,)] = rows
        return next(i for i, p in enumerate(self.nodes) if p is not None and p.proc.pid == pid)

    async def idle(self, timeout: float = 10) -> None:
        """Wait until no call is in progress and every node's last heartbeat says it has
        no connection: a new call then goes on the node joined through (placement
        prefers the least loaded node, this one on a tie)."""
        async with asyncio.timeout(timeout):
            while await self.query(
                    "SELECT 1 FROM calls WHERE ended_at IS NULL UNION ALL"
                    " SELECT 1 FROM nodes WHERE stopped_at IS NULL AND load > 0"):
                await asyncio.sleep(0.1)

    async def calls(self, job_id: int) -> list[tuple[int, float | None]]:
        """The job's calls: (id, ended_at), oldest first."""
        return [(int(c), e) for c, e in await self.query(
            "SELECT id, ended_at FROM calls WHERE job_id = ? ORDER BY id", job_id)]


def client() -> aiohttp.ClientSession:
    """An HTTP client for the fleet (nginx's certificate is self-signed)."""
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=False))
