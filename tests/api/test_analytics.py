"""The analytics figures on a seeded database match the seed, through the real server,
as JSON and as CSV, and the period's edges hold; a year of them over a busy
installation's calls leaves the server answering everyone else."""

from __future__ import annotations

import asyncio
import csv
import io
from collections import Counter
from datetime import UTC, datetime

import pytest

from tests.support import seed
from tests.support.connections import watched
from tests.support.server import Server, ServerFactory
from videoassist.actors import CLI
from videoassist.domain import apikeys


@pytest.fixture
async def seeded(server: Server) -> tuple[Server, str]:
    await seed.seed(server.store)
    _, token = await server.staff("admin")
    return server, token


async def _figures(server: Server, token: str, **query: str) -> dict:
    params = "&".join(f"{k}={v}" for k, v in {"from": seed.FIRST_DAY, "to": seed.LAST_DAY,
                                                 **query}.items())
    status, body, _ = await server.request("GET", f"/api/analytics?{params}", token=token)
    assert status == 200, body
    return body


async def test_the_figures_match_the_seeded_history(seeded: tuple[Server, str]) -> None:
    server, token = seeded
    got = await _figures(server, token)
    want = seed.expected()
    assert got["period"] == {"since": seed.PERIOD[0], "until": seed.PERIOD[1]}
    for name in ("calls_per_day", "calls", "invites", "first_time_fix"):
        assert got[name] == want[name], name
    for name in ("duration_s", "invite_to_join_s", "snapshots"):
        assert got[name] == pytest.approx(want[name]), name
    people = {(p["username"], p["role"]): p["calls"] for p in got["people"]}
    assert people == want["people"]
    assert [p["calls"] for p in got["people"]][:-1] == sorted(
        [p["calls"] for p in got["people"]][:-1], reverse=True)
    assert got["people"][-1]["user_id"] is None  # technicians by link come last
    # The seed's own numbers, to catch a seed that no longer says what it meant to.
    assert got["duration_s"] == {"count": 4, "median": 450.0, "p95": 1200.0}
    assert got["invites"]["customer"]["redeemed_share"] == 0.75
    assert got["first_time_fix"]["rate"] == pytest.approx(2 / 3)


async def test_the_csv_holds_the_same_figures(seeded: tuple[Server, str]) -> None:
    server, token = seeded
    figures = await _figures(server, token)
    status, text, headers = await server.request(
        "GET", f"/api/analytics?from={seed.FIRST_DAY}&to={seed.LAST_DAY}&format=csv",
        token=token)
    assert status == 200
    assert headers["Content-Type"] == "text/csv; charset=utf-8"
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == ["metric", "dimension", "value"]
    cells = {(m, d): v for m, d, v in rows[1:]}
    assert cells[("period_from", "")] == seed.FIRST_DAY
    assert cells[("period_to", "")] == seed.LAST_DAY
    for day in figures["calls_per_day"]:
        assert int(cells[("calls_per_day", day["day"])]) == day["calls"]
    assert float(cells[("duration_s_median", "")]) == figures["duration_s"]["median"]
    assert float(cells[("duration_s_p95", "")]) == figures["duration_s"]["p95"]
    assert float(cells[("invites_redeemed_share", "customer")]) == 0.75
    assert cells[("invites_redeemed_share", "technician")] == "1"
    assert int(cells[("calls_per_person", "expert:ann")]) == 4
    assert int(cells[("calls_per_person", "technician:(by link)")]) == 1
    assert float(cells[("first_time_fix_rate", "")]) == pytest.approx(2 / 3, abs=1e-5)


async def test_an_empty_period_has_nothing_to_divide_by(seeded: tuple[Server, str]) -> None:
    server, token = seeded
    got = await _figures(server, token, **{"from": "2026-12-01", "to": "2026-12-02"})
    assert got["calls"] == {"total": 0, "ended": 0}
    assert got["duration_s"] == {"count": 0, "median": None, "p95": None}
    assert got["snapshots"] == {"total": 0, "per_call": None}
    assert got["first_time_fix"]["rate"] is None
    assert [d["calls"] for d in got["calls_per_day"]] == [0, 0]


