"""PostgreSQL, through a pool of asyncpg connections (``VIDEOASSIST_DATABASE_URL``).

Each statement runs on a connection of the pool, and each transaction holds one
connection until it ends, in PostgreSQL's default isolation (READ COMMITTED): unlike
SQLite's one writer, transactions run side by side, so a sequence that must not
interleave with another (the audit chain's read-last-row-insert-next, the next id of a
table, placing a job's call) takes ``Transaction.lock``, an advisory lock held until the
transaction ends (``pg_advisory_xact_lock``). Unique indexes stay the last word: two
calls in progress for one job cannot both be committed, whatever the code does.

``session_lock`` is a session advisory lock (``pg_try_advisory_lock``) on a connection
of its own, outside the pool: what only one node of a fleet may do at a time (the
periodic duties) is done by the node holding it, and a node whose connection is lost
loses it, for another node to take.

Migrations are recorded in the table ``schema_migrations`` and applied under a
session advisory lock, so that processes starting at once (the workers, a CLI
command) apply each once: the others wait, then find nothing left to do.

``listen`` opens one more connection, outside the pool, that LISTENs on
``videoassist_changes``: the triggers of migration 9 notify it of every change to who
may stay in a call, when its transaction commits. Its loss is noticed at once when the
server closes it (``pg_terminate_backend``, a restart) and within ``LISTEN_CHECK_S`` +
``LISTEN_TIMEOUT_S`` when it goes silent (a network cut): it is asked ``SELECT 1`` that
often.

Statements are written with SQLite's ``?`` placeholders; ``numbered`` turns them into
PostgreSQL's ``$N`` with a tokenizer that leaves string literals, quoted names and
comments alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import logging
import time
from collections.abc import AsyncIterator, Iterable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from videoassist.storage.db import (
    POSTGRESQL,
    ChangeCallback,
    Database,
    Listening,
    LongReads,
    Row,
    SessionLock,
    Transaction,
    advisory_key,
    migrations,
)
from videoassist.storage.errors import (
    DatabaseError,
    ForeignKeyViolation,
    IntegrityError,
    UniqueViolation,
)
from videoassist.storage.steps import PYTHON_STEPS

logger = logging.getLogger(__name__)

# Connections one process keeps at most: a worker's concurrent statements beyond this
# wait for one to be free.
POOL_SIZE = 10
# A session lock's connection is asked every LOCK_PING_S whether it is still there; no
# answer within LOCK_ANSWER_S counts as lost.
LOCK_PING_S = 2.0
LOCK_ANSWER_S = 5.0

# The channel the triggers of migration 9 notify ('table:id').
CHANGES_CHANNEL = "videoassist_changes"
# How often the listening connection is asked whether it still answers, and how long
# it has to.
LISTEN_CHECK_S = 5.0
LISTEN_TIMEOUT_S = 5.0

_MIGRATION_LOCK = advisory_key("migrate")
SCHEMA_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    integer PRIMARY KEY,
    name       text NOT NULL,
    applied_at double precision NOT NULL
)"""


@functools.lru_cache(maxsize=1024)
def numbered(sql: str) -> str:
    """``?`` and ``?NNN`` placeholders as PostgreSQL's ``$N``, except inside string
    literals, quoted names and comments. A bare ``?`` is one more than the largest
    number before it, as SQLite counts them."""
    out: list[str] = []
    highest = 0
    i, n = 0, len(sql)
    while i < n:
        c = sql[i]
        if c in "'\"":
            j = i + 1
            while True:
                j = sql.find(c, j)
                if j == -1:
                    raise ValueError(f"unterminated {c} in SQL: {sql!r}")
                if j + 1 < n and sql[j + 1] == c:  # a doubled quote stands for itself
                    j += 2
                    continue
                break
            out.append(sql[i:j + 1])
            i = j + 1
        elif sql.startswith("--", i):
            j = sql.find("\n", i)
            j = n if j == -1 else j
            out.append(sql[i:j])
            i = j
        elif sql.startswith("/*", i):
            j = sql.find("*/", i + 2)
            if j == -1:
                raise ValueError(f"unterminated comment in SQL: {sql!r}")
            out.append(sql[i:j + 2])
            i = j + 2
        elif c == "?":
            j = i + 1
            while j < n and sql[j].isdigit():
                j += 1
            number = int(sql[i + 1:j]) if j > i + 1 else highest + 1
            highest = max(highest, number)
            out.append(f"${number}")
            i = j
        else:
            j = i + 1
            while j < n and sql[j] not in "'\"-/?":
                j += 1
            out.append(sql[i:j])
            i = j
    return "".join(out)


