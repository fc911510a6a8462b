"""The SQLite connection: WAL, foreign keys, one writer, numbered migrations.

All SQL of the project lives in this package. One aiosqlite connection serves
the whole process; multi-statement changes take ``Database.transaction()``,
which serializes writers so a transaction never interleaves with another, and a read
waits for a transaction in progress to end (on one connection it would see it half
done). Several processes (the workers, the CLI) share the file: SQLite's own locks,
with a busy timeout, order their writes.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path
from typing import Any

import aiosqlite

from videoassist.storage import chain

logger = logging.getLogger(__name__)

CHECKPOINT_TRIES = 5

_MIGRATION_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")

# What SQL cannot do (SHA-256), run in a migration's transaction after its statements.
_PYTHON_STEPS: dict[int, Callable[[aiosqlite.Connection], Awaitable[None]]] = {
    chain.CHAIN_SCHEMA_VERSION: chain.seal_existing,
}


def migrations() -> list[tuple[int, str, str]]:
    """The shipped migrations as (number, file name, SQL), in order."""
    found = []
    for entry in resources.files("videoassist.storage").joinpath("migrations").iterdir():
        match = _MIGRATION_NAME.match(entry.name)
        if match:
            found.append((int(match.group(1)), entry.name, entry.read_text(encoding="utf-8")))
    found.sort()
    numbers = [n for n, _, _ in found]
    if numbers != list(range(1, len(numbers) + 1)):
        raise RuntimeError(f"migrations are not numbered 1..N: {numbers}")
    return found


class Database:
    """One process-wide SQLite connection."""

    def __init__(self, conn: aiosqlite.Connection, path: Path) -> None:
        self._conn = conn
        self.path = path
        # One statement or transaction at a time: reads wait for a transaction of
        # another task to end, and see it whole.
        self._write_lock = asyncio.Lock()

    @classmethod
    async def open(cls, path: Path) -> Database:
        # Blocking file-system calls, once at start-up.
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        new = not path.exists()  # noqa: ASYNC240
        conn = await aiosqlite.connect(path, isolation_level=None)
        try:
            if new:
                os.chmod(path, 0o600)
            conn.row_factory = aiosqlite.Row
            await conn.execute("PRAGMA journal_mode = WAL")
            await conn.execute("PRAGMA foreign_keys = ON")
            await conn.execute("PRAGMA busy_timeout = 5000")
            await conn.execute("PRAGMA synchronous = NORMAL")
            # Deleted content is overwritten, not left in free pages (erasure, retention).
            await conn.execute("PRAGMA secure_delete = ON")
        except BaseException:
            # Not a database, say: close it, or its worker thread keeps the process alive.
            await conn.close()
            raise
        return cls(conn, path)

    async def close(self) -> None:
        await self._conn.close()

    async def schema_version(self) -> int:
        [row] = await self._read("PRAGMA user_version")  # also under the lock, in migrate
        return int(row[0])

    async def migrate(self) -> list[str]:
        """Apply the migrations this database has not seen; return their names."""
        applied = []
        async with self._write_lock:
            current = await self.schema_version()
            for number, name, sql in migrations():
                if number <= current:
                    continue
                await self._conn.execute("BEGIN IMMEDIATE")
                try:
                    # executescript would COMMIT first; run statement by statement instead.
                    for statement in _split_statements(sql):
                        await self._conn.execute(statement)
                    if number in _PYTHON_STEPS:
                        await _PYTHON_STEPS[number](self._conn)
                    await self._conn.execute(f"PRAGMA user_version = {number:d}")
                except BaseException:
                    await self._conn.execute("ROLLBACK")
                    raise
                await self._conn.execute("COMMIT")
                logger.info("applied migration %s", name)
                applied.append(name)
        return applied

    async def checkpoint(self) -> None:
        """Copy the WAL into the database file and truncate it, so that content just
        deleted (and overwritten there, by secure_delete) leaves the WAL too."""
        for attempt in range(CHECKPOINT_TRIES):
            async with self._write_lock:
                [row] = await self._read("PRAGMA wal_checkpoint(TRUNCATE)")
            if row[0] == 0:  # (busy, log frames, checkpointed)
                return
            # A reader (the CLI, a backup) holds the WAL: the erased pages stay there
            # until a later checkpoint, so try again shortly.
            await asyncio.sleep(0.1 * (attempt + 1))
        logger.warning("the WAL could not be truncated (a reader holds it); deleted content "
                       "leaves it at the next checkpoint")

    async def ping(self) -> None:
        await self.fetchone("SELECT 1")

    async def data_version(self) -> int:
        """A number that changes when another connection (another process: the CLI)
        commits to the database; this connection's own writes leave it as it is."""
        row = await self.fetchone("PRAGMA data_version")
        assert row is not None
        return int(row[0])

    async def fetchone(self, sql: str, params: Iterable[Any] = ()) -> aiosqlite.Row | None:
        """The first row of a query that has at most a few (all are read)."""
        rows = await self.fetchall(sql, params)
        return rows[0] if rows else None

    async def fetchall(self, sql: str, params: Iterable[Any] = ()) -> list[aiosqlite.Row]:
        """A read, never in the middle of another task's transaction: on this shared
        connection it would see that transaction's writes before they are committed,
        or whole."""
        async with self._write_lock:
            return await self._read(sql, params)

    async def _read(self, sql: str, params: Iterable[Any] = ()) -> list[aiosqlite.Row]:
        # One call on the connection's thread, the statement run to its end there: a
        # query left open between two calls keeps a read transaction, and a write
        # transaction begun meanwhile on this connection would start from that
        # snapshot; once another process (a worker, the CLI) has written, SQLite
        # refuses it at once ("database is locked", no busy wait).
        return list(await self._conn.execute_fetchall(sql, tuple(params)))

    async def execute(self, sql: str, params: Iterable[Any] = ()) -> tuple[int, int | None]:
        """Run one writing statement on its own; return (rowcount, lastrowid)."""
        async with self._write_lock, self._conn.execute(sql, tuple(params)) as cur:
            return cur.rowcount, cur.lastrowid

    async def write_returning(
        self, sql: str, params: Iterable[Any] = ()
    ) -> aiosqlite.Row | None:
        """Run one ``... RETURNING`` writing statement; return its first row."""
        rows = await self.write_returning_all(sql, params)
        return rows[0] if rows else None

    async def write_returning_all(
        self, sql: str, params: Iterable[Any] = ()
    ) -> list[aiosqlite.Row]:
        """Run one ``... RETURNING`` writing statement; return all its rows."""
        async with self._write_lock, self._conn.execute(sql, tuple(params)) as cur:
            return list(await cur.fetchall())

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Transaction]:
        """A write transaction; rolled back if the block raises."""
        async with self._write_lock:
            await self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield Transaction(self._conn)
            except BaseException:
                await self._conn.execute("ROLLBACK")
                raise
            await self._conn.execute("COMMIT")


