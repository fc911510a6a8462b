"""The audit log of security-relevant events, append-only and hash-chained
(``storage/chain.py``). Callers never pass tokens or secrets.

An append reads the last row's id and hash and inserts the next row in one
transaction that holds the lock ``audit``: the server's processes and CLI commands
append to the same database and take turns (on SQLite its write lock, BEGIN IMMEDIATE,
already makes them; on PostgreSQL an advisory lock does), so the chain never forks. A
trigger (migration 0005) refuses any row that does not extend the chain, and any
change or deletion but one: erasing a row's personal data (migration 0011), which
``erase_personal`` does and names in the row it appends (``storage/chain.py``).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from videoassist.actors import Actor
from videoassist.storage.chain import (
    COLUMNS,
    ERASURES,
    GENESIS,
    Verdict,
    Verifier,
    canonical,
    columns_at,
    row_hash,
    seal_personal,
)
from videoassist.storage.db import Database, Row, Transaction
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
                      row[7], None if row[8] is None else json.loads(row[8]))


class Audit:
    def __init__(self, db: Database, clock: Callable[[], float]) -> None:
        self._db = db
        self._clock = clock

    async def record(
        self, actor: Actor | str, action: str, target: str | None = None,
        personal: Mapping[str, Any] | None = None, /, **detail: Any
    ) -> None:
        """Append a row. ``personal``: values about a person outside the staff (a
        customer's address), kept out of the chain so that erasing the job they came
        for can erase them (``erase_personal``); the chained detail holds their
        commitment, under ``personal`` (so no detail is named that)."""
        assert "personal" not in detail
        personal_text = None
        if personal:
            personal_text, detail["personal"] = seal_personal(personal)
        row = self._row(actor, action, target)
        async with self._db.transaction() as tx:
            await tx.lock("audit")
            await self._append(tx, row, detail, personal_text)

    async def erase_personal(self, actor: Actor | str, action: str, target: str,
                             **detail: Any) -> list[int]:
        """Erase the personal data of every row about ``target`` and append ``action``
        (one of ``ERASURES``), naming those rows in ``redacted``, in one transaction:
        no moment shows them erased without the row that says so. Return their ids."""
        assert action in ERASURES
        row = self._row(actor, action, target)
        async with self._db.transaction() as tx:
            await tx.lock("audit")
            erased = [r[0] for r in await tx.fetchall(
                "SELECT id FROM audit_log WHERE target = ? AND personal IS NOT NULL"
                " ORDER BY id", (target,))]
            await tx.execute("UPDATE audit_log SET personal = NULL"
                             " WHERE target = ? AND personal IS NOT NULL", (target,))
            await self._append(tx, row, {**detail, "redacted": erased}, None)
        if erased:
            await self._db.checkpoint()  # the erased values leave SQLite's WAL too
        return erased

    def _row(self, actor: Actor | str, action: str, target: str | None) -> dict[str, Any]:
        """A row's fields but its id and detail, timed now (before waiting for the lock).
        ``actor``: who did it (videoassist.actors), or a refused client (``client:ADDR``)."""
        return {"created_at": float(self._clock()), "actor": _storable(str(actor)),
                "action": _storable(action),
                "target": None if target is None else _storable(target)}

    async def _append(self, tx: Transaction, row: dict[str, Any], detail: dict[str, Any],
                      personal_text: str | None) -> None:
        """Insert ``row`` as the next one; ``tx`` holds the lock ``audit``."""
        # What is hashed is what is stored and read back: the detail as parsed from its
        # stored text, the time as the double SQLite keeps (an int clock included).
        detail_text = canonical(detail).decode("ascii")
        row["detail"] = json.loads(detail_text)
        last = await tx.fetchone("SELECT id, hash FROM audit_log ORDER BY id DESC LIMIT 1")
        row["id"] = (last[0] if last else 0) + 1
        # A last row without a hash (written around the chain) is verify's to report;
        # appending goes on from the start value, as the trigger expects.
        prev_hash = (last[1] if last else None) or GENESIS
        await tx.execute(
            "INSERT INTO audit_log (id, created_at, actor, action, target, detail,"
            " prev_hash, hash, personal) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (row["id"], row["created_at"], row["actor"], row["action"], row["target"],
             detail_text, prev_hash, row_hash(prev_hash, row), personal_text))

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
        # verify runs on a database it does not migrate: one before 0011 has no personal.
        columns = columns_at(await self._db.schema_version())
        while True:
            rows = await self._db.fetchall(
                f"SELECT {columns} FROM audit_log WHERE id > ? ORDER BY id LIMIT ?",
                (last_id, _BATCH))
            for row in rows:
                if verifier.feed(tuple(row)) is not None:
                    return verifier.verdict()
            if len(rows) < _BATCH:
                return verifier.verdict()
            last_id = rows[-1][0]
