"""Who may stay in a call when that changes elsewhere: the links of a staff user who is
disabled (through the API, or with the CLI), and a job closed with the CLI while its
call runs on the server. Real sockets and store; the CLI is a real process of its own
on the same data directory, as an operator runs it beside the server."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
import pytest

from tests.support.server import Server, receive
from tests.support.timing import loop_lag
from videoassist.appkeys import HUB

WITHDRAWN = {"type": "error", "code": "link_revoked", "message": "This link has been withdrawn."}
JOB_CLOSED = {"type": "error", "code": "job_closed", "message": "This job has been closed."}

# The server's watcher looks at the database every revocation_poll_s (0.25 s by
# default); this is the rest of the documented second, for its one check and the close
# it sends, with the machine's two cores shared with other tests.
CHECK_AND_CLOSE_S = 0.75


async def _removed(ws: aiohttp.ClientWebSocketResponse
                   ) -> tuple[dict[str, Any], tuple[int, str], float]:
    """The error that removes a participant, the close frame's code and reason that
    follow it, and when the error arrived (Unix seconds)."""
    error = await receive(ws, skip=("participant.joined", "participant.left"))
    arrived = time.time()
    closing = await ws.receive(timeout=5)
    # The frame itself, not ws.close_code: a client that reads after the server has
    # dropped the TCP connection cannot echo the close and records 1006.
    assert closing.type == aiohttp.WSMsgType.CLOSE, closing
    return error, (closing.data, closing.extra), arrived


async def _still_in(ws: aiohttp.ClientWebSocketResponse) -> None:
    await ws.send_json({"type": "ping"})
    assert await receive(ws, skip=("participant.joined", "participant.left")) == {
        "type": "pong"}


async def _refused(server: Server, participant_token: str) -> dict[str, Any]:
    ws = await server.ws()
    await ws.send_json({"type": "auth", "token": participant_token})
    error = await receive(ws)
    await ws.receive(timeout=5)
    await ws.close()
    return error


async def test_disabling_a_user_withdraws_their_links_and_removes_who_came_by_them(
    server: Server,
) -> None:
    _, admin_token = await server.staff("admin")
    maker, maker_token = await server.staff("expert")
    _, other_token = await server.staff("expert")
    job_id = await server.job(other_token)
    unused = await server.invite(maker_token, job_id)
    customer_token = await server.participant(maker_token, job_id)
    redeemed_only = await server.participant(maker_token, job_id, "technician")
    kept_token = await server.participant(other_token, job_id)  # another user's link
    staff_ws, _ = await server.join_call(other_token, job_id)
    customer_ws, customer = await server.join_call(customer_token)
    kept_ws, _ = await server.join_call(kept_token)

    status, body, _ = await server.request("POST", f"/api/users/{maker.id}/disable",
                                           token=admin_token)
    assert status == 200, body
    # The disable itself removed the participant (the watcher would not count here).
    assert (body["invites_revoked"], body["participants_removed"],
            body["connections_closed"]) == (1, 1, 0)
    error, close, _ = await _removed(customer_ws)
    assert (error, close) == (WITHDRAWN, (4401, "link_revoked"))
    assert customer["you"]["id"] not in server.app[HUB].rooms[job_id].members

    # The link nobody used answers 410, like any dead link; a token a used one gave
    # no longer joins.
    assert (await server.redeem(unused))[0] == 410
    status, _, _ = await server.request("POST", "/api/invites/inspect", json={"token": unused})
    assert status == 410
    assert (await _refused(server, redeemed_only))["code"] == "unauthorized"
    # Everyone else is still in the call, the one who came by another's link included.
    await _still_in(staff_ws)
    await _still_in(kept_ws)
    [audited] = [a for a in await server.store.audit.recent() if a["action"] == "user.disabled"]
    assert audited["detail"] == {"invites_revoked": 1, "used_invites_revoked": 2}
    for ws in (staff_ws, kept_ws):
        await ws.close()


async def test_a_user_disabled_with_the_cli_loses_who_came_by_their_links_within_a_second(
    server: Server,
) -> None:
    maker, maker_token = await server.staff("technician")
    _, other_token = await server.staff("expert")
    job_id = await server.job(other_token)
    unused = await server.invite(maker_token, job_id)
    staff_ws, _ = await server.join_call(other_token, job_id)
    customer_ws, _ = await server.join_call(await server.participant(maker_token, job_id))

    code, out, err = await server.cli("user", "disable", maker.username)
    assert code == 0, err
    assert "1 open and 1 used links revoked" in out
    error, close, arrived = await _removed(customer_ws)
    assert (error, close) == (WITHDRAWN, (4401, "link_revoked"))
    disabled_at = (await server.store.users.get(maker.id)).disabled_at
    assert disabled_at is not None
    assert arrived - disabled_at < server.settings.revocation_poll_s + CHECK_AND_CLOSE_S
    assert (await server.redeem(unused))[0] == 410
    await _still_in(staff_ws)
    await staff_ws.close()


async def test_a_job_closed_with_the_cli_ends_its_call_within_a_second(server: Server) -> None:
    _, token = await server.staff("expert")
    job_id = await server.job(token)
    staff_ws, joined = await server.join_call(token, job_id)
    customer_ws, _ = await server.join_call(await server.participant(token, job_id))

    async with loop_lag() as lag:  # the server's loop is this test's
        code, out, err = await server.cli("job", "close", str(job_id))
        assert code == 0, err
        assert out.startswith(f"closed job {job_id}")
        closed_at = (await server.store.jobs.get(job_id)).closed_at
        assert closed_at is not None
        for ws in (staff_ws, customer_ws):
            error, close, arrived = await _removed(ws)
            assert (error, close) == (JOB_CLOSED, (1000, "job_closed"))
            # Within the second, but for how late a busy machine ran the loop (1.07 s
            # was seen beside two CPU hogs and four other test runs).
            assert arrived - closed_at < (server.settings.revocation_poll_s
                                          + CHECK_AND_CLOSE_S + lag.worst), lag.worst
    async with asyncio.timeout(5):  # the call ends when the last one has left
        while job_id in server.app[HUB].rooms:
            await asyncio.sleep(0.02)
    call = await server.store.calls.get(joined["call"]["id"])
    assert call.ended_at is not None
    [audited] = [a for a in await server.store.audit.recent() if a["action"] == "job.closed"]
    assert (audited["actor"], audited["target"]) == ("cli", f"job:{job_id}")


async def test_a_removed_participant_is_told_removed_when_the_watcher_sees_the_link_first(
        server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    """A removal withdraws the link, then audits, then closes. The watcher, woken by the
    withdrawal (a database notification, or its poll), may look in between: it found a
    withdrawn link and closed the customer with ``link_revoked``, who was told "This link
    has been withdrawn" instead of that staff removed them (seen on a busy machine). Here
    the watcher's look is made to fall in exactly that window."""
    _, staff_token = await server.staff("expert")
    job_id = await server.job(staff_token)
    customer_token = await server.participant(staff_token, job_id)
    expert_ws, _ = await server.join_call(staff_token, job_id)
    customer_ws, customer = await server.join_call(customer_token)
    audit = server.store.audit
    record = audit.record
    looked: list[str] = []

    async def watcher_looks_first(actor: str, action: str, *args: Any, **kwargs: Any) -> Any:
        if action == "participant.removed":
            await server.app[HUB].check_revocations()
            looked.append(action)
        return await record(actor, action, *args, **kwargs)

    monkeypatch.setattr(audit, "record", watcher_looks_first)
    await expert_ws.send_json({"type": "participant.remove", "target": customer["you"]["id"]})
    error, close, _ = await _removed(customer_ws)
    await _still_in(expert_ws)  # its messages are handled in turn: the removal is done
    assert looked == ["participant.removed"]
    assert (error["code"], close) == ("removed", (4401, "removed")), error


