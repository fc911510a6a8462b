"""A job history with known figures, written straight into a real database, for the
analytics tests (API and dashboard).

The period is 2026-11-01 to 2026-11-07 (UTC). Calls and invites just outside it are
seeded too, and must not count. ``expected()`` computes each figure from the seed
lists with Python's own statistics, independently of the SQL under test.
"""

from __future__ import annotations

import math
import sqlite3
import statistics
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from videoassist.storage import Store

FIRST_DAY, LAST_DAY = "2026-11-01", "2026-11-07"
FAR_FUTURE = datetime(2100, 1, 1, tzinfo=UTC).timestamp()


def at(day: int, hour: int, minute: int = 0, second: int = 0, month: int = 11) -> float:
    return datetime(2026, month, day, hour, minute, second, tzinfo=UTC).timestamp()


PERIOD = (at(1, 0), at(8, 0))


@dataclass
class Invite:
    name: str
    role: str  # customer or technician
    created_at: float
    joins: list[float] = field(default_factory=list)  # when someone joined with it
    open: bool = False  # unused and not yet expired


@dataclass
class SeedCall:
    started_at: float
    duration_s: float | None  # None: still in progress
    staff: list[tuple[str, str]]  # (username, role joined in); a name twice: a rejoin
    invites: list[str] = field(default_factory=list)  # invites joined with in this call
    snapshots: int = 0
    versions: int = 0  # re-annotations: not new pictures
    first_time_fix: bool | None = None


USERS = {"ann": "expert", "bob": "expert", "tom": "technician", "chief": "admin"}

INVITES = [
    Invite("c1", "customer", at(1, 8, 58), [at(1, 9, 0, 30), at(1, 9, 3)]),  # rejoined
    Invite("c2", "customer", at(1, 13, 59), [at(1, 14, 0)]),
    Invite("c3", "customer", at(3, 9, 0), [at(3, 10, 0, 10)]),
    Invite("c4", "customer", at(2, 11, 0)),  # expired unused
    Invite("c5", "customer", at(7, 18, 0), open=True),
    Invite("t1", "technician", at(3, 9, 30), [at(3, 10, 1)]),
    Invite("c0", "customer", at(30, 12, 0, month=10), [at(31, 23, 59, 59, month=10)]),
]

CALLS = [
    SeedCall(at(1, 9, 0), 300, [("ann", "expert"), ("tom", "technician"), ("ann", "expert")],
             ["c1"], snapshots=2, first_time_fix=True),
    SeedCall(at(1, 14, 0), 600, [("ann", "expert")], ["c2"], first_time_fix=False),
    SeedCall(at(3, 10, 0), 1200, [("bob", "expert")], ["c3", "t1"], snapshots=3, versions=1,
             first_time_fix=True),
    SeedCall(at(5, 16, 0), 45, [("ann", "expert"), ("bob", "expert")], snapshots=1),
    SeedCall(at(6, 8, 0), None, [("ann", "expert")]),
    # Outside the period: the second before it, and its first second after.
    SeedCall(at(31, 23, 59, 59, month=10), 100, [("ann", "expert")], ["c0"], snapshots=4,
             first_time_fix=True),
    SeedCall(at(8, 0, 0), 100, [("bob", "expert")], snapshots=1, first_time_fix=False),
]


async def seed(store: Store) -> None:
    db = store.db
    users: dict[str, int] = {}
    for name, role in USERS.items():
        users[name] = await db.insert(
            "INSERT INTO users (username, role, password_hash, created_at) VALUES (?, ?, ?, ?)"
            " RETURNING id",
            (name, role, None, at(1, 0, month=10)))
    invite_ids: dict[str, int] = {}
    for n, invite in enumerate(INVITES):
        job_id = await _job(store, f"Seeded job {n}", invite.created_at)
        used = invite.joins[0] if invite.joins else None
        expires = FAR_FUTURE if invite.open else invite.created_at + 3600
        invite_ids[invite.name] = await db.insert(
            "INSERT INTO invites (token_hash, purpose, job_id, role, created_by, created_at,"
            " expires_at, used_at) VALUES (?, 'join', ?, ?, ?, ?, ?, ?) RETURNING id",
            (bytes([n]) * 32, job_id, invite.role, users["ann"], invite.created_at, expires,
             used))
    by_name = {i.name: i for i in INVITES}
    for n, call in enumerate(CALLS):
        job_id = await _job(store, f"Seeded call {n}", call.started_at)
        ended = None if call.duration_s is None else call.started_at + call.duration_s
        call_id = await db.insert(
            "INSERT INTO calls (job_id, started_at, ended_at, first_time_fix) VALUES (?, ?, ?, ?)"
            " RETURNING id",
            (job_id, call.started_at, ended,
             None if call.first_time_fix is None else int(call.first_time_fix)))
        for k, (name, role) in enumerate(call.staff):
            await db.execute(
                "INSERT INTO participants (call_id, role, display_name, user_id, joined_at)"
                " VALUES (?, ?, ?, ?, ?)", (call_id, role, name, users[name], call.started_at + k))
        for name in call.invites:
            invite = by_name[name]
            for joined in invite.joins:
                await db.execute(
                    "INSERT INTO participants (call_id, role, display_name, invite_id, joined_at)"
                    " VALUES (?, ?, ?, ?, ?)",
                    (call_id, invite.role, invite.role.capitalize(), invite_ids[name], joined))
        frame_id = None
        if call.snapshots:
            frame_id = await db.insert(
                "INSERT INTO frames (job_id, width, height, captured_at, sealed)"
                " VALUES (?, 640, 480, ?, ?) RETURNING id", (job_id, call.started_at, b"\0"))
        first = None
        for k in range(call.snapshots):
            snapshot_id = await _snapshot(store, (
                job_id, call_id, frame_id, None, 1, call.started_at + k))
            first = first or snapshot_id
        for k in range(call.versions):
            await _snapshot(store, (job_id, call_id, frame_id, first, k + 2,
                                    call.started_at + 100 + k))


