"""Failed sign-ins, per username and per client address.

Kept in the database, not a process's memory: every server process (one per core)
counts the same failures, so a password guesser gains nothing by spreading attempts
over them, nor by waiting for a restart. A row lives as long as the window it counts
in; each new failure deletes those past it.
"""

from __future__ import annotations

from collections.abc import Callable

from videoassist.storage.db import Database

SCOPES = ("user", "client")


class SignInFailures:
    def __init__(self, db: Database, clock: Callable[[], float]) -> None:
        self._db = db
        self._clock = clock

    async def retry_after(self, scope: str, key: str, limit: int, window_s: float
                          ) -> float | None:
        """Seconds until ``key`` has fewer than ``limit`` failures within ``window_s``
        and may try again; None if it may now."""
        assert scope in SCOPES
        now = self._clock()
        # The limit-th newest failure in the window: when it leaves, fewer are left.
        row = await self._db.fetchone(
            "SELECT failed_at FROM signin_failures WHERE scope = ? AND key = ?"
            " AND failed_at > ? ORDER BY failed_at DESC LIMIT 1 OFFSET ?",
            (scope, key, now - window_s, limit - 1))
        return None if row is None else max(0.0, row[0] + window_s - now)

    async def fail(self, keys: dict[str, str], window_s: float) -> None:
        """Count a failure of each ``scope: key``; forget failures past the window."""
        now = self._clock()
        async with self._db.transaction() as tx:
            await tx.execute("DELETE FROM signin_failures WHERE failed_at <= ?",
                             (now - window_s,))
            for scope, key in keys.items():
                assert scope in SCOPES
                await tx.execute(
                    "INSERT INTO signin_failures (scope, key, failed_at) VALUES (?, ?, ?)",
                    (scope, key, now))

    async def succeed(self, scope: str, key: str) -> None:
        """Forget the failures of ``key`` (it signed in)."""
        await self._db.execute("DELETE FROM signin_failures WHERE scope = ? AND key = ?",
                               (scope, key))
