"""The two databases the store runs on, for tests that run on both: a SQLite file, or a
database of a throwaway PostgreSQL cluster.

``Cluster`` is one PostgreSQL server for the whole test session, the throwaway one the
benchmark's fleet also runs (``videoassist.storage.throwaway``: ``initdb`` in a temporary
directory, on 127.0.0.1 and a free port, without fsync); stopped and removed at the
end. Each test gets
a fresh database of its own (``create_database``), a file copy of an empty one or of
one ``videoassist migrate`` migrated once for the session. The raw helpers read and write a
database as someone holding it would, around the store: plain ``sqlite3``, or asyncpg.
"""

from __future__ import annotations

import itertools
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import asyncpg

from tests.support.process import clean_env
from videoassist.config import Secret
from videoassist.storage.db import is_postgresql_url
from videoassist.storage.postgres import numbered
from videoassist.storage.throwaway import ThrowawayPostgres
from videoassist.storage.throwaway import postgresql_bin as postgresql_bin  # for conftest

Target = Path | str  # a SQLite file, or a postgresql:// URL (what Store.open takes)


class Cluster(ThrowawayPostgres):
    """A PostgreSQL server of the tests' own (``Cluster.start``), with fresh databases."""

    def __init__(self, root: Path, port: int, bin_dir: Path) -> None:
        super().__init__(root, port, bin_dir)
        self._names = itertools.count(1)
        self._templates: set[str] = set()

    def create_database(self, migrated: bool = False) -> str:
        """A new database, empty or with every migration applied; its URL."""
        template = self._template("migrated" if migrated else "empty")
        name = f"test_{os.getpid()}_{next(self._names)}"
        # FILE_COPY: a copy of the files, fast without fsync (WAL_LOG logs every page).
        self.sql(f"CREATE DATABASE {name} TEMPLATE {template} STRATEGY FILE_COPY")
        return self.url(name)

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
        name = url.rsplit("/", 1)[1]
        self.sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


class ServerDatabases:
    """Where the tests' servers keep their data: SQLite in each data directory (no
    cluster), or a throwaway database of the cluster per data directory, migrated, the
    same for every server started on that directory (a restart, several workers)."""

    def __init__(self, cluster: Cluster | None) -> None:
        self._cluster = cluster
        self._urls: dict[Path, str] = {}

    def settings(self, values: dict[str, Any]) -> dict[str, Any]:
        """A server's settings with ``database_url`` added on PostgreSQL (unless given)."""
        if self._cluster is None or "database_url" in values:
            return values
        data_dir = Path(values["data_dir"]).resolve()
        if data_dir not in self._urls:
            self._urls[data_dir] = self._cluster.create_database(migrated=True)
        return {**values, "database_url": Secret(self._urls[data_dir])}

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