async def test_bad_periods_and_callers_are_refused(seeded: tuple[Server, str]) -> None:
    server, token = seeded
    for query, message in [("from=2026-11-30&to=2026-11-01", "from must not be after to."),
                           ("from=yesterday", "from must be a date, YYYY-MM-DD."),
                           ("from=20260101", "from must be a date, YYYY-MM-DD."),
                           ("to=9999-12-31", "to must be a date, YYYY-MM-DD."),
                           ("from=2025-01-01&to=2026-11-01", "The period is at most 366 days."),
                           ("format=xml", "format must be json or csv.")]:
        status, body, _ = await server.request("GET", f"/api/analytics?{query}", token=token)
        assert (status, body["error"]["message"]) == (400, message), query
    _, expert_token = await server.staff("expert")
    status, _, _ = await server.request("GET", "/api/analytics", token=expert_token)
    assert status == 403
    status, _, _ = await server.request("GET", "/api/analytics")
    assert status == 401
    # An integration reads it with the analytics:read scope, and only with it.
    _, bi_key = await apikeys.create(server.store, "BI", ["analytics:read"], CLI)
    _, jobs_key = await apikeys.create(server.store, "CRM", ["jobs:read"], CLI)
    status, body, _ = await server.request(
        "GET", f"/api/analytics?from={seed.FIRST_DAY}&to={seed.LAST_DAY}", token=bi_key)
    assert status == 200 and body["calls"]["total"] == 5
    status, _, _ = await server.request("GET", "/api/analytics", token=jobs_key)
    assert status == 403


YEAR_CALLS = 50_000
# Bounds that only a failure reaches: what is waited for is answered at once when the
# server works, and never while the analytics query is held when it does not.
ANSWER_LIMIT_S = 20.0


@pytest.mark.parametrize("server_backend", ["sqlite"])  # SQLite's one connection is the point
async def test_a_year_of_analytics_keeps_no_one_else_waiting(
        server_factory: ServerFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Attack (issue 20, finding 7): an admin's 366-day report over 50,000 calls used to
    hold the one SQLite connection for seconds, and /readyz, sign-ins, joins and chat
    all waited. Here the report's query is held in flight inside SQLite for as long as
    the test likes: /readyz and a sign-in must be answered meanwhile."""
    with watched(monkeypatch) as watch:
        server = await server_factory()
        starts = seed.a_year_of_calls(server.settings.database_path, "2025-01-01", YEAR_CALLS)
        user, token = await server.staff("admin")
        watch.hold_next_long_statement()
        report = asyncio.create_task(server.request(
            "GET", "/api/analytics?from=2025-01-01&to=2026-01-01", token=token))
        await asyncio.wait_for(watch.held.wait(), ANSWER_LIMIT_S)
        pending = [report]
        try:
            ready = asyncio.create_task(server.request("GET", "/readyz"))
            pending.append(ready)
            done, _ = await asyncio.wait({ready, report}, timeout=ANSWER_LIMIT_S,
                                         return_when=asyncio.FIRST_COMPLETED)
            assert ready in done, "/readyz waited for the analytics query"
            assert ready.result()[0] == 200
            signin = asyncio.create_task(server.sign_in(user.username))
            pending.append(signin)
            done, _ = await asyncio.wait({signin, report}, timeout=ANSWER_LIMIT_S,
                                         return_when=asyncio.FIRST_COMPLETED)
            assert signin in done, "a sign-in waited for the analytics query"
            signin.result()
            assert not report.done()  # all this while the report was in flight
        except BaseException:
            watch.release()
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            raise
        watch.release()
        status, body, _ = await asyncio.wait_for(report, ANSWER_LIMIT_S * 3)
    assert status == 200, body
    per_day = Counter(datetime.fromtimestamp(s, UTC).date().isoformat() for s in starts)
    assert len(body["calls_per_day"]) == 366
    assert {d["day"]: d["calls"] for d in body["calls_per_day"]} == {
        d["day"]: per_day[d["day"]] for d in body["calls_per_day"]}
    assert body["calls"] == {"total": YEAR_CALLS, "ended": YEAR_CALLS}