async def test_staff_remove_a_participant_and_its_token_ends(server: Server) -> None:
    """Issue 20, finding 3: before, there was no way to remove one participant, and
    after call.end the same token joined again and wrote into the job's record."""
    _, staff_token = await server.staff("expert")
    job_id = await server.job(staff_token)
    customer_token = await server.participant(staff_token, job_id)
    technician_token = await server.participant(staff_token, job_id, "technician")
    expert_ws, expert = await server.join_call(staff_token, job_id)
    customer_ws, customer = await server.join_call(customer_token)
    second_ws, _ = await server.join_call(customer_token)  # the same token, twice
    technician_ws, technician = await server.join_call(technician_token)
    skip = ("participant.joined", "participant.left", "media.tracks")
    # Only staff may remove, only those who came by a link, and not themselves.
    for ws, target, code in (
            (technician_ws, customer["you"]["id"], "forbidden"),
            (customer_ws, technician["you"]["id"], "forbidden"),
            (expert_ws, expert["you"]["id"], "not_found"),
            (expert_ws, 999_999, "not_found")):
        await ws.send_json({"type": "participant.remove", "target": target})
        error = await receive(ws, skip=skip)
        assert (error["code"], error["ref"]) == (code, "participant.remove"), error
    await _still_in(customer_ws)

    await expert_ws.send_json({"type": "participant.remove", "target": customer["you"]["id"]})
    removed = {"type": "error", "code": "removed",
               "message": "A staff member removed you from the call; this link no longer works."}
    for ws in (customer_ws, second_ws):
        error, close, _ = await _removed(ws)
        assert (error, close) == (removed, (4401, "removed"))
    await _still_in(technician_ws)
    await _still_in(expert_ws)
    # The token is spent: no way back in, during the call or after it ended.
    assert (await _refused(server, customer_token))["code"] == "unauthorized"
    await expert_ws.send_json({"type": "call.end"})
    for ws in (expert_ws, technician_ws):
        await ws.close()
    assert (await _refused(server, customer_token))["code"] == "unauthorized"
    rows = await server.store.audit.recent(20)
    (row,) = [r for r in rows if r["action"] == "participant.removed"]
    assert row["target"] == f"participant:{customer['you']['id']}"
