"""The SQLite store: migrations, pragmas, file modes, atomic redeem."""

from __future__ import annotations

import asyncio
import hashlib
import stat
from pathlib import Path

import pytest

from videoassist.errors import Gone
from videoassist.storage import Store
from videoassist.storage.db import _split_statements, migrations


async def test_migrations_apply_once_and_set_pragmas(tmp_path: Path) -> None:
    path = tmp_path / "data" / "db.sqlite3"
    store = await Store.open(path)
    try:
        assert await store.db.schema_version() == len(migrations())
        assert await store.db.migrate() == []
        mode = await store.db.fetchone("PRAGMA journal_mode")
        fk = await store.db.fetchone("PRAGMA foreign_keys")
        assert (mode[0], fk[0]) == ("wal", 1)  # type: ignore[index]
        tables = {r[0] for r in await store.db.fetchall(
            "SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert {"users", "jobs", "invites", "calls", "participants", "events", "messages",
                "audit_log", "api_keys", "webhook_deliveries", "webhook_attempts"} <= tables
    finally:
        await store.close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def test_statement_splitting_respects_comments_and_strings() -> None:
    sql = "CREATE TABLE a (x TEXT); -- a; comment\nINSERT INTO a VALUES ('b;c');\n-- end\n"
    assert _split_statements(sql) == [
        "CREATE TABLE a (x TEXT); -- a; comment", "INSERT INTO a VALUES ('b;c');"]


async def test_redeem_is_atomic_under_concurrency(tmp_path: Path) -> None:
    now = [1000.0]
    store = await Store.open(tmp_path / "db.sqlite3", clock=lambda: now[0])
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


async def test_foreign_keys_are_enforced(tmp_path: Path) -> None:
    import sqlite3

    store = await Store.open(tmp_path / "db.sqlite3")
    try:
        with pytest.raises(sqlite3.IntegrityError):
            await store.db.execute(
                "INSERT INTO calls (job_id, started_at) VALUES (4242, 0)")
    finally:
        await store.close()
