"""Staff accounts."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

import aiosqlite

from videoassist.errors import Conflict, NotFound
from videoassist.storage.db import Database
from videoassist.storage.records import User

_COLUMNS = "id, username, role, password_hash IS NOT NULL, created_at, disabled_at"


def _user(row: aiosqlite.Row) -> User:
    return User(row[0], row[1], row[2], bool(row[3]), row[4], row[5])


class Users:
    def __init__(self, db: Database, clock: Callable[[], float]) -> None:
        self._db = db
        self._clock = clock

    async def add(self, username: str, role: str, password_hash: str | None = None) -> User:
        try:
            _, user_id = await self._db.execute(
                "INSERT INTO users (username, role, password_hash, created_at) VALUES (?, ?, ?, ?)",
                (username, role, password_hash, self._clock()),
            )
        except sqlite3.IntegrityError:
            raise Conflict(f"A user named {username!r} already exists.") from None
        assert user_id is not None
        return await self.get(user_id)

    async def get(self, user_id: int) -> User:
        row = await self._db.fetchone(f"SELECT {_COLUMNS} FROM users WHERE id = ?", (user_id,))
        if row is None:
            raise NotFound("No such user.")
        return _user(row)

    async def find(self, username: str) -> User | None:
        row = await self._db.fetchone(
            f"SELECT {_COLUMNS} FROM users WHERE username = ?", (username,)
        )
        return _user(row) if row else None

    async def password_hash(self, user_id: int) -> str | None:
        row = await self._db.fetchone("SELECT password_hash FROM users WHERE id = ?", (user_id,))
        return row[0] if row else None

    async def set_password_hash(self, user_id: int, password_hash: str) -> None:
        count, _ = await self._db.execute(
            "UPDATE users SET password_hash = ? WHERE id = ?", (password_hash, user_id)
        )
        if count != 1:
            raise NotFound("No such user.")

    async def set_disabled(self, user_id: int, disabled: bool) -> User:
        count, _ = await self._db.execute(
            "UPDATE users SET disabled_at = ? WHERE id = ?",
            (self._clock() if disabled else None, user_id),
        )
        if count != 1:
            raise NotFound("No such user.")
        return await self.get(user_id)

    async def list(self) -> list[User]:
        rows = await self._db.fetchall(f"SELECT {_COLUMNS} FROM users ORDER BY username")
        return [_user(r) for r in rows]

    async def active_among(self, user_ids: set[int]) -> set[int]:
        """Which of these users still exist and are not disabled."""
        if not user_ids:
            return set()
        marks = ",".join("?" * len(user_ids))
        rows = await self._db.fetchall(
            f"SELECT id FROM users WHERE disabled_at IS NULL AND id IN ({marks})",
            sorted(user_ids),
        )
        return {r[0] for r in rows}

    async def has_usable_admin(self) -> bool:
        row = await self._db.fetchone(
            "SELECT 1 FROM users WHERE role = 'admin' AND disabled_at IS NULL"
            " AND password_hash IS NOT NULL LIMIT 1"
        )
        return row is not None
