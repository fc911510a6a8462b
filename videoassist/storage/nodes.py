"""Nodes: the server processes that hold calls, and their heartbeats."""

from __future__ import annotations

from collections.abc import Callable

from videoassist.storage.db import Database, Row
from videoassist.storage.records import Node

_NODE = ("id, host, pid, worker, address, started_at, heartbeat_at, load, draining,"
         " stopped_at")


def _node(row: Row) -> Node:
    values = list(row)
    values[8] = bool(values[8])
    return Node(*values)


class Nodes:
    def __init__(self, db: Database, clock: Callable[[], float]) -> None:
        self._db = db
        self._clock = clock

    async def register(self, host: str, pid: int, worker: int | None, address: str) -> int:
        now = self._clock()
        return await self._db.insert(
            "INSERT INTO nodes (host, pid, worker, address, started_at, heartbeat_at)"
            " VALUES (?, ?, ?, ?, ?, ?) RETURNING id", (host, pid, worker, address, now, now))

    async def heartbeat(self, node_id: int, load: int) -> bool:
        """Whether the node is still one: False once it was marked stopped (another node
        took it for dead and ended its calls)."""
        count = await self._db.execute(
            "UPDATE nodes SET heartbeat_at = ?, load = ? WHERE id = ? AND stopped_at IS NULL",
            (self._clock(), load, node_id))
        return count == 1

    async def set_draining(self, node_id: int) -> None:
        await self._db.execute("UPDATE nodes SET draining = 1 WHERE id = ?", (node_id,))

    async def stop(self, node_ids: list[int]) -> None:
        """Mark nodes stopped: they hold nothing any more."""
        if node_ids:
            marks = ", ".join("?" * len(node_ids))
            await self._db.execute(
                f"UPDATE nodes SET stopped_at = ? WHERE id IN ({marks}) AND stopped_at IS NULL",
                (self._clock(), *node_ids))

    async def get(self, node_id: int) -> Node | None:
        row = await self._db.fetchone(f"SELECT {_NODE} FROM nodes WHERE id = ?", (node_id,))
        return None if row is None else _node(row)

    async def live(self, heard_after: float) -> list[Node]:
        """Nodes not stopped that heartbeated after ``heard_after``, by id."""
        rows = await self._db.fetchall(
            f"SELECT {_NODE} FROM nodes WHERE stopped_at IS NULL AND heartbeat_at >= ?"
            " ORDER BY id", (heard_after,))
        return [_node(r) for r in rows]

    async def gone(self, host: str, heard_before: float, pid: int | None = None) -> list[int]:
        """Nodes not marked stopped that are gone: this host's (all of them, or the one
        of process ``pid``), and any node silent since ``heard_before``."""
        mine, params = ("host = ?", [host]) if pid is None else (
            "host = ? AND pid = ?", [host, pid])
        rows = await self._db.fetchall(
            f"SELECT id FROM nodes WHERE stopped_at IS NULL AND (({mine}) OR heartbeat_at < ?)"
            " ORDER BY id", (*params, heard_before))
        return [r[0] for r in rows]

    async def of_host(self, host: str) -> list[Node]:
        """The nodes of a host not marked stopped, by id."""
        rows = await self._db.fetchall(
            f"SELECT {_NODE} FROM nodes WHERE stopped_at IS NULL AND host = ? ORDER BY id",
            (host,))
        return [_node(r) for r in rows]

    async def prune(self, stopped_before: float) -> int:
        """Forget nodes stopped before then (their calls keep a NULL node)."""
        count = await self._db.execute(
            "DELETE FROM nodes WHERE stopped_at IS NOT NULL AND stopped_at < ?",
            (stopped_before,))
        return count
