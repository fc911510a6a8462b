"""``call.end``: staff end a call for everyone in it, over real sockets and a real store."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from tests.support.server import Server, receive
from videoassist.appkeys import HUB

CALL_ENDED = {"type": "error", "code": "call_ended", "message": "The call has been ended."}


async def _closed(ws: aiohttp.ClientWebSocketResponse) -> tuple[int | None, str]:
    """The close code and reason, after the notice that precedes them."""
    notice = await receive(ws, skip=("participant.joined", "participant.left"))
    assert notice == CALL_ENDED, notice
    closing = await ws.receive(timeout=5)
    assert closing.type == aiohttp.WSMsgType.CLOSE, closing
    return ws.close_code, closing.extra


async def _gone(server: Server, job_id: int) -> None:
    async with asyncio.timeout(5):
        while job_id in server.app[HUB].rooms:
            await asyncio.sleep(0.02)


@pytest.mark.parametrize("role", ["expert", "technician", "admin"])
async def test_staff_end_the_call_for_everyone(server: Server, role: str) -> None:
    _, staff_token = await server.staff(role)
    job_id = await server.job(staff_token)
    staff, joined = await server.join_call(staff_token, job_id)
    customer, _ = await server.join_call(await server.participant(staff_token, job_id))
    technician, _ = await server.join_call(
        await server.participant(staff_token, job_id, "technician"))
    call_id = joined["call"]["id"]

    await staff.send_json({"type": "call.end"})
    for ws in (staff, customer, technician):
        assert await _closed(ws) == (1000, "call_ended")
    await _gone(server, job_id)

    store = server.store
    call = await store.calls.get(call_id)
    assert call.ended_at is not None
    participants = await store.calls.participants_of_job(job_id)
    assert len(participants) == 3
    assert all(p.left_at is not None for p in participants)
    events = [e["type"] for e in await store.jobs.events(job_id)]
    assert events.count("call.ended") == 1 and events[-1] == "call.ended", events
    [audited] = [a for a in await store.audit.recent() if a["action"] == "call.ended"]
    assert audited["target"] == f"job:{job_id}"
    assert audited["detail"]["call"] == call_id and audited["detail"]["connections"] == 3
    # The job stays open and its links keep working: joining again starts a new call.
    again, rejoined = await server.join_call(staff_token, job_id)
    assert rejoined["call"]["id"] != call_id
    await again.close()
