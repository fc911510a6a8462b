"""Databases as older versions of videoassist left them, written with plain sqlite3."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import asyncpg

from videoassist.storage.db import POSTGRESQL, migrations
from videoassist.storage.postgres import SCHEMA_TABLE


def old_database(path: Path, rows: Sequence[tuple[float, str, str, str | None, dict[str, Any]]]
                 ) -> None:
    """A database as videoassist left it before the chain: schema 4, and audit rows
    inserted the way that code inserted them."""
    conn = sqlite3.connect(path)
    try:
        for number, _, sql in migrations():
            if number <= 4:
                conn.executescript(sql)
        conn.execute("PRAGMA user_version = 4")
        for created_at, actor, action, target, detail in rows:
            conn.execute(
                "INSERT INTO audit_log (created_at, actor, action, target, detail)"
                " VALUES (?, ?, ?, ?, ?)",
                (created_at, actor, action, target,
                 json.dumps(detail, separators=(",", ":"), sort_keys=True)))
        conn.commit()
    finally:
        conn.close()


async def old_postgresql_database(
        url: str, rows: Sequence[tuple[float, str, str, str | None, dict[str, Any]]]) -> None:
    """The same on PostgreSQL: schema 4 (its own migrations, recorded as the store
    records them) and audit rows without hashes. No PostgreSQL database was ever at
    schema 4; this is the migration's Python step at work there."""
    conn = await asyncpg.connect(url)
    try:
        async with conn.transaction():
            await conn.execute(SCHEMA_TABLE)
            for number, name, sql in migrations(POSTGRESQL):
                if number <= 4:
                    await conn.execute(sql)
                    await conn.execute("INSERT INTO schema_migrations VALUES ($1, $2, 0)",
                                       number, name)
            for n, (created_at, actor, action, target, detail) in enumerate(rows, 1):
                await conn.execute(
                    "INSERT INTO audit_log (id, created_at, actor, action, target, detail)"
                    " VALUES ($1, $2, $3, $4, $5, $6)",
                    n, created_at, actor, action, target,
                    json.dumps(detail, separators=(",", ":"), sort_keys=True))
    finally:
        await conn.close()
