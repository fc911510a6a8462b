"""Admin routes: role changes and password resets sign the user out everywhere; who is
in a call now; the first-time-fix answer. Real server, real WebSockets."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from tests.support.server import PASSWORD, Server, leave, receive
from videoassist.actors import CLI
from videoassist.domain import accounts
from videoassist.errors import Conflict


async def _closed(ws: aiohttp.ClientWebSocketResponse) -> tuple[int | None, str]:
    """Read to the close frame: its code, and the error message's code before it."""
    error = await receive(ws, skip=("participant.joined", "participant.left", "media.offer",
                                    "participants"))
    assert error["type"] == "error", error
    msg = await ws.receive(timeout=5)
    assert msg.type == aiohttp.WSMsgType.CLOSE, msg
    return msg.data, error["code"]


async def _audit_actions(server: Server, target: str) -> list[str]:
    rows = await server.store.db.fetchall(
        "SELECT action FROM audit_log WHERE target = ? ORDER BY id", (target,))
    return [r[0] for r in rows]


async def test_a_role_change_signs_the_user_out_everywhere(server: Server) -> None:
    _, admin_token = await server.staff("admin")
    user, token = await server.staff("technician")
    job_id = await server.job(admin_token)
    ws, _ = await server.join_call(token, job_id)

    status, body, _ = await server.request("PATCH", f"/api/users/{user.id}", token=admin_token,
                                           json={"role": "expert"})
    assert status == 200, body
    assert body["user"]["role"] == "expert" and body["connections_closed"] == 1
    assert await _closed(ws) == (4401, "signed_out")
    status, body, _ = await server.request("GET", "/api/session", token=token)
    assert status == 401 and "signed out" in body["error"]["message"]
    # Signing in again gives a token of the new role, which works.
    fresh = await server.sign_in(user.username)
    status, body, _ = await server.request("GET", "/api/session", token=fresh)
    assert (status, body["user"]["role"]) == (200, "expert")
    assert "user.role_changed" in await _audit_actions(server, f"user:{user.id}")


async def test_role_changes_that_would_lock_admins_out_are_refused(server: Server) -> None:
    admin, admin_token = await server.staff("admin")
    other_admin = await server.add_user("admin")
    # Not one's own role.
    status, body, _ = await server.request("PATCH", f"/api/users/{admin.id}", token=admin_token,
                                           json={"role": "expert"})
    assert status == 400 and "your own role" in body["error"]["message"]
    # Another admin may stop being one while this one can still sign in...
    status, body, _ = await server.request("PATCH", f"/api/users/{other_admin.id}",
                                           token=admin_token, json={"role": "expert"})
    assert status == 200, body
    # ...and only known roles, and nothing else in the body.
    for bad in ({"role": "customer"}, {"role": "admin", "username": "x"}, {}):
        status, body, _ = await server.request("PATCH", f"/api/users/{other_admin.id}",
                                               token=admin_token, json=bad)
        assert status == 400, (bad, body)
    _, expert_token = await server.staff("expert")
    status, _, _ = await server.request("PATCH", f"/api/users/{other_admin.id}",
                                        token=expert_token, json={"role": "admin"})
    assert status == 403


async def test_the_last_admin_who_can_sign_in_stays_one(server: Server) -> None:
    admin = await server.add_user("admin")
    other = await server.add_user("admin", password=None)  # cannot sign in yet
    # Not through the API (which refuses one's own role first): the CLI's code path.
    assert (await accounts.change_role(server.store, other, "expert", CLI)).role == "expert"
    with pytest.raises(Conflict, match="last admin"):
        await accounts.change_role(server.store, admin, "expert", CLI)
    assert (await server.store.users.get(admin.id)).role == "admin"


async def test_a_password_reset_stops_the_old_password_and_sessions(server: Server) -> None:
    _, admin_token = await server.staff("admin")
    user, token = await server.staff("expert")
    job_id = await server.job(admin_token)
    ws, _ = await server.join_call(token, job_id)

    status, body, _ = await server.request("POST", f"/api/users/{user.id}/password-reset",
                                           token=admin_token)
    assert status == 200, body
    assert body["connections_closed"] == 1
    assert await _closed(ws) == (4401, "signed_out")
    status, _, _ = await server.request("GET", "/api/session", token=token)
    assert status == 401
    status, _, _ = await server.request("POST", "/api/session",
                                        json={"username": user.username, "password": PASSWORD})
    assert status == 401
    # The link sets a new password and signs in.
    link = body["password_link"]["url"].split("#", 1)[1]
    status, body, _ = await server.request("POST", "/api/password",
                                           json={"token": link, "password": "a new long secret"})
    assert status == 200, body
    assert await server.sign_in(user.username, "a new long secret")
    actions = await _audit_actions(server, f"user:{user.id}")
    assert "user.password_reset" in actions and "password_link.created" in actions


async def test_a_disabled_account_cannot_be_reset(server: Server) -> None:
    admin, admin_token = await server.staff("admin")
    user = await server.add_user("expert")
    await server.store.users.set_disabled(user.id, True)
    status, body, _ = await server.request("POST", f"/api/users/{user.id}/password-reset",
                                           token=admin_token)
    assert status == 409, body
    status, body, _ = await server.request("POST", f"/api/users/{admin.id}/password-reset",
                                           token=admin_token)
    assert status == 400, body


