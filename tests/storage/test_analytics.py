"""Calls per day on either database: every day of the period, the empty ones included,
each call on its UTC day, the period's edges held; on SQLite the query reads the
period's calls once, through the index on ``started_at`` (issue 20, finding 7: it used
to join every day to every call)."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.support import seed
from tests.support.connections import watched
from tests.support.databases import Target
from videoassist.storage import Store


def at(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


SINCE, UNTIL = at("2026-02-27T00:00:00"), at("2026-03-03T00:00:00")
STARTS = [
    SINCE - 0.001,  # before the period
    SINCE,  # its first instant
    at("2026-02-28T23:59:59.999"),
    at("2026-03-02T12:00:00"), at("2026-03-02T12:00:00"),
    at("2026-03-02T23:59:59.5"),
    UNTIL,  # after it
]


async def test_each_call_counts_on_its_utc_day_and_every_day_is_there(
        database: Target) -> None:
    store = await Store.open(database)
    try:
        job = await store.jobs.create("Counted", None, None)
        for started in STARTS:
            await store.db.execute(
                "INSERT INTO calls (job_id, started_at, ended_at) VALUES (?, ?, ?)",
                (job.id, started, started + 60))
        days = await store.analytics.calls_per_day(SINCE, UNTIL)
        one_day = await store.analytics.calls_per_day(SINCE, SINCE + 86400)
    finally:
        await store.close()
    assert days == [{"day": "2026-02-27", "calls": 1}, {"day": "2026-02-28", "calls": 1},
                    {"day": "2026-03-01", "calls": 0}, {"day": "2026-03-02", "calls": 3}]
    assert one_day == [{"day": "2026-02-27", "calls": 1}]


async def test_on_sqlite_the_days_are_counted_in_one_pass_over_the_index(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "db.sqlite3"
    with watched(monkeypatch) as watch:
        store = await Store.open(path)
        try:
            seed.a_year_of_calls(path, "2025-01-01", 1000)
            del watch.statements[:]
            await store.analytics.calls_per_day(at("2025-01-01T00:00:00"),
                                                at("2026-01-02T00:00:00"))
        finally:
            await store.close()
    [statement] = [s for s in watch.statements if "started_at" in s]
    conn = sqlite3.connect(path)
    try:
        plan = [row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + statement)]
    finally:
        conn.close()
    loops = [step for step in plan if step.startswith(("SCAN", "SEARCH"))]
    assert loops == [
        "SEARCH calls USING COVERING INDEX calls_started (started_at>? AND started_at<?)"
    ], plan
