"""The audit log of security-relevant events, append-only and hash-chained
(``storage/chain.py``). Callers never pass tokens or secrets.

An append reads the last row's id and hash and inserts the next row in one
transaction that holds the lock ``audit``: the server's processes and CLI commands
append to the same database and take turns (on SQLite its write lock, BEGIN IMMEDIATE,
already makes them; on PostgreSQL an advisory lock does), so the chain never forks. A
trigger (migration 0005) refuses any row that does not extend the chain, and any
change or deletion.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from videoassist.storage.chain import COLUMNS, GENESIS, Verdict, Verifier, canonical, row_hash
from videoassist.storage.db import Database, Row
from videoassist.storage.records import AuditEntry

_BATCH = 500


@dataclass(frozen=True)
class AuditFilter:
    """Which rows: each field set narrows the selection."""

    actor: str | None = None
    action: str | None = None  # exact, or a prefix when it ends with '.' ('signin.')
    target: str | None = None
    since: float | None = None  # created_at >= since
    until: float | None = None  # created_at < until

    def where(self) -> tuple[list[str], list[Any]]:
        clauses: list[str] = []
        params: list[Any] = []
        if self.actor is not None:
            clauses.append("actor = ?")
            params.append(self.actor)
        if self.action is not None and self.action.endswith("."):
            clauses.append("substr(action, 1, ?) = ?")
            params += [len(self.action), self.action]
        elif self.action is not None:
            clauses.append("action = ?")
            params.append(self.action)
        if self.target is not None:
            clauses.append("target = ?")
            params.append(self.target)
        if self.since is not None:
            clauses.append("created_at >= ?")
            params.append(self.since)
        if self.until is not None:
            clauses.append("created_at < ?")
            params.append(self.until)
        return clauses, params


def _storable(text: str) -> str:
    """Text SQLite can store: a lone surrogate (from a JSON body or argv) is written
    as its escape instead of failing the request."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _entry(row: Row) -> AuditEntry:
    return AuditEntry(row[0], row[1], row[2], row[3], row[4], json.loads(row[5]), row[6],
                      row[7])


class Audit:
    def __init__(self, db: Database, clock: Callable[[], float]) -> None:
        self._db = db
        self._clock = clock

    async def record(
        self, actor: str, action: str, target: str | None = None, **detail: Any
    ) -> None:
        # What is hashed is what is stored and read back: the detail as parsed from its
        # stored text, the time as the double SQLite keeps (an int clock included).
        detail_text = canonical(detail).decode("ascii")
        row: dict[str, Any] = {
            "created_at": float(self._clock()), "actor": _storable(actor),
            "action": _storable(action),
            "target": None if target is None else _storable(target),
            "detail": json.loads(detail_text),
        }
        async with self._db.transaction() as tx:
            await tx.lock("audit")
            last = await tx.fetchone("SELECT id, hash FROM audit_log ORDER BY id DESC LIMIT 1")
            row["id"] = (last[0] if last else 0) + 1
            # A last row without a hash (written around the chain) is verify's to report;
            # appending goes on from the start value, as the trigger expects.
            prev_hash = (last[1] if last else None) or GENESIS
            await tx.execute(
                "INSERT INTO audit_log (id, created_at, actor, action, target, detail,"
                " prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (row["id"], row["created_at"], row["actor"], row["action"], row["target"],
                 detail_text, prev_hash, row_hash(prev_hash, row)))

    async def recent(self, limit: int = 100) -> list[dict[str, Any]]:
        return [e.public() for e in await self.page(AuditFilter(), None, limit)]

    async def page(self, where: AuditFilter, before: int | None, limit: int
                   ) -> list[AuditEntry]:
        """Up to ``limit`` rows matching ``where`` below id ``before``, newest first."""
        clauses, params = where.where()
        if before is not None:
            clauses.append("id < ?")
            params.append(before)
        sql = f"SELECT {COLUMNS} FROM audit_log"
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        rows = await self._db.fetchall(sql + " ORDER BY id DESC LIMIT ?", [*params, limit])
        return [_entry(r) for r in rows]

    async def stream(self, where: AuditFilter) -> AsyncIterator[AuditEntry]:
        """Every row matching ``where``, oldest first, read a batch at a time; rows
        appended after the first batch is read are left out."""
        clauses, params = where.where()
        head = await self._db.fetchone("SELECT coalesce(max(id), 0) FROM audit_log")
        assert head is not None
        last_id = 0
        sql = (f"SELECT {COLUMNS} FROM audit_log WHERE "
               + " AND ".join([*clauses, "id > ?", "id <= ?"]) + " ORDER BY id LIMIT ?")
        while True:
            rows = await self._db.fetchall(sql, [*params, last_id, head[0], _BATCH])
            for row in rows:
                yield _entry(row)
            if len(rows) < _BATCH:
                return
            last_id = rows[-1][0]

    async def verify(self) -> Verdict:
        """Check the whole chain, a batch at a time; stop at the first break."""
        verifier = Verifier()
        last_id = 0
        while True:
            rows = await self._db.fetchall(
                f"SELECT {COLUMNS} FROM audit_log WHERE id > ? ORDER BY id LIMIT ?",
                (last_id, _BATCH))
            for row in rows:
                if verifier.feed(tuple(row)) is not None:
                    return verifier.verdict()
            if len(rows) < _BATCH:
                return verifier.verdict()
            last_id = rows[-1][0]