# Tables whose ids are never reused after their rows are deleted (migration 0004).
NEVER_REUSED = ("jobs", "snapshots")


class Transaction:
    """Statements inside ``Database.transaction()``."""

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn

    async def next_id(self, table: str) -> int:
        """An id above any the table has had, deleted rows included."""
        assert table in NEVER_REUSED
        row = await self.fetchone(
            f"SELECT max(coalesce((SELECT max(id) FROM {table}), 0),"
            " coalesce((SELECT max_id FROM retired_ids WHERE name = ?), 0)) + 1",
            (table,))
        assert row is not None
        return int(row[0])

    async def retire_ids(self) -> None:
        """Remember each table's highest id, before rows are deleted."""
        for table in NEVER_REUSED:
            await self.execute(
                f"INSERT INTO retired_ids (name, max_id) SELECT ?, max(id) FROM {table}"
                " HAVING max(id) IS NOT NULL"
                " ON CONFLICT (name) DO UPDATE SET max_id = max(max_id, excluded.max_id)",
                (table,))

    async def execute(self, sql: str, params: Iterable[Any] = ()) -> tuple[int, int | None]:
        async with self._conn.execute(sql, tuple(params)) as cur:
            return cur.rowcount, cur.lastrowid

    async def fetchone(self, sql: str, params: Iterable[Any] = ()) -> aiosqlite.Row | None:
        """The first row of a query that has at most a few (all are read)."""
        rows = await self.fetchall(sql, params)
        return rows[0] if rows else None

    async def fetchall(self, sql: str, params: Iterable[Any] = ()) -> list[aiosqlite.Row]:
        return list(await self._conn.execute_fetchall(sql, tuple(params)))


def _split_statements(sql: str) -> list[str]:
    """Split a migration into statements, as SQLite's own tokenizer sees them."""
    statements, pending = [], ""
    for line in sql.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            statements.append(pending.strip())
            pending = ""
    if pending.strip() and not all(
        ln.strip().startswith("--") or not ln.strip() for ln in pending.splitlines()
    ):
        raise RuntimeError("migration ends with an incomplete statement")
    return statements
