"""The database behind the store, SQLite or PostgreSQL, behind one interface.

All SQL of the project lives in this package. Without ``VIDEOASSIST_DATABASE_URL`` the
database is one SQLite file in the data directory (``storage/sqlite.py``); with it, a
PostgreSQL database (``storage/postgres.py``). The modules of the package write each
statement once, with ``?`` placeholders (``?NNN`` for a numbered one), in SQL that both
run alike; where the two differ (a function's name, a whole query) a module asks
``dialect`` and writes one for each. Ids of new rows come back through ``INSERT ...
RETURNING id``, which both run.

``Database`` runs one statement at a time; ``transaction()`` runs several as one, and
each backend says how its transactions keep out of each other's way:
``Transaction.lock`` is what a statement sequence that must not interleave with another
(read the last row, insert the next) takes.

``long_reads`` runs the reads that may take long (the analytics of a year) one at a
time, on a connection the statements that serve calls never wait for: SQLite's one
connection would otherwise hold every sign-in, join and chat message behind them.

``listen`` is PostgreSQL's LISTEN on a connection of its own: the notifications the
triggers of migration 9 send when a user, job, link, API key or call changes (SQLite has
none: ``listen`` gives None there).

Migrations are numbered SQL files per dialect, ``migrations/sqlite/NNNN_name.sql`` and
``migrations/postgresql/NNNN_name.sql``, the same numbers on both: version N of the
schema is the same tables on either database.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Iterable, Iterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Protocol, overload

_MIGRATION_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


class Row(Protocol):
    """A row as either driver gives it: its columns by position."""

    @overload
    def __getitem__(self, index: int, /) -> Any: ...

    @overload
    def __getitem__(self, index: slice, /) -> tuple[Any, ...]: ...

    def __len__(self) -> int: ...

    def __iter__(self) -> Iterator[Any]: ...


@dataclass(frozen=True)
class Dialect:
    """What differs between the two databases' SQL, a fragment at a time."""

    name: str  # 'sqlite' or 'postgresql': also the folder of its migrations
    greatest: str  # the larger of its arguments (SQLite's max() of several arguments)
    ilike: str  # LIKE ignoring case (SQLite's LIKE does, for ASCII)
    for_update: str  # after a SELECT: lock the rows read until the transaction ends
    # After a SELECT: the same, passing over rows another transaction has locked (a
    # queue taken by several nodes at once). SQLite's one writer has no such rows.
    skip_locked: str


SQLITE = Dialect("sqlite", greatest="max", ilike="LIKE", for_update="", skip_locked="")
POSTGRESQL = Dialect("postgresql", greatest="GREATEST", ilike="ILIKE", for_update=" FOR UPDATE",
                     skip_locked=" FOR UPDATE SKIP LOCKED")
DIALECTS = (SQLITE, POSTGRESQL)


def is_postgresql_url(target: Path | str) -> bool:
    return isinstance(target, str) and target.startswith(("postgresql://", "postgres://"))


def migrations(dialect: Dialect = SQLITE) -> list[tuple[int, str, str]]:
    """The shipped migrations of a dialect as (number, file name, SQL), in order."""
    found = []
    folder = resources.files("videoassist.storage").joinpath("migrations").joinpath(dialect.name)
    for entry in folder.iterdir():
        match = _MIGRATION_NAME.match(entry.name)
        if match:
            found.append((int(match.group(1)), entry.name, entry.read_text(encoding="utf-8")))
    found.sort()
    numbers = [n for n, _, _ in found]
    if numbers != list(range(1, len(numbers) + 1)):
        raise RuntimeError(f"{dialect.name} migrations are not numbered 1..N: {numbers}")
    return found