async def test_live_calls_show_who_is_connected_now(server: Server) -> None:
    admin, admin_token = await server.staff("admin")
    user, token = await server.staff("technician")
    job_id = await server.job(admin_token)
    status, body, _ = await server.request("GET", "/api/calls/live", token=admin_token)
    assert (status, body) == (200, {"calls": []})

    ws, joined = await server.join_call(token, job_id)
    customer_ws, _ = await server.join_call(await server.participant(admin_token, job_id))
    status, body, _ = await server.request("GET", "/api/calls/live", token=admin_token)
    [call] = body["calls"]
    assert call["call_id"] == joined["call"]["id"] and call["job"]["id"] == job_id
    assert [(p["role"], p["user_id"], p["media"]) for p in call["participants"]] == [
        ("technician", user.id, False), ("customer", None, False)]
    status, body, _ = await server.request("GET", "/api/users", token=admin_token)
    in_call = {u["username"]: u["in_call"] for u in body["users"]}
    assert in_call == {admin.username: False, user.username: True}

    await leave(ws)
    await leave(customer_ws)
    for _ in range(50):
        status, body, _ = await server.request("GET", "/api/calls/live", token=admin_token)
        if not body["calls"]:
            break
        await asyncio.sleep(0.05)
    assert body == {"calls": []}
    _, expert_token = await server.staff("expert")
    status, _, _ = await server.request("GET", "/api/calls/live", token=expert_token)
    assert status == 403


async def test_the_outcome_is_recorded_by_someone_who_was_in_the_call(server: Server) -> None:
    _, expert_token = await server.staff("expert")
    _, outsider_token = await server.staff("expert")
    _, technician_token = await server.staff("technician")
    _, admin_token = await server.staff("admin")
    job_id = await server.job(expert_token)
    ws, joined = await server.join_call(expert_token, job_id)
    call_id = joined["call"]["id"]
    await ws.close()

    path = f"/api/calls/{call_id}/outcome"
    status, body, _ = await server.request("POST", path, token=outsider_token,
                                           json={"first_time_fix": True})
    assert status == 403, body
    status, body, _ = await server.request("POST", path, token=technician_token,
                                           json={"first_time_fix": True})
    assert status == 403, body
    for bad in ({}, {"first_time_fix": 1}, {"first_time_fix": "yes"}):
        status, body, _ = await server.request("POST", path, token=expert_token, json=bad)
        assert status == 400, (bad, body)
    # An expert cannot tell a call they were not in from one that does not exist.
    status, body, _ = await server.request("POST", "/api/calls/999/outcome", token=expert_token,
                                           json={"first_time_fix": True})
    assert status == 403, body
    status, body, _ = await server.request("POST", "/api/calls/999/outcome", token=admin_token,
                                           json={"first_time_fix": True})
    assert status == 404, body

    status, body, _ = await server.request("POST", path, token=expert_token,
                                           json={"first_time_fix": False})
    assert (status, body) == (200, {"call_id": call_id, "job_id": job_id,
                                    "first_time_fix": False})
    # An admin may correct it; the last answer counts and shows in the job record.
    status, body, _ = await server.request("POST", path, token=admin_token,
                                           json={"first_time_fix": True})
    assert status == 200, body
    _, record, _ = await server.request("GET", f"/api/jobs/{job_id}", token=expert_token)
    assert [c["first_time_fix"] for c in record["calls"]] == [True]
    assert (await _audit_actions(server, f"job:{job_id}")).count("call.outcome") == 2


async def test_re_enabling_an_account_does_not_revive_its_old_sessions(server: Server) -> None:
    _, admin_token = await server.staff("admin")
    user, token = await server.staff("expert")
    for action in ("disable", "enable"):
        status, body, _ = await server.request("POST", f"/api/users/{user.id}/{action}",
                                               token=admin_token)
        assert status == 200, body
    status, _, _ = await server.request("GET", "/api/session", token=token)
    assert status == 401
    assert await server.sign_in(user.username)  # a new sign-in works


async def test_two_admins_demoting_each_other_at_once_leave_one(server: Server) -> None:
    first, first_token = await server.staff("admin")
    second, second_token = await server.staff("admin")
    for action in ("role", "disable", "reset"):
        answers = await asyncio.gather(*[
            server.request(method, path, token=token, json=body)
            for (method, path, body), token in [
                (_demotion(action, second.id), first_token),
                (_demotion(action, first.id), second_token)]])
        statuses = sorted(status for status, _, _ in answers)
        assert statuses in ([200, 401], [200, 409]), (action, answers)
        usable = [u for u in await server.store.users.list()
                  if u.role == "admin" and u.active and u.has_password]
        assert len(usable) == 1, (action, usable)
        # Put things back for the next round: both admins again, fresh sessions.
        for user in (first, second):
            await server.store.users.set_disabled(user.id, False)
            await server.store.users.set_role(user.id, "admin")
            await accounts.set_password(server.store, user.id, PASSWORD, CLI)
        first_token = await server.sign_in(first.username)
        second_token = await server.sign_in(second.username)


def _demotion(action: str, user_id: int) -> tuple[str, str, dict[str, object] | None]:
    if action == "role":
        return "PATCH", f"/api/users/{user_id}", {"role": "expert"}
    if action == "disable":
        return "POST", f"/api/users/{user_id}/disable", None
    return "POST", f"/api/users/{user_id}/password-reset", None


async def test_a_new_password_ends_the_sessions_made_with_the_old(server: Server) -> None:
    user, token = await server.staff("expert")
    link = await server.password_link(user)  # as `videoassist user password-link` makes
    status, body, _ = await server.request("POST", "/api/password",
                                           json={"token": link, "password": "a new long secret"})
    assert status == 200, body
    status, _, _ = await server.request("GET", "/api/session", token=token)
    assert status == 401
    status, _, _ = await server.request("GET", "/api/session", token=body["token"])
    assert status == 200
