"""Databases as older versions of videoassist left them, written with plain sqlite3."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from videoassist.storage.db import migrations


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