async def _job(store: Store, title: str, when: float) -> int:
    # Ids of jobs and snapshots are the store's to give (never reused: next_id).
    async with store.db.transaction() as tx:
        job_id = await tx.next_id("jobs")
        await tx.execute("INSERT INTO jobs (id, title, created_at, updated_at)"
                         " VALUES (?, ?, ?, ?)", (job_id, title, when, when))
    return job_id


async def _snapshot(store: Store, values: tuple[Any, ...]) -> int:
    """A snapshot of (job, call, frame, original, version, created_at)."""
    async with store.db.transaction() as tx:
        snapshot_id = await tx.next_id("snapshots")
        await tx.execute(
            "INSERT INTO snapshots (id, job_id, call_id, frame_id, original_id, version,"
            " author_name, author_role, camera_name, camera_role, created_at, width, height,"
            " shapes, sha256, byte_size, sealed) VALUES (?, ?, ?, ?, ?, ?, 'ann', 'expert',"
            " 'Customer', 'customer', ?, 640, 480, '[]', '', 1, ?)",
            (snapshot_id, *values, b"\0"))
    return snapshot_id


def _spread(values: list[float]) -> dict[str, Any]:
    if not values:
        return {"count": 0, "median": None, "p95": None}
    ordered = sorted(values)
    return {"count": len(values), "median": statistics.median(values),
            "p95": ordered[math.ceil(0.95 * len(values)) - 1]}


def expected() -> dict[str, Any]:
    """Every figure for the period, from the seed lists."""
    since, until = PERIOD
    calls = [c for c in CALLS if since <= c.started_at < until]
    invites = [i for i in INVITES if since <= i.created_at < until]
    days = [datetime.fromtimestamp(since + d * 86400, UTC).date().isoformat() for d in range(7)]
    per_day = {d: 0 for d in days}
    for c in calls:
        per_day[datetime.fromtimestamp(c.started_at, UTC).date().isoformat()] += 1
    invite_stats: dict[str, Any] = {}
    for role in ("customer", "technician"):
        mine = [i for i in invites if i.role == role]
        redeemed = sum(1 for i in mine if i.joins)
        still_open = sum(1 for i in mine if i.open)
        decided = len(mine) - still_open
        invite_stats[role] = {"created": len(mine), "redeemed": redeemed, "open": still_open,
                              "redeemed_share": redeemed / decided if decided else None}
    people: dict[tuple[str | None, str], int] = {}
    for c in calls:
        seen = {(name, role) for name, role in c.staff}
        if any(i.startswith("t") for i in c.invites):
            seen.add((None, "technician"))
        for key in seen:
            people[key] = people.get(key, 0) + 1
    answered = [c.first_time_fix for c in calls if c.first_time_fix is not None]
    snapshots = sum(c.snapshots for c in calls)
    return {
        "calls_per_day": [{"day": d, "calls": per_day[d]} for d in days],
        "calls": {"total": len(calls), "ended": sum(c.duration_s is not None for c in calls)},
        "duration_s": _spread([c.duration_s for c in calls if c.duration_s is not None]),
        "invite_to_join_s": _spread([i.joins[0] - i.created_at for i in invites
                                     if i.role == "customer" and i.joins]),
        "invites": invite_stats,
        "snapshots": {"total": snapshots, "per_call": snapshots / len(calls)},
        "people": people,  # (username or None, role) -> calls
        "first_time_fix": {"yes": answered.count(True), "no": answered.count(False),
                           "unanswered": len(calls) - len(answered),
                           "rate": answered.count(True) / len(answered)},
    }


def a_year_of_calls(path: Path, first_day: str, count: int) -> list[float]:
    """``count`` ended calls spread over the 366 days from ``first_day``, written in one
    transaction straight into the SQLite file at ``path`` (a busy installation's year:
    what the store would take minutes to write a call at a time); their start times."""
    start = datetime.strptime(first_day, "%Y-%m-%d").replace(tzinfo=UTC).timestamp()
    step = 366 * 86400 / count
    starts = [start + k * step for k in range(count)]
    conn = sqlite3.connect(path)
    try:
        with conn:
            job_ids = [row[0] for row in conn.execute("SELECT max(id) FROM jobs")]
            first_job = (job_ids[0] or 0) + 1
            conn.executemany(
                "INSERT INTO jobs (id, title, created_at, updated_at) VALUES (?, ?, ?, ?)",
                [(first_job + k, f"Year job {k}", starts[k * 100], starts[k * 100])
                 for k in range(count // 100)])
            conn.executemany(
                "INSERT INTO calls (job_id, started_at, ended_at) VALUES (?, ?, ?)",
                [(first_job + k // 100, s, s + 600) for k, s in enumerate(starts)])
    finally:
        conn.close()
    return starts
