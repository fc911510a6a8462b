"""Failed sign-ins, per username and per client address.

An attempt counts as a failure from its start (``begin``), before the password is
checked, and stops counting only when it was right (``succeed``): checking the limit
and counting the attempt are one write transaction, so guesses sent together, to one
process or several, get no further than the limit between them.

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

    async def begin(self, limits: dict[str, tuple[str, int]], window_s: float
                    ) -> tuple[float, list[int]]:
        """Start a sign-in attempt limited by ``limits`` (``scope: (key, limit)``):
        if no key has its limit of failures within ``window_s``, count the attempt as a
        failure of each now and return (0, the rows counting it); otherwise count
        nothing and return the seconds until it may try again, and no rows. One
        transaction: no other attempt, in any process, is counted in between."""
        now = self._clock()
        async with self._db.transaction() as tx:
            await tx.execute("DELETE FROM signin_failures WHERE failed_at <= ?",
                             (now - window_s,))
            wait = 0.0
            for scope, (key, limit) in limits.items():
                assert scope in SCOPES
                # The limit-th newest failure in the window: when it leaves, fewer are.
                row = await tx.fetchone(
                    "SELECT failed_at FROM signin_failures WHERE scope = ? AND key = ?"
                    " AND failed_at > ? ORDER BY failed_at DESC LIMIT 1 OFFSET ?",
                    (scope, key, now - window_s, limit - 1))
                if row is not None:
                    wait = max(wait, row[0] + window_s - now, 0.001)
            if wait > 0:
                return wait, []
            ids = []
            for scope, (key, _) in limits.items():
                _, row_id = await tx.execute(
                    "INSERT INTO signin_failures (scope, key, failed_at) VALUES (?, ?, ?)",
                    (scope, key, now))
                assert row_id is not None
                ids.append(row_id)
            return 0.0, ids

    async def succeed(self, user_key: str, attempt: list[int]) -> None:
        """The attempt whose rows are ``attempt`` was right: forget it, and every
        failure of the username ``user_key``."""
        async with self._db.transaction() as tx:
            await tx.execute("DELETE FROM signin_failures WHERE scope = 'user' AND key = ?",
                             (user_key,))
            for row_id in attempt:
                await tx.execute("DELETE FROM signin_failures WHERE id = ?", (row_id,))
