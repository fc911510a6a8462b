"""Listing and searching jobs over HTTP, on a real server with a real SQLite file."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.support.server import Server, join_call, leave
from videoassist.actors import CLI
from videoassist.domain import apikeys

JOBS = [  # (title, external_ref), created in this order: listed newest first
    ("Boiler makes a noise", "WO-20417"),
    ("No hot water", "SF-00042"),
    ("50% of radiators cold", None),
    ("500 litre tank leaks", "WO-500"),
    ("Valve a_b sticks", None),
    ("Valve axb sticks", "ab_c"),
    ("Gauge reads C:\\temp", None),
    ("Gauge reads C:temp", "boiler-room"),
]


async def _jobs(server: Server) -> tuple[str, dict[str, int]]:
    _, token = await server.staff("expert")
    ids = {}
    for title, ref in JOBS:
        status, body, _ = await server.request(
            "POST", "/api/jobs", token=token, json={"title": title, "external_ref": ref})
        assert status == 201, body
        ids[title] = body["id"]
    return token, ids


async def _search(server: Server, token: str, **params: Any) -> list[str]:
    async with server.http.get(f"{server.url}/api/jobs", params=params,
                               headers={"Authorization": f"Bearer {token}"}) as response:
        body = await response.json()
        assert response.status == 200, body
    return [job["title"] for job in body["jobs"]]


async def test_q_matches_title_or_external_ref_ignoring_case(server: Server) -> None:
    token, _ = await _jobs(server)
    assert await _search(server, token, q="BOILER") == [
        "Gauge reads C:temp", "Boiler makes a noise"]  # by its external_ref, by its title
    assert await _search(server, token, q="wo-") == ["500 litre tank leaks",
                                                     "Boiler makes a noise"]
    assert await _search(server, token, q="sf-00042") == ["No hot water"]
    assert await _search(server, token, q="no such thing") == []


async def test_wildcards_and_the_escape_character_match_literally(server: Server) -> None:
    token, _ = await _jobs(server)
    # Unescaped, "50%" would match "500 litre..." and "a_b" would match "axb".
    assert await _search(server, token, q="50%") == ["50% of radiators cold"]
    assert await _search(server, token, q="%") == ["50% of radiators cold"]
    assert await _search(server, token, q="a_b") == ["Valve a_b sticks"]
    assert await _search(server, token, q="_") == ["Valve axb sticks", "Valve a_b sticks"]
    assert await _search(server, token, q="C:\\temp") == ["Gauge reads C:\\temp"]
    assert await _search(server, token, q="\\") == ["Gauge reads C:\\temp"]
    assert await _search(server, token, q="\\%") == []


async def test_q_combines_with_status_limit_and_offset(server: Server) -> None:
    token, ids = await _jobs(server)
    status, _, _ = await server.request("POST", f"/api/jobs/{ids['Valve a_b sticks']}/close",
                                        token=token)
    assert status == 200
    assert await _search(server, token, q="valve", status="closed") == ["Valve a_b sticks"]
    assert await _search(server, token, q="valve", status="open") == ["Valve axb sticks"]
    assert await _search(server, token, q="a", limit=2) == [
        "Gauge reads C:temp", "Gauge reads C:\\temp"]
    assert await _search(server, token, q="a", limit=2, offset=2) == [
        "Valve axb sticks", "Valve a_b sticks"]


async def test_an_empty_q_lists_everything_and_a_long_one_is_refused(server: Server) -> None:
    token, _ = await _jobs(server)
    everything = await _search(server, token)
    assert everything == [title for title, _ in reversed(JOBS)]
    assert await _search(server, token, q="") == everything
    assert await _search(server, token, q="x" * 100) == []
    status, body, _ = await server.request("GET", "/api/jobs?q=" + "x" * 101, token=token)
    assert status == 400
    assert body == {"error": {"code": "bad_request",
                              "message": "q must be at most 100 characters."}}


async def test_an_api_key_with_jobs_read_searches_too(server: Server) -> None:
    token, _ = await _jobs(server)
    _, key = await apikeys.create(server.store, "BI", ["jobs:read"], CLI)
    assert await _search(server, key, q="hot water") == ["No hot water"]
    assert await _search(server, token, q="hot water") == ["No hot water"]


async def _waiting(server: Server, token: str, job_id: int) -> float | None:
    status, body, _ = await server.request("GET", "/api/jobs?status=open", token=token)
    assert status == 200, body
    job = next(j for j in body["jobs"] if j["id"] == job_id)
    since: float | None = job["waiting_since"]
    return since


async def _until_waiting(server: Server, token: str, job_id: int, waiting: bool
                         ) -> float | None:
    """The job's waiting_since once it is (``waiting``) or is not set: a leave is in the
    database by the time the socket's close is handled, which the client does not see."""
    async with asyncio.timeout(5):
        while ((since := await _waiting(server, token, job_id)) is not None) != waiting:
            await asyncio.sleep(0.05)
    return since


async def test_a_customer_alone_in_the_call_is_waiting_until_staff_join(server: Server) -> None:
    _, token = await server.staff("expert")
    job_id = await server.job(token)
    other = await server.job(token, "No hot water")
    assert await _waiting(server, token, job_id) is None  # no call
    technician = await join_call(server, await server.participant(token, job_id, "technician"))
    assert await _waiting(server, token, job_id) is None  # a technician is no customer

    before = server.clock()
    customer = await join_call(server, await server.participant(token, job_id))
    since = await _waiting(server, token, job_id)
    assert since is not None and before <= since <= server.clock()
    assert await _waiting(server, token, other) is None

    server.clock.advance(30)
    expert = await join_call(server, token, job_id)
    assert await _waiting(server, token, job_id) is None  # staff are with the customer

    server.clock.advance(30)
    left = server.clock()
    await leave(expert)
    # Waiting again, since the expert left (not since the customer came).
    assert (again := await _until_waiting(server, token, job_id, True)) is not None
    assert again >= left

    await leave(customer)
    await _until_waiting(server, token, job_id, False)
    await leave(technician)
