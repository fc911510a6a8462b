"""Jobs: the unit a company's work order maps to, and its timeline of events."""

from __future__ import annotations

import builtins
import json
from collections.abc import Callable
from typing import Any

import aiosqlite

from videoassist.errors import NotFound
from videoassist.storage.db import Database
from videoassist.storage.records import Job

_COLUMNS = "id, title, external_ref, status, created_by, created_at, updated_at, closed_at"


def _job(row: aiosqlite.Row) -> Job:
    return Job(*row)


class Jobs:
    def __init__(self, db: Database, clock: Callable[[], float]) -> None:
        self._db = db
        self._clock = clock

    async def create(self, title: str, external_ref: str | None, created_by: int | None) -> Job:
        now = self._clock()
        async with self._db.transaction() as tx:
            _, job_id = await tx.execute(
                "INSERT INTO jobs (title, external_ref, created_by, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (title, external_ref, created_by, now, now),
            )
            await tx.execute(
                "INSERT INTO events (job_id, type, data, created_at) VALUES (?, ?, ?, ?)",
                (job_id, "job.created", json.dumps({"by": created_by}), now),
            )
        assert job_id is not None
        return await self.get(job_id)

    async def get(self, job_id: int) -> Job:
        row = await self._db.fetchone(f"SELECT {_COLUMNS} FROM jobs WHERE id = ?", (job_id,))
        if row is None:
            raise NotFound("No such job.")
        return _job(row)

    async def list(self, status: str | None = None, limit: int = 100, offset: int = 0) -> list[Job]:
        if status is None:
            rows = await self._db.fetchall(
                f"SELECT {_COLUMNS} FROM jobs ORDER BY created_at DESC, id DESC LIMIT ? OFFSET ?",
                (limit, offset),
            )
        else:
            rows = await self._db.fetchall(
                f"SELECT {_COLUMNS} FROM jobs WHERE status = ?"
                " ORDER BY created_at DESC, id DESC LIMIT ? OFFSET ?",
                (status, limit, offset),
            )
        return [_job(r) for r in rows]

    async def add_event(
        self, job_id: int, type_: str, data: dict[str, Any], call_id: int | None = None
    ) -> None:
        await self._db.execute(
            "INSERT INTO events (job_id, call_id, type, data, created_at) VALUES (?, ?, ?, ?, ?)",
            (job_id, call_id, type_, json.dumps(data, separators=(",", ":")), self._clock()),
        )

    async def events(self, job_id: int) -> builtins.list[dict[str, Any]]:
        rows = await self._db.fetchall(
            "SELECT id, call_id, type, data, created_at FROM events WHERE job_id = ?"
            " ORDER BY created_at, id",
            (job_id,),
        )
        return [
            {"id": r[0], "call_id": r[1], "type": r[2], "data": json.loads(r[3]),
             "created_at": r[4]}
            for r in rows
        ]