def advisory_key(name: str, key: int = 0) -> int:
    """A signed 64-bit number for a named lock, the same in every process."""
    digest = hashlib.blake2b(f"videoassist:{name}:{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


class Transaction(ABC):
    """Statements inside ``Database.transaction()``."""

    dialect: Dialect

    @abstractmethod
    async def execute(self, sql: str, params: Iterable[Any] = ()) -> int:
        """Run one writing statement; return how many rows it changed."""

    @abstractmethod
    async def fetchall(self, sql: str, params: Iterable[Any] = ()) -> list[Row]:
        """Every row of a query."""

    @abstractmethod
    async def lock(self, name: str, key: int = 0) -> None:
        """Hold the lock ``name`` (for ``key``: a job's id, say) until this transaction
        ends: another transaction taking the same lock waits until then. What a
        transaction does between reading a row and writing the next is then never
        interleaved with another doing the same (the audit chain, the next id)."""

    async def fetchone(self, sql: str, params: Iterable[Any] = ()) -> Row | None:
        """The first row of a query that has at most a few (all are read)."""
        rows = await self.fetchall(sql, params)
        return rows[0] if rows else None

    async def insert(self, sql: str, params: Iterable[Any] = ()) -> int:
        """Run an ``INSERT ... RETURNING id`` of one row; return the id."""
        row = await self.fetchone(sql, params)
        assert row is not None, "an INSERT ... RETURNING id gave no row"
        return int(row[0])

    async def next_id(self, table: str) -> int:
        """An id above any the table has had, deleted rows included. Until the
        transaction ends, no other transaction is given one for the same table."""
        assert table in NEVER_REUSED
        await self.lock("next_id", NEVER_REUSED.index(table))
        row = await self.fetchone(
            f"SELECT {self.dialect.greatest}(coalesce((SELECT max(id) FROM {table}), 0),"
            " coalesce((SELECT max_id FROM retired_ids WHERE name = ?), 0)) + 1",
            (table,))
        assert row is not None
        return int(row[0])

    async def retire_ids(self) -> None:
        """Remember each table's highest id, before rows are deleted."""
        for table in NEVER_REUSED:
            await self.lock("next_id", NEVER_REUSED.index(table))
            await self.execute(
                f"INSERT INTO retired_ids (name, max_id) SELECT ?, max(id) FROM {table}"
                " HAVING max(id) IS NOT NULL ON CONFLICT (name) DO UPDATE"
                f" SET max_id = {self.dialect.greatest}(retired_ids.max_id, excluded.max_id)",
                (table,))


class Listening(ABC):
    """A connection LISTENing for changes (``Database.listen``), until it is lost or
    closed."""

    @abstractmethod
    async def lost(self) -> str:
        """Wait until the connection is lost (never if it is not); return why."""

    @abstractmethod
    async def close(self) -> None: ...


# The payload of a change notification: the table and the row's id ('users:7').
ChangeCallback = Callable[[str, int], None]


# Tables whose ids are never reused after their rows are deleted (migration 0004).
NEVER_REUSED = ("jobs", "snapshots")


class SessionLock(ABC):
    """A lock held for as long as one database connection of its own lives."""

    @abstractmethod
    async def lost(self) -> None:
        """Return once the lock may be lost: its connection closed, or stopped
        answering. (The database releases the lock when it ends the session.)"""


class LongReads:
    """Reads that may take long (analytics over a year), one at a time in a process, on
    a connection of their own (``fetchall``: SQLite's read-only second connection, a
    connection of PostgreSQL's pool), so they take at most one connection and what
    serves calls never queues behind them. Each statement reads what was committed
    when it began."""

    def __init__(self, fetchall: Callable[[str, Iterable[Any]], Awaitable[list[Row]]]) -> None:
        self._fetchall = fetchall
        self._lock = asyncio.Lock()

    async def fetchall(self, sql: str, params: Iterable[Any] = ()) -> list[Row]:
        async with self._lock:
            return await self._fetchall(sql, params)

    async def fetchone(self, sql: str, params: Iterable[Any] = ()) -> Row | None:
        rows = await self.fetchall(sql, params)
        return rows[0] if rows else None


class Database(ABC):
    """The store's connection (SQLite) or pool of connections (PostgreSQL)."""

    dialect: Dialect
    long_reads: LongReads
    # Whether ``session_lock`` works: a lock that every process sharing the database, on
    # any machine, sees (PostgreSQL's). SQLite's processes are on one machine, under one
    # supervisor, which picks the one to do what must be done once.
    session_locks = False

    def session_lock(self, name: str, holder: str
                     ) -> AbstractAsyncContextManager[SessionLock | None]:
        """Try to take the lock ``name``, on a connection of its own that holds it
        while the block lasts; None if another connection holds it. ``holder`` names
        this process to the database's administrators (PostgreSQL's
        ``application_name``: ``pg_stat_activity`` shows who holds what)."""
        raise NotImplementedError(f"{self.dialect.name} has no session locks")

    @abstractmethod
    async def close(self) -> None: ...

    @abstractmethod
    def describe(self) -> str:
        """Where the database is, for people: never a password."""

    @abstractmethod
    async def schema_version(self) -> int:
        """The number of the last migration applied (0: none)."""

    @abstractmethod
    async def migrate(self) -> list[str]:
        """Apply the migrations this database has not seen; return their names."""

    @abstractmethod
    async def checkpoint(self) -> None:
        """Make content just deleted leave the database's logs too, where the database
        can (SQLite's WAL)."""

    async def ping(self) -> None:
        await self.fetchone("SELECT 1")

    @abstractmethod
    async def data_version(self) -> int:
        """A number that changes when another connection (another process: the CLI)
        commits to the database (it may change more often than that)."""

    async def listen(self, on_change: ChangeCallback, application_name: str,
                     url: str | None = None) -> Listening | None:
        """Open a connection of its own that hears of every change committed to a user,
        job, link, API key or call (the table's name and the row's id, to
        ``on_change``, on the event loop), named ``application_name`` for the database's
        operators (``pg_stat_activity``); ``url``: reach the database there for it (not
        through a pooler that cannot carry LISTEN). None: this database sends no
        notifications (SQLite); its users poll."""
        return None

    @abstractmethod
    async def fetchall(self, sql: str, params: Iterable[Any] = ()) -> list[Row]:
        """Every row of a query."""

    async def fetchone(self, sql: str, params: Iterable[Any] = ()) -> Row | None:
        """The first row of a query that has at most a few (all are read)."""
        rows = await self.fetchall(sql, params)
        return rows[0] if rows else None

    @abstractmethod
    async def execute(self, sql: str, params: Iterable[Any] = ()) -> int:
        """Run one writing statement on its own; return how many rows it changed."""

    async def insert(self, sql: str, params: Iterable[Any] = ()) -> int:
        """Run an ``INSERT ... RETURNING id`` of one row on its own; return the id."""
        row = await self.write_returning(sql, params)
        assert row is not None, "an INSERT ... RETURNING id gave no row"
        return int(row[0])

    async def write_returning(self, sql: str, params: Iterable[Any] = ()) -> Row | None:
        """Run one ``... RETURNING`` writing statement; return its first row."""
        rows = await self.write_returning_all(sql, params)
        return rows[0] if rows else None

    @abstractmethod
    async def write_returning_all(self, sql: str, params: Iterable[Any] = ()) -> list[Row]:
        """Run one ``... RETURNING`` writing statement; return all its rows."""

    @abstractmethod
    def transaction(self) -> AbstractAsyncContextManager[Transaction]:
        """A write transaction; rolled back if the block raises."""
