"""The relay benchmark's fleet (``--nodes N``): N ``videoassist serve --workers 1``
nodes on one throwaway PostgreSQL database, behind nginx, all on this machine.

The start, as ops would do it: a PostgreSQL server of the run's own
(``videoassist.storage.throwaway``) and a database; ``videoassist migrate`` once; the
staff user added with the CLI; the key files made once in the first node's data
directory and copied into the others' (a token signed by one node is checked by all,
and the nodes let each other in with the node secret); the nodes started at once, each
on its own port and with a host name of its own, with ``VIDEOASSIST_DATABASE_URL``;
nginx with docs/deploy.md's site in front of them (``loadgen.proxy``). The generator
reaches everything through nginx (``url``); the benchmark reads each node's CPU from
/proc and its event loop from its own /metrics (nginx keeps /metrics off the public
side), and which node each call was placed on from the ``calls`` and ``nodes`` tables.

Everything is stopped and removed by ``stop``, whatever failed: nginx, the nodes, the
PostgreSQL server and its directory (the nodes' directories are the caller's
temporary directory).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg

from loadgen import BenchError
from loadgen.proxy import Nginx
from loadgen.server import ServerProcess, scrape_event_loop_cpu
from videoassist import keyfiles
from videoassist.config import Settings
from videoassist.storage.throwaway import ThrowawayPostgres

logger = logging.getLogger("bench")

DATABASE = "videoassist"
START_S = 60.0  # a node's start on a busy machine


class Fleet:
    """The nodes, their database and nginx, as one server to the benchmark."""

    name = "the fleet"

    def __init__(self, mode: str, workdir: Path, nodes: int) -> None:
        self.workdir = workdir
        self.username = "bench"
        self.password = secrets.token_urlsafe(24)
        self.postgres: ThrowawayPostgres | None = None
        self.database_url = ""
        self.nodes: list[ServerProcess] = []
        for number in range(1, nodes + 1):
            (workdir / f"node{number}").mkdir()
            node = ServerProcess(mode, workdir / f"node{number}", workers=1)
            node.name = f"node{number}"
            node.username, node.password = self.username, self.password
            self.nodes.append(node)
        self.nginx = Nginx(workdir / "nginx", [node.port for node in self.nodes])
        self.url = self.nginx.url
        for node in self.nodes:
            node.env.update(VIDEOASSIST_PUBLIC_URL=self.url,
                            VIDEOASSIST_TRUST_FORWARDED_FOR="true")

    @property
    def names(self) -> list[str]:
        return [node.name for node in self.nodes]

    @property
    def pids(self) -> list[int]:
        """Each node's process (with --workers 1, its one worker)."""
        return [node.pid for node in self.nodes]

    @property
    def side_pids(self) -> dict[str, int]:
        """The processes beside the nodes whose CPU is reported too."""
        found = {"proxy": self.nginx.pid}
        if self.postgres is not None and (pid := self.postgres.pid) is not None:
            found["database"] = pid  # the postmaster, its backends under it
        return found

    def start(self) -> None:
        """PostgreSQL, the migrations, the staff user and key files; the nodes and
        nginx started (``wait_ready`` waits for them)."""
        try:
            self.postgres = ThrowawayPostgres.start()
            self.postgres.sql(f"CREATE DATABASE {DATABASE}")
        except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
            raise BenchError(f"the fleet's PostgreSQL did not start: {exc}") from None
        self.database_url = self.postgres.url(DATABASE)
        for node in self.nodes:
            node.env["VIDEOASSIST_DATABASE_URL"] = self.database_url
        first = self.nodes[0]
        migrate = subprocess.run(
            [sys.executable, "-m", "videoassist", "migrate", "--data-dir", str(first.data_dir)],
            capture_output=True, text=True, env=first.env, cwd=first.workdir, timeout=120,
            check=False)
        if migrate.returncode != 0:
            raise BenchError(f"'videoassist migrate' failed ({migrate.returncode}): "
                             f"{(migrate.stderr or migrate.stdout).strip()}")
        first.add_user()
        # The secrets every node of one installation shares: made once, then copied.
        keyfiles.prepare(Settings(data_dir=first.data_dir))
        for node in self.nodes[1:]:
            shutil.copytree(first.data_dir, node.data_dir,
                            ignore=shutil.ignore_patterns("*.sqlite3*"))
        logger.info("starting %d nodes on PostgreSQL (%s) behind nginx on %s",
                    len(self.nodes), self.database_url, self.url)
        for node in self.nodes:  # at once: a start must not wait for another's
            node.launch()
        self.nginx.start()

    async def wait_ready(self, http: aiohttp.ClientSession, within: float = START_S) -> None:
        """Every node ready and registered as a live node, then nginx answering."""
        await asyncio.gather(*(node.wait_ready(http, within) for node in self.nodes))
        await self._check_registered(within)
        await self.nginx.wait_listening()
        async with http.get(self.url + "/readyz",
                            timeout=aiohttp.ClientTimeout(total=10)) as response:
            if response.status != 200:
                raise BenchError(f"GET /readyz through nginx: {response.status}")

    async def _check_registered(self, within: float) -> None:
        """Each node's row in ``nodes``: registered, not stopped. A node a later node's
        start took for a previous run's, and marked stopped, would get no call."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while True:
            rows = await self._fetch("SELECT pid, stopped_at IS NULL FROM nodes")
            live = {pid for pid, running in rows if running}
            missing = [node.name for node in self.nodes if node.pid not in live]
            if not missing:
                return
            stopped = {pid for pid, running in rows if not running}
            if any(node.pid in stopped for node in self.nodes) or loop.time() > deadline:
                raise BenchError(f"{', '.join(missing)}: not a live node in the database "
                                 "(never registered, or marked stopped by another's start)")
            await asyncio.sleep(0.2)

    async def _fetch(self, sql: str) -> list[tuple[Any, ...]]:
        conn = await asyncpg.connect(self.database_url, timeout=10)
        try:
            return [tuple(row) for row in await conn.fetch(sql, timeout=10)]
        finally:
            await conn.close()

    async def calls_by_pid(self) -> dict[int, int]:
        """The calls placed on each node (every call of the run, ended or not)."""
        rows = await self._fetch(
            "SELECT n.pid, count(c.id) FROM nodes n LEFT JOIN calls c ON c.node_id = n.id"
            " GROUP BY n.pid")
        return {int(pid): int(count) for pid, count in rows}

    async def event_loop_cpu(self, http: aiohttp.ClientSession) -> dict[str, float]:
        """Each node's event loop's CPU seconds, by node name (its own /metrics)."""
        scraped = await asyncio.gather(*(scrape_event_loop_cpu(http, node.url)
                                         for node in self.nodes))
        return {node.name: sum(loops.values()) for node, loops in zip(self.nodes, scraped,
                                                                      strict=True)}

    def check_alive(self) -> None:
        for node in self.nodes:
            node.check_alive()
        self.nginx.check_alive()
        if self.postgres is not None and self.postgres.pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.postgres.pid, 0)
                return
            raise BenchError("the fleet's PostgreSQL server is gone")

    def output_tail(self, lines: int = 15) -> str:
        return "\n".join(f"-- {part.name}:\n{part.output_tail(lines)}"
                         for part in [*self.nodes, self.nginx])

    def stop(self) -> None:
        """nginx, then each node (SIGTERM: the drain, at once with no call left), then
        PostgreSQL and its directory; each whatever the others did."""
        try:
            self.nginx.stop()
        finally:
            try:
                for node in self.nodes:
                    with contextlib.suppress(Exception):
                        node.stop()
            finally:
                if self.postgres is not None:
                    try:
                        self.postgres.stop()
                    except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
                        logger.warning("stopping the fleet's PostgreSQL: %s", exc)
