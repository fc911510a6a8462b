"""The store's database, SQLite and PostgreSQL: migrations, constraints and the
project's errors for them, placeholders, SQLite's pragmas and file modes, atomic
redeem, one call in progress per job whoever starts it, and PostgreSQL migrated by
several processes at once."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import sqlite3
import stat
import sys
from pathlib import Path

import pytest

from tests.support.databases import Target, raw_fetchall
from videoassist.errors import Gone
from videoassist.storage import Store
from videoassist.storage import sqlite as sqlite_module
from videoassist.storage.db import DIALECTS, POSTGRESQL, SQLITE, is_postgresql_url, migrations
from videoassist.storage.errors import ForeignKeyViolation, UniqueViolation
from videoassist.storage.postgres import numbered, redacted
from videoassist.storage.sqlite import split_statements

TABLES = {"users", "jobs", "invites", "calls", "participants", "events", "messages",
          "audit_log", "api_keys", "webhook_deliveries", "webhook_attempts", "nodes",
          "snapshots", "frames", "job_keys", "notes", "retired_ids", "signin_failures",
          "snapshots_in_progress"}


def tables_query(target: Target) -> str:
    return ("SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
            if is_postgresql_url(target) else "SELECT name FROM sqlite_master WHERE type = 'table'")


async def test_migrations_apply_once(empty_database: Target) -> None:
    database = empty_database
    store = await Store.open(database)
    try:
        assert await store.db.schema_version() == len(migrations(store.db.dialect))
        assert await store.db.migrate() == []
        tables = {r[0] for r in await store.db.fetchall(tables_query(database))}
        assert tables - {"schema_migrations", "sqlite_sequence"} == TABLES
    finally:
        await store.close()


def test_both_dialects_ship_the_same_migrations() -> None:
    """Version N of the schema is the same tables on either database; SQLite's files are
    the ones databases made before PostgreSQL was supported were migrated with."""
    sqlite, postgresql = (migrations(d) for d in DIALECTS)
    assert [name for _, name, _ in sqlite] == [name for _, name, _ in postgresql]


async def test_sqlite_pragmas_and_file_modes(tmp_path: Path) -> None:
    path = tmp_path / "data" / "db.sqlite3"
    store = await Store.open(path)
    try:
        assert store.db.dialect is SQLITE
        mode = await store.db.fetchone("PRAGMA journal_mode")
        fk = await store.db.fetchone("PRAGMA foreign_keys")
        assert (mode[0], fk[0]) == ("wal", 1)  # type: ignore[index]
    finally:
        await store.close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def test_statement_splitting_respects_comments_and_strings() -> None:
    sql = "CREATE TABLE a (x TEXT); -- a; comment\nINSERT INTO a VALUES ('b;c');\n-- end\n"
    assert split_statements(sql) == [
        "CREATE TABLE a (x TEXT); -- a; comment", "INSERT INTO a VALUES ('b;c');"]


def test_placeholders_become_numbered_outside_literals_names_and_comments() -> None:
    assert numbered("SELECT ?, ? FROM t WHERE a = ?") == "SELECT $1, $2 FROM t WHERE a = $3"
    assert numbered("SELECT ?1, ?2, ?1") == "SELECT $1, $2, $1"
    assert numbered("SELECT ?2, ?") == "SELECT $2, $3"  # as SQLite counts them
    assert numbered("SELECT 'what?', \"a?\", ? -- why?\n, ? /* ? */, 'it''s ?', ?") == (
        "SELECT 'what?', \"a?\", $1 -- why?\n, $2 /* ? */, 'it''s ?', $3")
    assert numbered("SELECT a - b, c / d FROM t WHERE e LIKE ? ESCAPE '\\'") == (
        "SELECT a - b, c / d FROM t WHERE e LIKE $1 ESCAPE '\\'")
    with pytest.raises(ValueError, match="unterminated"):
        numbered("SELECT 'oops")


async def test_a_literal_with_a_question_mark_is_left_alone(database: Target) -> None:
    store = await Store.open(database)
    try:
        row = await store.db.fetchone("SELECT 'why?' || ?, CAST(? AS INTEGER) -- or not?",
                                      ("a", 2))
        assert tuple(row) == ("why?a", 2)  # type: ignore[arg-type]
    finally:
        await store.close()


def test_a_postgresql_url_is_shown_without_its_password() -> None:
    assert redacted("postgresql://va:hunter2@db.example:5433/videoassist?sslmode=require") == (
        "postgresql://va@db.example:5433/videoassist")


async def test_redeem_is_atomic_under_concurrency(database: Target) -> None:
    now = [1000.0]
    store = await Store.open(database, clock=lambda: now[0])
    try:
        job = await store.jobs.create("Leak", None, None)
        token_hash = hashlib.sha256(b"t").digest()
        await store.invites.create_join(token_hash, job.id, "customer", 60, None)
        results = await asyncio.gather(*(store.invites.redeem(token_hash, "join")
                                         for _ in range(20)), return_exceptions=True)
        assert sum(not isinstance(r, Exception) for r in results) == 1
        assert all(isinstance(r, Gone) for r in results if isinstance(r, Exception))
        other = hashlib.sha256(b"u").digest()
        await store.invites.create_join(other, job.id, "customer", 60, None)
        now[0] += 60
        with pytest.raises(Gone):
            await store.invites.redeem(other, "join")
    finally:
        await store.close()


async def test_constraints_raise_the_projects_errors(database: Target) -> None:
    store = await Store.open(database)
    try:
        with pytest.raises(ForeignKeyViolation):
            await store.db.execute("INSERT INTO calls (job_id, started_at) VALUES (4242, 0)")
        job = await store.jobs.create("Leak", None, None)
        await store.calls.start(job.id)
        with pytest.raises(UniqueViolation):  # calls_live_job
            await store.calls.start(job.id)
    finally:
        await store.close()


async def test_the_unique_index_keeps_one_call_in_progress_per_job(database: Target) -> None:
    """Two connections start a call of the same jobs at once, without the placement
    lock (``Calls.start``): for each job one call starts, the other is refused."""
    first, second = await Store.open(database), await Store.open(database)
    try:
        jobs = [(await first.jobs.create(f"Job {n}", None, None)).id for n in range(10)]
        results = await asyncio.gather(
            *(store.calls.start(job) for job in jobs for store in (first, second)),
            return_exceptions=True)
        for job, pair in zip(jobs, zip(results[::2], results[1::2], strict=True), strict=True):
            started = [r for r in pair if isinstance(r, int)]
            assert len(started) == 1, pair
            assert all(isinstance(r, UniqueViolation) for r in pair if not isinstance(r, int))
            assert await second.calls.in_progress(job) == (started[0], None)
    finally:
        await first.close()
        await second.close()


async def test_usernames_are_unique_ignoring_case(database: Target) -> None:
    store = await Store.open(database)
    try:
        ann = await store.users.add("Ann", "expert")
        assert await store.users.find("ANN") == ann
        with pytest.raises(Exception, match="already exists"):
            await store.users.add("ann", "admin")
    finally:
        await store.close()


MIGRATE = """
import asyncio, sys
from videoassist.storage import Store

