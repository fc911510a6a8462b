"""The two databases the store runs on, for tests that run on both: a SQLite file, or a
database of a throwaway PostgreSQL cluster.

``Cluster`` is one PostgreSQL server for the whole test session, the throwaway server
of ``videoassist.storage.throwaway`` (which the benchmark's fleet starts too); stopped
and removed at the end. Each test gets a fresh database of its own
(``create_database``), a file copy of an empty one or of one ``videoassist migrate``
migrated once for the session. The raw helpers read and write a
database as someone holding it would, around the store: plain ``sqlite3``, or asyncpg.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
import os
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import asyncpg

from tests.support.process import clean_env
from videoassist.config import Secret
from videoassist.storage.db import is_postgresql_url
from videoassist.storage.postgres import numbered
from videoassist.storage.throwaway import ThrowawayPostgres

Target = Path | str  # a SQLite file, or a postgresql:// URL (what Store.open takes)


async def _new_lock() -> asyncio.Lock:
    return asyncio.Lock()


class _Admin:
    """A connection on an event loop of its own thread: usable from plain code and from
    inside a test's running loop alike (which it blocks while a statement runs, as a
    subprocess would)."""

    def __init__(self, url: str) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True,
                                        name="postgresql-admin")
        self._thread.start()
        self._conn = self._wait(asyncpg.connect(url))
        self._lock = self._wait(_new_lock())

    def _wait(self, work: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(work, self._loop).result(timeout=120)

    def submit(self, statement: str) -> concurrent.futures.Future[str]:
        """Run a statement in the background, after those submitted before it."""
        return asyncio.run_coroutine_threadsafe(self._run(statement), self._loop)

    def run(self, statement: str) -> str:
        return self.submit(statement).result(timeout=120)

    async def _run(self, statement: str) -> str:
        async with self._lock:  # one statement at a time on the connection
            if statement.lstrip().upper().startswith("SELECT"):
                rows = await self._conn.fetch(statement)
                return "".join("|".join("" if v is None else str(v) for v in row) + "\n"
                               for row in rows)
            await self._conn.execute(statement)  # simple protocol: CREATE DATABASE
            return ""

    def close(self) -> None:
        try:
            self._wait(self._conn.close())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._loop.close()


class Cluster(ThrowawayPostgres):
    """A PostgreSQL server of the tests' own, with a database per test."""

    def __init__(self, root: Path, port: int, bin_dir: Path) -> None:
        super().__init__(root, port, bin_dir)
        self._names = itertools.count(1)
        self._templates: set[str] = set()
        self._admin: _Admin | None = None
        self._spare: tuple[str, concurrent.futures.Future[str]] | None = None
        self._drops: list[concurrent.futures.Future[str]] = []

    def sql(self, statement: str) -> str:
        """Run one statement in the ``postgres`` database as the superuser; its rows as
        ``psql -At`` prints them. Through one connection kept open (a psql process per
        statement takes a quarter of a second on this machine)."""
        return self._connection().run(statement)

    def _connection(self) -> _Admin:
        if self._admin is None:
            self._admin = _Admin(self.url("postgres"))
        return self._admin

    def create_database(self, migrated: bool = False, owner: str | None = None) -> str:
        """A new database, empty or with every migration applied; its URL (that of
        ``owner``, a role made by ``create_role``, when given: the database is its).
        A migrated one of the superuser's was made in the background while the previous
        test ran (a copy takes a third of a second here), and the next is started."""
        if migrated and owner is None:
            if self._spare is None:
                self._spare = self._copy("migrated")
            name, made = self._spare
            made.result(timeout=120)
            self._spare = self._copy("migrated")
            return self.url(name)
        name, made = self._copy("migrated" if migrated else "empty", owner)
        made.result(timeout=120)
        url = self.url(name)
        return url if owner is None else url.replace("//postgres@", f"//{owner}@", 1)

    def _copy(self, kind: str, owner: str | None = None
              ) -> tuple[str, concurrent.futures.Future[str]]:
        template = self._template(kind)
        name = f"test_{os.getpid()}_{next(self._names)}"
        # FILE_COPY: a copy of the files, fast without fsync (WAL_LOG logs every page).
        return name, self._connection().submit(
            f"CREATE DATABASE {name} TEMPLATE {template} STRATEGY FILE_COPY"
            + (f" OWNER {owner}" if owner else ""))

    def create_role(self, name: str) -> None:
        """A login role that is no superuser (what a deployment's owner of its database
        is), made once per session."""
        if not self.sql(f"SELECT 1 FROM pg_roles WHERE rolname = '{name}'").strip():
            self.sql(f"CREATE ROLE {name} LOGIN")

    def program(self, name: str) -> Path:
        """One of the cluster's programs (``pg_dump``, ``pg_restore``, ``psql``)."""
        return self._bin / name

    def _template(self, kind: str) -> str:
        name = f"videoassist_{kind}"
        if name not in self._templates:
            self.sql(f"CREATE DATABASE {name} TEMPLATE template0 STRATEGY FILE_COPY")
            if kind == "migrated":
                subprocess.run(
                    [sys.executable, "-m", "videoassist", "migrate", "--data-dir",
                     str(self.root / "data-dir")], check=True, capture_output=True,
                    timeout=60, env=clean_env(VIDEOASSIST_DATABASE_URL=self.url(name)))
            self._templates.add(name)
        return name

    def drop_database(self, url: str) -> None:
        """Drop a database, in the background (the next test need not wait for it)."""
        name = url.rsplit("/", 1)[1]
        self._drops.append(self._connection().submit(
            f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        self._drops = [f for f in self._drops if not f.done() or f.result() is None]

    def stop(self) -> None:
        pending = self._drops + ([self._spare[1]] if self._spare is not None else [])
        concurrent.futures.wait(pending, timeout=120)
        self._spare, self._drops = None, []
        if self._admin is not None:
            self._admin.close()
            self._admin = None
        super().stop()


class ServerDatabases:
    """Where the tests' servers keep their data: SQLite in each data directory (no
    cluster), or a throwaway database of the cluster per data directory, migrated, the
    same for every server started on that directory (a restart, several workers)."""

    def __init__(self, cluster: Cluster | None) -> None:
        self._cluster = cluster
        self._urls: dict[Path, str] = {}

    @property
    def postgresql(self) -> bool:
        return self._cluster is not None

    def url(self, data_dir: Path) -> str:
        """The PostgreSQL database of a data directory, made when first asked for."""
        assert self._cluster is not None
        data_dir = data_dir.resolve()
        if data_dir not in self._urls:
            self._urls[data_dir] = self._cluster.create_database(migrated=True)
        return self._urls[data_dir]

    def settings(self, values: dict[str, Any]) -> dict[str, Any]:
        """A server's settings with ``database_url`` added on PostgreSQL (unless given)."""
        if self._cluster is None or "database_url" in values:
            return values
        return {**values, "database_url": Secret(self.url(Path(values["data_dir"])))}

    def drop(self) -> None:
        if self._cluster is not None:
            for url in self._urls.values():
                self._cluster.drop_database(url)
        self._urls.clear()


# -- around the store ---------------------------------------------------------------


async def raw_execute(target: Target, *statements: str) -> None:
    """Run statements (no parameters) in one transaction, as whoever holds the database
    can: plain sqlite3 on the file, or a PostgreSQL connection of its owner."""
    if is_postgresql_url(target):
        conn = await asyncpg.connect(str(target))
        try:
            async with conn.transaction():
                for statement in statements:
                    await conn.execute(statement)
        finally:
            await conn.close()
        return
    sconn = sqlite3.connect(target)
    try:
        for statement in statements:
            sconn.execute(statement)
        sconn.commit()
    finally:
        sconn.close()


async def raw_fetchall(target: Target, sql: str, params: tuple[Any, ...] = ()
                       ) -> list[tuple[Any, ...]]:
    """A query's rows as tuples, read around the store (``?`` placeholders)."""
    if is_postgresql_url(target):
        conn = await asyncpg.connect(str(target))
        try:
            return [tuple(r) for r in await conn.fetch(numbered(sql), *params)]
        finally:
            await conn.close()
    sconn = sqlite3.connect(f"file:{target}?mode=ro", uri=True)
    try:
        return list(sconn.execute(sql, params).fetchall())
    finally:
        sconn.close()


def drop_trigger(target: Target, name: str) -> str:
    """The statement that drops one of the audit log's triggers."""
    return f"DROP TRIGGER {name} ON audit_log" if is_postgresql_url(target) \
        else f"DROP TRIGGER {name}"