def _rowcount(status: str) -> int:
    """The rows a command changed, from its status ('UPDATE 3', 'INSERT 0 1')."""
    last = status.rsplit(" ", 1)[-1]
    return int(last) if last.isdigit() else 0


@contextmanager
def _translated() -> Iterator[None]:
    """asyncpg's constraint errors as the package's own (``storage.errors``)."""
    try:
        yield
    except asyncpg.UniqueViolationError as exc:
        raise UniqueViolation(str(exc)) from exc
    except asyncpg.ForeignKeyViolationError as exc:
        raise ForeignKeyViolation(str(exc)) from exc
    except asyncpg.IntegrityConstraintViolationError as exc:
        raise IntegrityError(str(exc)) from exc


def redacted(url: str) -> str:
    """The URL without its password (and query), fit for a log line or a message."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = (f"{parts.username}@" if parts.username else "") + host
    if parts.port is not None:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


class PostgresDatabase(Database):
    """A pool of connections to one PostgreSQL database."""

    dialect = POSTGRESQL

    session_locks = True

    def __init__(self, pool: asyncpg.Pool, url: str) -> None:
        self._pool = pool
        self._url = url
        self._where = redacted(url)
        self._versions = itertools.count(1)
        # A connection of the pool, one long read at a time: the rest stay for calls.
        self.long_reads = LongReads(self.fetchall)

    @classmethod
    async def open(cls, url: str) -> PostgresDatabase:
        try:
            pool = await asyncpg.create_pool(
                url, min_size=1, max_size=POOL_SIZE,
                server_settings={"application_name": "videoassist"})
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise DatabaseError(f"cannot connect to {redacted(url)}: {exc}") from None
        return cls(pool, url)

    async def close(self) -> None:
        await self._pool.close()

    def describe(self) -> str:
        return self._where

    async def schema_version(self) -> int:
        async with self._pool.acquire() as conn:
            return await self._version(conn)

    @staticmethod
    async def _version(conn: asyncpg.Connection) -> int:
        if await conn.fetchval("SELECT to_regclass('schema_migrations')") is None:
            return 0
        return int(await conn.fetchval("SELECT coalesce(max(version), 0) FROM schema_migrations"))

    async def migrate(self) -> list[str]:
        applied = []
        async with self._pool.acquire() as conn:
            # One process migrates at a time; those waiting then find the work done.
            await conn.execute("SELECT pg_advisory_lock($1)", _MIGRATION_LOCK)
            try:
                await conn.execute(SCHEMA_TABLE)
                current = await self._version(conn)
                for number, name, sql in migrations(POSTGRESQL):
                    if number <= current:
                        continue
                    async with conn.transaction():
                        with _translated():
                            await conn.execute(sql)  # no arguments: several statements
                        if number in PYTHON_STEPS:
                            await PYTHON_STEPS[number](PostgresTransaction(conn))
                        await conn.execute(
                            "INSERT INTO schema_migrations (version, name, applied_at)"
                            " VALUES ($1, $2, $3)", number, name, time.time())
                    logger.info("applied migration %s", name)
                    applied.append(name)
            finally:
                await conn.execute("SELECT pg_advisory_unlock($1)", _MIGRATION_LOCK)
        return applied

    async def checkpoint(self) -> None:
        """Nothing to do here: PostgreSQL's VACUUM reclaims deleted rows' space in its
        own time (docs/security.md says what that means for erasure)."""

    async def data_version(self) -> int:
        """A new number every time: whether another process committed is not known
        here without LISTEN/NOTIFY, so a caller waiting for one looks again each time."""
        return next(self._versions)

    async def listen(self, on_change: ChangeCallback, application_name: str,
                     url: str | None = None) -> PostgresListening:
        target = url or self._url

        def notified(_conn: object, _pid: int, _channel: str, payload: str) -> None:
            table, _, row = payload.partition(":")
            if row.isdigit():
                on_change(table, int(row))
            else:
                logger.warning("a change notification that is not 'table:id': %r",
                               payload[:100])

        try:
            conn = await asyncpg.connect(
                target, timeout=LISTEN_TIMEOUT_S,
                server_settings={"application_name": application_name[:63]})
        except (OSError, TimeoutError, asyncpg.PostgresError,
                asyncpg.InterfaceError) as exc:
            raise DatabaseError(f"cannot connect to {redacted(target)}: {exc}") from None
        listening = PostgresListening(conn)
        try:
            await conn.add_listener(CHANGES_CHANNEL, notified)
        except BaseException:
            await listening.close()
            raise
        return listening

    async def fetchall(self, sql: str, params: Iterable[Any] = ()) -> list[Row]:
        with _translated():
            return list(await self._pool.fetch(numbered(sql), *params))

    async def execute(self, sql: str, params: Iterable[Any] = ()) -> int:
        with _translated():
            return _rowcount(await self._pool.execute(numbered(sql), *params))

    async def write_returning_all(self, sql: str, params: Iterable[Any] = ()) -> list[Row]:
        return await self.fetchall(sql, params)

    @asynccontextmanager
    async def session_lock(self, name: str, holder: str) -> AsyncIterator[SessionLock | None]:
        try:
            conn = await asyncpg.connect(self._url,
                                         server_settings={"application_name": holder[:63]})
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise DatabaseError(f"cannot connect to {self._where}: {exc}") from None
        try:
            held = await conn.fetchval("SELECT pg_try_advisory_lock($1)", advisory_key(name))
            yield _SessionLock(conn) if held else None
        finally:
            # Ending the session releases the lock, whatever state the connection is in.
            conn.terminate()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Transaction]:
        async with self._pool.acquire() as conn:
            with _translated():  # a deferred constraint refuses at COMMIT
                async with conn.transaction():
                    yield PostgresTransaction(conn)


class PostgresListening(Listening):
    """One connection LISTENing on ``CHANGES_CHANNEL``."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn
        self._terminated = asyncio.Event()
        conn.add_termination_listener(lambda _conn: self._terminated.set())

    async def lost(self) -> str:
        while True:
            try:
                async with asyncio.timeout(LISTEN_CHECK_S):
                    await self._terminated.wait()
                return "the connection was closed"
            except TimeoutError:
                pass
            try:
                await self._conn.fetchval("SELECT 1", timeout=LISTEN_TIMEOUT_S)
            except (OSError, TimeoutError, asyncpg.PostgresError,
                    asyncpg.InterfaceError) as exc:
                self._conn.terminate()
                return f"it did not answer ({type(exc).__name__})"

    async def close(self) -> None:
        if not self._conn.is_closed():
            try:
                await self._conn.close(timeout=LISTEN_TIMEOUT_S)
            except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
                self._conn.terminate()


class PostgresTransaction(Transaction):
    dialect = POSTGRESQL

    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn

    async def execute(self, sql: str, params: Iterable[Any] = ()) -> int:
        with _translated():
            return _rowcount(await self._conn.execute(numbered(sql), *params))

    async def fetchall(self, sql: str, params: Iterable[Any] = ()) -> list[Row]:
        with _translated():
            return list(await self._conn.fetch(numbered(sql), *params))

    async def lock(self, name: str, key: int = 0) -> None:
        await self._conn.execute("SELECT pg_advisory_xact_lock($1)", advisory_key(name, key))


class _SessionLock(SessionLock):
    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn

    async def lost(self) -> None:
        closed = asyncio.Event()
        self._conn.add_termination_listener(lambda _: closed.set())
        while not self._conn.is_closed():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(LOCK_PING_S):
                    await closed.wait()
                    return
            try:
                async with asyncio.timeout(LOCK_ANSWER_S):
                    await self._conn.fetchval("SELECT 1")
            except Exception as exc:  # the server ended the session, or the network is down
                logger.warning("a session lock's connection is lost: %s",
                               type(exc).__name__)
                return
