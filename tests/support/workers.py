"""``videoassist serve`` with several workers, and clients that reach a chosen worker.

The workers share one port (SO_REUSEPORT): the kernel gives each new TCP connection to
one of them. ``on_worker`` opens HTTP connections until one lands on the wanted worker
(seen in that worker's access log line for a probe path of its own), and keeps it: a
session limited to one connection reuses it for every request and for the WebSocket
it opens. ``nodes`` reads the ``nodes`` table as the workers wrote it.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from tests.support.process import ServeProcess
from tests.support.server import Clock, Server
from videoassist.config import Settings

PROBES = 64  # connections tried for one worker: each lands on it with odds 1/N


@dataclass(frozen=True)
class NodeRow:
    id: int
    worker: int | None
    pid: int
    address: str


def query(data_dir: Path, sql: str, *params: object) -> list[tuple[object, ...]]:
    """Rows of a read of the server's database (WAL: beside the running workers)."""
    with sqlite3.connect(f"file:{data_dir / 'videoassist.sqlite3'}?mode=ro", uri=True) as db:
        return list(db.execute(sql, params))


def nodes(data_dir: Path) -> dict[int, NodeRow]:
    """The live (not stopped) nodes, by worker."""
    rows = query(data_dir, "SELECT id, worker, pid, address FROM nodes"
                           " WHERE stopped_at IS NULL ORDER BY id")
    found = {}
    for node_id, worker, pid, address in rows:
        assert isinstance(worker, int) and isinstance(node_id, int), rows
        found[worker] = NodeRow(node_id, worker, int(str(pid)), str(address))
    return found


def live_calls(data_dir: Path, job_id: int) -> list[tuple[int, int | None]]:
    """The job's calls in progress: (call id, node id)."""
    return [(int(str(c)), None if n is None else int(str(n))) for c, n in query(
        data_dir, "SELECT id, node_id FROM calls WHERE job_id = ? AND ended_at IS NULL",
        job_id)]


def served_by(process: ServeProcess, path: str) -> int | None:
    """The worker whose access log has a request for ``path``, if any yet."""
    for line in process.lines:
        if "videoassist.access" in line and f" {path} " in line and "[worker " in line:
            return int(line.split("[worker ", 1)[1].split("]", 1)[0])
    return None


async def wait_served_by(process: ServeProcess, path: str, timeout: float = 5.0) -> int:
    deadline = time.monotonic() + timeout
    while (worker := served_by(process, path)) is None:
        assert time.monotonic() < deadline, f"no access log line for {path}:\n{process.output}"
        await asyncio.sleep(0.02)
    return worker


async def on_worker(process: ServeProcess, worker: int, settings: Settings) -> Server:
    """A client whose requests and WebSocket all go to ``worker`` (one kept connection).
    The caller closes ``server.http``."""
    for _ in range(PROBES):
        http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1))
        probe = f"/probe-{uuid.uuid4().hex}"
        async with http.get(process.url + probe) as response:
            assert response.status == 404
            await response.read()
        if await wait_served_by(process, probe) == worker:
            return Server(process.url, settings, None, Clock(), http)  # type: ignore[arg-type]
        await http.close()
    raise AssertionError(f"no connection landed on worker {worker} in {PROBES} tries")
