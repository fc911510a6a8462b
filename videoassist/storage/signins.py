"""Failed sign-ins, per username and per client address.

Kept in the database, not a process's memory: every server process (one per core,
on every node) counts the same failures, so a password guesser gains nothing by
spreading attempts over them, nor by waiting for a restart. A row lives as long as the
window it counts in; ``prune`` (a periodic duty) deletes those past it.

A sign-in is counted as a failure before its password is checked (``reserve``): the
check of the limits and the count are one transaction, holding a lock per username
and per client address, so that guesses sent at once to several processes cannot all
pass the check before any is counted. A sign-in that succeeds takes its count back
(``forget``).
"""

from __future__ import annotations

from collections.abc import Callable

from videoassist.storage.db import Database

SCOPES = ("user", "client")
# The limit-th newest failure of a key within the window: when it leaves, fewer are left.
_LIMIT_TH = ("SELECT failed_at FROM signin_failures WHERE scope = ? AND key = ?"
             " AND failed_at > ? ORDER BY failed_at DESC LIMIT 1 OFFSET ?")


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
        row = await self._db.fetchone(_LIMIT_TH, (scope, key, now - window_s, limit - 1))
        return None if row is None else max(0.0, row[0] + window_s - now)

    async def reserve(self, keys: dict[str, tuple[str, int]], window_s: float
                      ) -> tuple[float, list[int]]:
        """For a sign-in about to be checked, ``keys`` being ``{scope: (key, limit)}``:
        if a key has ``limit`` failures within ``window_s`` already, the seconds until
        it may try again, and nothing counted; else 0 and the ids of the failures
        counted now, one per key (``forget`` them if the sign-in succeeds)."""
        now = self._clock()
        async with self._db.transaction() as tx:
            for scope, (key, _) in sorted(keys.items()):  # one order: no deadlock
                assert scope in SCOPES
                await tx.lock(f"signin:{scope}:{key}")
            wait = 0.0
            for scope, (key, limit) in keys.items():
                row = await tx.fetchone(_LIMIT_TH, (scope, key, now - window_s, limit - 1))
                if row is not None:
                    wait = max(wait, row[0] + window_s - now)
            if wait > 0:
                return wait, []
            ids = [await tx.insert("INSERT INTO signin_failures (scope, key, failed_at)"
                                   " VALUES (?, ?, ?) RETURNING id", (scope, key, now))
                   for scope, (key, _) in keys.items()]
        return 0.0, ids

    async def forget(self, ids: list[int]) -> None:
        """Take back failures counted by ``reserve``: the sign-in succeeded."""
        if ids:
            marks = ", ".join("?" * len(ids))
            await self._db.execute(f"DELETE FROM signin_failures WHERE id IN ({marks})", ids)

    async def prune(self, window_s: float) -> int:
        """Forget the failures past the window (a periodic duty)."""
        return await self._db.execute("DELETE FROM signin_failures WHERE failed_at <= ?",
                                      (self._clock() - window_s,))

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
