"""A database file as a whole: copied while the server writes to it (SQLite's online
backup API), checked, and whether another process has it open.

Plain ``sqlite3`` and blocking: these run from CLI commands, never in the server.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
from pathlib import Path

from videoassist.storage.chain import CHAIN_SCHEMA_VERSION, Verdict, columns_at, verify_rows

# SQLite's unix VFS: every connection to a WAL database holds a shared POSIX lock on
# this byte of the "-shm" file (the "DMS" slot) for as long as it is open
# (sqlite.org/walformat.html, "the DMS lock").
_SHM_DMS_BYTE = 128


def copy_database(source: Path, target: Path) -> int:
    """Copy ``source`` to a new file ``target`` (mode 0600) as of one moment, while
    other processes go on writing; return the copy's schema version.

    The copy is taken in one step (one read transaction), so it is consistent; it is
    left in rollback-journal mode, one self-contained file, and checked for integrity.
    """
    os.close(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600))
    src = sqlite3.connect(source, timeout=10)
    try:
        dst = sqlite3.connect(target)
        try:
            src.backup(dst)
            dst.execute("PRAGMA journal_mode = DELETE")
            (check,) = dst.execute("PRAGMA integrity_check").fetchone()
            if check != "ok":
                raise sqlite3.DatabaseError(f"the copy fails its integrity check: {check}")
            (version,) = dst.execute("PRAGMA user_version").fetchone()
        finally:
            dst.close()
    finally:
        src.close()
    return int(version)


def schema_version(path: Path) -> int:
    """The schema version of a database file, read without changing anything."""
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        (version,) = conn.execute("PRAGMA user_version").fetchone()
        return int(version)
    finally:
        conn.close()


def verify_audit(path: Path) -> Verdict | None:
    """The audit chain of a database file that no one else is using (a copy); None if
    its schema predates the chain."""
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        (version,) = conn.execute("PRAGMA user_version").fetchone()
        if version < CHAIN_SCHEMA_VERSION:
            return None
        return verify_rows(conn.execute(
            f"SELECT {columns_at(version)} FROM audit_log ORDER BY id"))
    finally:
        conn.close()


def in_use(path: Path) -> bool:
    """Whether another process has the WAL database at ``path`` open (a server, a CLI
    command). This process must not have it open itself: POSIX locks are per process.

    Asks for an exclusive lock on the DMS byte without waiting, and lets go at once.
    """
    shm = path.with_name(path.name + "-shm")
    try:
        fd = os.open(shm, os.O_RDWR | os.O_NOFOLLOW)
    except FileNotFoundError:
        return False  # SQLite removes it when the last connection closes
    try:
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, _SHM_DMS_BYTE)
        except OSError:
            return True
        with contextlib.suppress(OSError):
            fcntl.lockf(fd, fcntl.LOCK_UN, 1, _SHM_DMS_BYTE)
        return False
    finally:
        os.close(fd)


def to_rollback_journal(path: Path) -> None:
    """Fold a database's WAL into it and leave it one self-contained file (a server
    turns WAL on again when it opens it)."""
    conn = sqlite3.connect(path)
    try:
        conn.execute("PRAGMA journal_mode = DELETE")
    finally:
        conn.close()