async def main():
    store = await Store.open(sys.argv[1], migrate=False)
    try:
        print("ready", flush=True)
        sys.stdin.readline()  # go
        for name in await store.db.migrate():
            print(name, flush=True)
    finally:
        await store.close()

asyncio.run(main())
"""


async def test_processes_migrating_an_empty_postgresql_database_apply_each_once(
        postgresql_database: str) -> None:
    database = postgresql_database
    processes = [await asyncio.create_subprocess_exec(
        sys.executable, "-c", MIGRATE, str(database), stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE) for _ in range(3)]
    for p in processes:
        assert p.stdout is not None
        assert await asyncio.wait_for(p.stdout.readline(), 30) == b"ready\n"
    for p in processes:  # all at once
        assert p.stdin is not None
        p.stdin.write(b"go\n")
        await p.stdin.drain()
    outputs = [await asyncio.wait_for(p.communicate(), 60) for p in processes]
    assert [p.returncode for p in processes] == [0, 0, 0], outputs
    applied = [line for out, _ in outputs for line in out.decode().split()]
    names = [name for _, name, _ in migrations(POSTGRESQL)]
    assert sorted(applied) == names  # each once, by whichever process came first
    rows = await raw_fetchall(database, "SELECT version, name FROM schema_migrations"
                                        " ORDER BY version")
    assert rows == [(n, name) for n, name, _ in migrations(POSTGRESQL)]


async def test_a_statement_held_up_by_another_process_is_logged_with_its_first_words(
        tmp_path: Path, caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Another connection (another worker, the CLI) holds SQLite's write lock: the
    store's write waits for it and is logged, with how long and its first words,
    never a parameter; the read queued behind it, quick itself, is not."""
    monkeypatch.setattr(sqlite_module, "SLOW_S", 0.2)
    caplog.set_level(logging.WARNING, logger="videoassist.storage.sqlite")
    path = tmp_path / "db.sqlite3"
    store = await Store.open(path)
    caplog.clear()  # the migrations' transactions may be slow on a busy machine
    other = sqlite3.connect(path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        secret = "CANARY5d1e not to be logged"
        statements = asyncio.gather(
            store.db.execute("UPDATE users SET username = ? WHERE id = -1", (secret,)),
            store.db.fetchall("SELECT id FROM users WHERE username = ?", (secret,)))
        await asyncio.sleep(0.6)  # the update has its turn, and waits for SQLite's lock
        other.execute("ROLLBACK")
        await statements
    finally:
        other.close()
        await store.close()
    lines = [r.getMessage() for r in caplog.records
             if r.name == "videoassist.storage.sqlite" and "UPDATE users" in r.getMessage()]
    assert len(lines) == 1 and "CANARY" not in caplog.text, caplog.text
    took, what, behind = re.fullmatch(
        r"the database took ([0-9.]+) s for (.*) \(after ([0-9.]+) s behind this "
        r"process's earlier statements\)", lines[0]).groups()  # type: ignore[union-attr]
    assert what == "UPDATE users SET username"
    assert float(took) >= 0.2 and float(behind) < 0.2  # waited for the other process
