"""Jobs: the unit a company's work order maps to, and its timeline of events."""

from __future__ import annotations

import builtins
import json
from collections.abc import Callable
from typing import Any

from videoassist.errors import Conflict, NotFound
from videoassist.storage.db import Database, Row, Transaction
from videoassist.storage.records import Job, Note
from videoassist.storage.snapshots import IN_PROGRESS_MAX_S

_COLUMNS = (
    "id, title, external_ref, status, created_by, created_at, updated_at, closed_at,"
    " retention_days"
)


def _job(row: Row) -> Job:
    return Job(*row)


def _escape_like(text: str) -> str:
    """The text as a LIKE pattern matching itself: the escape character ``\\``, ``%``
    and ``_`` are escaped."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


class Jobs:
    def __init__(self, db: Database, clock: Callable[[], float]) -> None:
        self._db = db
        self._clock = clock

    async def create(self, title: str, external_ref: str | None, created_by: int | None) -> Job:
        now = self._clock()
        async with self._db.transaction() as tx:
            job_id = await tx.next_id("jobs")
            await tx.execute(
                "INSERT INTO jobs (id, title, external_ref, created_by, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (job_id, title, external_ref, created_by, now, now),
            )
            await tx.execute(
                "INSERT INTO events (job_id, type, data, created_at) VALUES (?, ?, ?, ?)",
                (job_id, "job.created", json.dumps({"by": created_by}), now),
            )
        return await self.get(job_id)

    async def get(self, job_id: int) -> Job:
        row = await self._db.fetchone(f"SELECT {_COLUMNS} FROM jobs WHERE id = ?", (job_id,))
        if row is None:
            raise NotFound("No such job.")
        return _job(row)

    async def list(self, status: str | None = None, limit: int = 100, offset: int = 0,
                   q: str | None = None) -> builtins.list[Job]:
        """Jobs newest first; ``q`` keeps those whose title or external_ref contains it,
        literally (``%`` and ``_`` are not wildcards), ignoring case."""
        where: builtins.list[str] = []
        params: builtins.list[object] = []
        if status is not None:
            where.append("status = ?")
            params.append(status)
        if q:
            like = self._db.dialect.ilike
            where.append(f"(title {like} ? ESCAPE '\\' OR external_ref {like} ? ESCAPE '\\')")
            params += [f"%{_escape_like(q)}%"] * 2
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        rows = await self._db.fetchall(
            f"SELECT {_COLUMNS} FROM jobs{clause}"
            " ORDER BY created_at DESC, id DESC LIMIT ? OFFSET ?",
            (*params, limit, offset),
        )
        return [_job(r) for r in rows]

    async def close(self, job_id: int, by: int | None) -> Job:
        """Close an open job; its links stop working and no call can start."""
        now = self._clock()
        async with self._db.transaction() as tx:
            count = await tx.execute(
                "UPDATE jobs SET status = 'closed', closed_at = ?, updated_at = ?"
                " WHERE id = ? AND status = 'open'",
                (now, now, job_id),
            )
            if count:
                await tx.execute(
                    "INSERT INTO events (job_id, type, data, created_at) VALUES (?, ?, ?, ?)",
                    (job_id, "job.closed", json.dumps({"by": by}), now),
                )
        job = await self.get(job_id)
        if not count:
            raise Conflict("This job is already closed.")
        return job

    async def closed_among(self, job_ids: set[int]) -> set[int]:
        """Which of these jobs are closed or gone."""
        if not job_ids:
            return set()
        marks = ",".join("?" * len(job_ids))
        rows = await self._db.fetchall(
            f"SELECT id FROM jobs WHERE status = 'open' AND id IN ({marks})", sorted(job_ids))
        return job_ids - {r[0] for r in rows}

    async def set_retention(self, job_id: int, days: int | None) -> Job:
        count = await self._db.execute(
            "UPDATE jobs SET retention_days = ?, updated_at = ? WHERE id = ?",
            (days, self._clock(), job_id),
        )
        if not count:
            raise NotFound("No such job.")
        return await self.get(job_id)

    async def delete(self, job_id: int) -> builtins.list[int]:
        """Erase a job and every row of it (cascading), its data key included, unless a
        call of it is in progress or a snapshot of it is being made, in any process
        (Conflict); return the ids of the snapshots erased. Its id is never given to
        another job.

        The check is part of the DELETE, so no call can start nor snapshot begin
        between the two: either comes first and the erase is refused, or the erase does
        and they find no job (their rows refer to it). On PostgreSQL the job's row is
        locked first: a call or snapshot whose row is being written (it holds a share
        of the job's) is committed before the DELETE looks, and one written after waits
        for the erase and finds no job."""
        async with self._db.transaction() as tx:
            await tx.retire_ids()
            await tx.fetchall(f"SELECT id FROM jobs WHERE id = ?{tx.dialect.for_update}",
                              (job_id,))
            snapshot_ids = [r[0] for r in await tx.fetchall(
                "SELECT id FROM snapshots WHERE job_id = ? ORDER BY id", (job_id,))]
            count = await tx.execute(
                "DELETE FROM jobs WHERE id = ?"
                " AND NOT EXISTS (SELECT 1 FROM calls WHERE job_id = jobs.id"
                "                 AND ended_at IS NULL)"
                " AND NOT EXISTS (SELECT 1 FROM snapshots_in_progress WHERE job_id = jobs.id"
                "                 AND started_at > ?)",
                (job_id, self._clock() - IN_PROGRESS_MAX_S))
            if not count:
                await self._why_not_deleted(tx, job_id)
        await self._db.checkpoint()
        return snapshot_ids

    @staticmethod
    async def _why_not_deleted(tx: Transaction, job_id: int) -> None:
        """Raise what stopped the job's erasure (the same transaction: the same rows)."""
        if await tx.fetchone("SELECT 1 FROM jobs WHERE id = ?", (job_id,)) is None:
            raise NotFound("No such job.")
        if await tx.fetchone("SELECT 1 FROM calls WHERE job_id = ? AND ended_at IS NULL",
                             (job_id,)) is not None:
            raise Conflict("A call of this job is in progress: close the job first.")
        raise Conflict("A snapshot of this job is being saved; try again in a moment.")

    async def purge(self, now: float, default_days: int | None
                    ) -> tuple[dict[str, int], builtins.list[int]]:
        """Delete snapshots, chat and events older than each job's retention, and clear
        the names join links were made out to and where they were sent, from the links,
        the participants who came by them and their notes; return how many of each
        (``names``: the rows cleared), and the ids of the snapshots (every version)
        deleted."""
        cutoff = (
            "SELECT id, CAST(? AS DOUBLE PRECISION)"
            " - coalesce(retention_days, CAST(? AS INTEGER)) * 86400.0 AS before FROM jobs"
            " WHERE coalesce(retention_days, CAST(? AS INTEGER)) IS NOT NULL"
        )
        params = (now, default_days, default_days)
        counts = {}
        async with self._db.transaction() as tx:
            await tx.retire_ids()
            snapshot_ids = [r[0] for r in await tx.fetchall(
                f"SELECT s.id FROM snapshots s JOIN frames t ON t.id = s.frame_id"
                f" JOIN ({cutoff}) c ON c.id = t.job_id WHERE t.captured_at < c.before"
                " ORDER BY s.id", params)]
            for name, table, column in (("snapshots", "frames", "captured_at"),
                                        ("messages", "messages", "created_at"),
                                        ("events", "events", "created_at")):
                counts[name] = await tx.execute(
                    f"DELETE FROM {table} WHERE id IN (SELECT t.id FROM {table} t"
                    f" JOIN ({cutoff}) c ON c.id = t.job_id WHERE t.{column} < c.before)",
                    params,
                )
            # The names join links were made out to, and where they were sent, go with
            # the chat: from the links, and from the participants who came by them (the
            # role's word instead).
            counts["names"] = await tx.execute(
                "UPDATE invites SET name = NULL, sent_to = NULL"
                " WHERE (name IS NOT NULL OR sent_to IS NOT NULL) AND id IN"
                f" (SELECT t.id FROM invites t JOIN ({cutoff}) c ON c.id = t.job_id"
                " WHERE t.created_at < c.before)", params)
            counts["names"] += await tx.execute(
                "UPDATE participants SET display_name = CASE role WHEN 'customer'"
                " THEN 'Customer' ELSE 'Technician' END"
                " WHERE invite_id IS NOT NULL AND display_name NOT IN ('Customer', 'Technician')"
                " AND id IN (SELECT p.id FROM participants p JOIN calls k ON k.id = p.call_id"
                f" JOIN ({cutoff}) c ON c.id = k.job_id WHERE p.joined_at < c.before)",
                params)
            # A technician who came by a named link signs their notes with that name:
            # the notes stay, the name goes.
            counts["names"] += await tx.execute(
                "UPDATE notes SET author_name = 'Technician' WHERE user_id IS NULL"
                " AND author_name != 'Technician' AND id IN (SELECT t.id FROM notes t"
                f" JOIN ({cutoff}) c ON c.id = t.job_id WHERE t.created_at < c.before)",
                params)
        if any(counts.values()):
            await self._db.checkpoint()
        return counts, snapshot_ids

    async def add_note(self, job_id: int, user_id: int | None, author_name: str,
                       text: str) -> Note:
        now = self._clock()
        note_id = await self._db.insert(
            "INSERT INTO notes (job_id, user_id, author_name, text, created_at)"
            " VALUES (?, ?, ?, ?, ?) RETURNING id",
            (job_id, user_id, author_name, text, now),
        )
        return Note(note_id, job_id, user_id, author_name, text, now)

    async def notes(self, job_id: int) -> builtins.list[Note]:
        rows = await self._db.fetchall(
            "SELECT id, job_id, user_id, author_name, text, created_at FROM notes"
            " WHERE job_id = ? ORDER BY created_at, id",
            (job_id,),
        )
        return [Note(*r) for r in rows]

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
