"""SQLite: WAL, foreign keys, one writer, migrations tracked by ``PRAGMA user_version``.

One aiosqlite connection serves the whole process; multi-statement changes take
``transaction()``, which serializes writers so a transaction never interleaves with
another, and a read waits for a transaction in progress to end (on one connection it
would see it half done). Several processes (the workers, the CLI) share the file:
SQLite's own locks, with a busy timeout, order their writes, and ``BEGIN IMMEDIATE``
makes every write transaction the only one on the database until it ends (so
``Transaction.lock`` has nothing left to do).

Reads that may take long (``long_reads``: the analytics of a year) run on a second,
read-only connection, opened when first needed: in WAL mode it reads what was
committed while the first one goes on writing, so sign-ins, joins and chat never wait
for a report.

A statement or transaction that takes ``SLOW_S`` or more is logged (WARNING) with its
first words and how long it waited behind this process's others: every chat line and
join waits for the one before, so a slow one shows as a stalled call.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import time
from collections.abc import AsyncIterator, Iterable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import aiosqlite

from videoassist.storage.db import (
    SQLITE,
    Database,
    LongReads,
    Row,
    Transaction,
    migrations,
)
from videoassist.storage.errors import ForeignKeyViolation, IntegrityError, UniqueViolation
from videoassist.storage.steps import PYTHON_STEPS

logger = logging.getLogger(__name__)

CHECKPOINT_TRIES = 5
SLOW_S = 1.0  # a statement this long (or a transaction) is logged

_UNIQUE = ("SQLITE_CONSTRAINT_UNIQUE", "SQLITE_CONSTRAINT_PRIMARYKEY")


@contextmanager
def _translated() -> Iterator[None]:
    """SQLite's constraint errors as the package's own (``storage.errors``)."""
    try:
        yield
    except sqlite3.IntegrityError as exc:
        name = getattr(exc, "sqlite_errorname", "")
        kind = (UniqueViolation if name in _UNIQUE
                else ForeignKeyViolation if name == "SQLITE_CONSTRAINT_FOREIGNKEY"
                else IntegrityError)
        raise kind(str(exc)) from exc


class SqliteDatabase(Database):
    """One process-wide SQLite connection."""

    dialect = SQLITE

    def __init__(self, conn: aiosqlite.Connection, path: Path) -> None:
        self._conn = conn
        self.path = path
        # One statement or transaction at a time: reads wait for a transaction of
        # another task to end, and see it whole.
        self._write_lock = asyncio.Lock()
        self._reader: aiosqlite.Connection | None = None
        self.long_reads = LongReads(self._read_apart)

    @classmethod
    async def open(cls, path: Path) -> SqliteDatabase:
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
        if self._reader is not None:
            await self._reader.close()
        await self._conn.close()

    async def _read_apart(self, sql: str, params: Iterable[Any]) -> list[Row]:
        """A read on the read-only connection (``LongReads`` runs one at a time)."""
        if self._reader is None:
            reader = await aiosqlite.connect(f"{self.path.resolve().as_uri()}?mode=ro",
                                             uri=True, isolation_level=None)
            reader.row_factory = aiosqlite.Row
            await reader.execute("PRAGMA busy_timeout = 5000")
            self._reader = reader
        with _translated():
            return list(await self._reader.execute_fetchall(sql, tuple(params)))

    @asynccontextmanager
    async def _turn(self, what: str) -> AsyncIterator[None]:
        """This process's connection, for one statement or transaction (``what``: its
        SQL, of which the log shows the first words, never a parameter)."""
        asked = time.monotonic()
        async with self._write_lock:
            began = time.monotonic()
            try:
                yield
            finally:
                took = time.monotonic() - began
                if took >= SLOW_S:
                    logger.warning(
                        "the database took %.1f s for %s (after %.1f s behind this "
                        "process's earlier statements)", took,
                        " ".join(what.split()[:4]), began - asked)

    def describe(self) -> str:
        return str(self.path)

    async def schema_version(self) -> int:
        [row] = await self._read("PRAGMA user_version")  # also under the lock, in migrate
        return int(row[0])

    async def migrate(self) -> list[str]:
        applied = []
        async with self._write_lock:
            current = await self.schema_version()
            for number, name, sql in migrations(SQLITE):
                if number <= current:
                    continue
                await self._conn.execute("BEGIN IMMEDIATE")
                try:
                    # executescript would COMMIT first; run statement by statement instead.
                    with _translated():
                        for statement in split_statements(sql):
                            await self._conn.execute(statement)
                    if number in PYTHON_STEPS:
                        await PYTHON_STEPS[number](SqliteTransaction(self._conn))
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
            async with self._turn("PRAGMA wal_checkpoint(TRUNCATE)"):
                [row] = await self._read("PRAGMA wal_checkpoint(TRUNCATE)")
            if row[0] == 0:  # (busy, log frames, checkpointed)
                return
            # A reader (the CLI, a backup) holds the WAL: the erased pages stay there
            # until a later checkpoint, so try again shortly.
            await asyncio.sleep(0.1 * (attempt + 1))
        logger.warning("the WAL could not be truncated (a reader holds it); deleted content "
                       "leaves it at the next checkpoint")

    async def data_version(self) -> int:
        """Changes when another connection commits; this connection's own writes leave
        it as it is."""
        row = await self.fetchone("PRAGMA data_version")
        assert row is not None
        return int(row[0])

    async def fetchall(self, sql: str, params: Iterable[Any] = ()) -> list[Row]:
        """A read, never in the middle of another task's transaction: on this shared
        connection it would see that transaction's writes before they are committed,
        or whole."""
        async with self._turn(sql):
            return await self._read(sql, params)

    async def _read(self, sql: str, params: Iterable[Any] = ()) -> list[Row]:
        # One call on the connection's thread, the statement run to its end there: a
        # query left open between two calls keeps a read transaction, and a write
        # transaction begun meanwhile on this connection would start from that
        # snapshot; once another process (a worker, the CLI) has written, SQLite
        # refuses it at once ("database is locked", no busy wait).
        with _translated():
            return list(await self._conn.execute_fetchall(sql, tuple(params)))

    async def execute(self, sql: str, params: Iterable[Any] = ()) -> int:
        async with self._turn(sql):
            with _translated():
                async with self._conn.execute(sql, tuple(params)) as cur:
                    return cur.rowcount

    async def write_returning_all(self, sql: str, params: Iterable[Any] = ()) -> list[Row]:
        async with self._turn(sql):
            with _translated():
                return list(await self._conn.execute_fetchall(sql, tuple(params)))

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Transaction]:
        async with self._turn("a transaction"):
            await self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield SqliteTransaction(self._conn)
            except BaseException:
                await self._conn.execute("ROLLBACK")
                raise
            await self._conn.execute("COMMIT")


class SqliteTransaction(Transaction):
    dialect = SQLITE

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn

    async def execute(self, sql: str, params: Iterable[Any] = ()) -> int:
        with _translated():
            async with self._conn.execute(sql, tuple(params)) as cur:
                return cur.rowcount

    async def fetchall(self, sql: str, params: Iterable[Any] = ()) -> list[Row]:
        with _translated():
            return list(await self._conn.execute_fetchall(sql, tuple(params)))

    async def lock(self, name: str, key: int = 0) -> None:
        """Nothing to do: BEGIN IMMEDIATE made this the database's only writer."""


def split_statements(sql: str) -> list[str]:
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
