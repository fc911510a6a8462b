"""How field communication goes, computed in SQL over the job records.

Every figure covers a period ``[since, until)`` of call start times (invites: of their
creation times), in UTC. Definitions, as docs/api.md states them:

- median: the middle value, or the mean of the two middle ones; p95: the nearest-rank
  95th percentile (the smallest value at least 95 % of the values are at or below);
- a call's duration: from its start to its end; calls still in progress are left out;
- invite to join: from a customer's link being made to the customer first joining with
  it, for links made in the period and used;
- redeemed share: links used over links decided (used, withdrawn or expired); links
  still open are left out until they are;
- snapshots: the pictures taken (first versions), per call started in the period;
- first-time fix: calls the expert answered "fixed" over calls answered.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

from videoassist.storage.db import Database

DAY_S = 86400.0
EPOCH = date(1970, 1, 1)
# The UTC day of a call's start, as days since 1970-01-01 (times are never negative).
_DAY_NUMBER = {"sqlite": "CAST(started_at / 86400 AS INTEGER)",
               "postgresql": "CAST(floor(started_at / 86400) AS BIGINT)"}
# Roles that are counted per person: staff who join calls. Technicians who came in by
# a link have no account and are counted together.
PEOPLE_ROLES = ("expert", "admin", "technician")


def _spread(values_sql: str) -> str:
    """SQL giving (count, median, p95) of the column ``v`` of ``values_sql``."""
    return f"""
        WITH d AS ({values_sql}),
        r AS (SELECT v, ROW_NUMBER() OVER (ORDER BY v) AS rn, COUNT(*) OVER () AS n FROM d)
        SELECT (SELECT COUNT(*) FROM d),
               (SELECT AVG(v) FROM r WHERE rn IN ((n + 1) / 2, (n + 2) / 2)),
               (SELECT v FROM r WHERE rn = CASE WHEN n > 1 THEN (95 * n + 99) / 100 ELSE 1 END)
    """


def _spread_dict(row: Any) -> dict[str, Any]:
    return {"count": row[0], "median": row[1], "p95": row[2]}


class Analytics:
    def __init__(self, db: Database, clock: Callable[[], float]) -> None:
        self._db = db
        self._reads = db.long_reads  # off the connection that serves calls
        self._clock = clock

    async def summary(self, since: float, until: float) -> dict[str, Any]:
        """Every figure of the dashboard for ``[since, until)``."""
        period = (since, until)
        return {
            "period": {"since": since, "until": until},
            "calls_per_day": await self.calls_per_day(since, until),
            "calls": await self._calls(period),
            "duration_s": await self._durations(period),
            "invite_to_join_s": await self._invite_to_join(period),
            "invites": await self._invites(period),
            "snapshots": await self._snapshots(period),
            "people": await self._people(period),
            "first_time_fix": await self._first_time_fix(period),
        }

    async def calls_per_day(self, since: float, until: float) -> list[dict[str, Any]]:
        """One row per UTC day of the period, days without calls included: the calls
        counted in one pass over the index on ``started_at``, the empty days filled in
        here (joining each day to the calls read the period's calls once a day)."""
        rows = await self._reads.fetchall(
            f"SELECT {_DAY_NUMBER[self._db.dialect.name]} AS day, COUNT(*) FROM calls"
            " WHERE started_at >= ? AND started_at < ? GROUP BY day",
            (since, until))
        counts = {int(r[0]): int(r[1]) for r in rows}
        first, last = math.floor(since / DAY_S), math.floor((until - 0.001) / DAY_S)
        return [{"day": (EPOCH + timedelta(days=n)).isoformat(), "calls": counts.get(n, 0)}
                for n in range(first, last + 1)]

    async def _calls(self, period: tuple[float, float]) -> dict[str, Any]:
        row = await self._reads.fetchone(
            "SELECT COUNT(*), COUNT(ended_at) FROM calls WHERE started_at >= ? AND started_at < ?",
            period,
        )
        assert row is not None
        return {"total": row[0], "ended": row[1]}

    async def _durations(self, period: tuple[float, float]) -> dict[str, Any]:
        row = await self._reads.fetchone(_spread(
            "SELECT ended_at - started_at AS v FROM calls"
            " WHERE started_at >= ? AND started_at < ? AND ended_at IS NOT NULL"
        ), period)
        return _spread_dict(row)

    async def _invite_to_join(self, period: tuple[float, float]) -> dict[str, Any]:
        row = await self._reads.fetchone(_spread(
            "SELECT MIN(p.joined_at) - i.created_at AS v"
            " FROM invites i JOIN participants p ON p.invite_id = i.id"
            " WHERE i.purpose = 'join' AND i.role = 'customer'"
            " AND i.created_at >= ? AND i.created_at < ?"
            " GROUP BY i.id"
        ), period)
        return _spread_dict(row)

    async def _invites(self, period: tuple[float, float]) -> dict[str, Any]:
        now = self._clock()
        rows = await self._reads.fetchall(
            """
            SELECT role, COUNT(*),
                   COUNT(used_at),
                   COUNT(CASE WHEN used_at IS NULL AND revoked_at IS NULL AND expires_at > ?
                              THEN 1 END)
            FROM invites
            WHERE purpose = 'join' AND created_at >= ? AND created_at < ?
            GROUP BY role
            """,
            (now, *period),
        )
        by_role = {r[0]: {"created": r[1], "redeemed": r[2], "open": r[3]} for r in rows}
        result: dict[str, Any] = {}
        for role in ("customer", "technician"):
            counts = by_role.get(role, {"created": 0, "redeemed": 0, "open": 0})
            decided = counts["created"] - counts["open"]
            counts["redeemed_share"] = counts["redeemed"] / decided if decided else None
            result[role] = counts
        return result

    async def _snapshots(self, period: tuple[float, float]) -> dict[str, Any]:
        row = await self._reads.fetchone(
            """
            SELECT COUNT(*), (SELECT COUNT(*) FROM snapshots s JOIN calls c ON c.id = s.call_id
                              WHERE s.version = 1 AND c.started_at >= ?1 AND c.started_at < ?2)
            FROM calls WHERE started_at >= ?1 AND started_at < ?2
            """,
            period,
        )
        assert row is not None
        calls, snapshots = row
        return {"total": snapshots, "per_call": snapshots / calls if calls else None}

    async def _people(self, period: tuple[float, float]) -> list[dict[str, Any]]:
        """Calls per staff member (by the role they joined in), then the technicians who
        came by link, together."""
        marks = ",".join("?" * len(PEOPLE_ROLES))
        rows = await self._reads.fetchall(
            f"""
            SELECT p.user_id, u.username, p.role, COUNT(DISTINCT p.call_id) AS n
            FROM participants p JOIN calls c ON c.id = p.call_id
            LEFT JOIN users u ON u.id = p.user_id
            WHERE c.started_at >= ? AND c.started_at < ? AND p.role IN ({marks})
              AND (p.user_id IS NOT NULL OR p.role = 'technician')
            GROUP BY p.user_id, p.role, u.username
            ORDER BY p.user_id IS NULL, n DESC, u.username
            """,
            (*period, *PEOPLE_ROLES),
        )
        return [{"user_id": r[0], "username": r[1], "role": r[2], "calls": r[3]} for r in rows]

    async def _first_time_fix(self, period: tuple[float, float]) -> dict[str, Any]:
        row = await self._reads.fetchone(
            "SELECT COUNT(CASE WHEN first_time_fix = 1 THEN 1 END),"
            " COUNT(CASE WHEN first_time_fix = 0 THEN 1 END),"
            " COUNT(CASE WHEN first_time_fix IS NULL THEN 1 END)"
            " FROM calls WHERE started_at >= ? AND started_at < ?",
            period,
        )
        assert row is not None
        yes, no, unanswered = row
        return {"yes": yes, "no": no, "unanswered": unanswered,
                "rate": yes / (yes + no) if yes + no else None}
