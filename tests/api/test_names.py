"""The names people see in a call: a staff user's display name (set by an admin, at
creation or later, without signing them out), and the name a join link is made out to
(a customer's), shown to everyone in the call instead of the role. Names that could
show as something else (control or direction characters) are refused; the customer's
name stays out of the audit log, and retention clears it. Real server and database."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.support.server import Server, leave, receive
from videoassist.domain import retention

DAY = 86400.0
# Text whose direction controls would make it show as something else ("Anna" followed by
# a right-to-left override), control characters, a name one too long, zero-width and
# other invisible characters that make two names look alike or a name look empty, a
# line separator, private use, no letter at all.
SPOOFING = ["Anna\u202eamdA", "Anna\u2066x", "Anna\nBerg", "Anna\x07", "x" * 65,
            "Anna\u200bBerg", "\u200b", "\ufeffAnna", "Anna\u2028Berg", "\ue000Anna",
            "- -", "\u2060"]


async def _patch(server: Server, token: str, user_id: int, body: dict[str, Any]
                 ) -> tuple[int, Any]:
    status, answer, _ = await server.request("PATCH", f"/api/users/{user_id}", token=token,
                                             json=body)
    return status, answer


async def test_a_display_name_is_what_others_see_and_changing_it_signs_nobody_out(
        server: Server) -> None:
    _, admin_token = await server.staff("admin")
    status, body, _ = await server.request(
        "POST", "/api/users", token=admin_token,
        json={"username": "anna", "role": "expert", "display_name": "  Anna Berg  "})
    assert status == 201, body
    assert (body["user"]["display_name"], body["user"]["name"]) == ("Anna Berg", "Anna Berg")
    anna = await server.store.users.find("anna")
    assert anna is not None
    technician, technician_token = await server.staff("technician")
    job_id = await server.job(admin_token)
    ws, _ = await server.join_call(technician_token, job_id)

    # Renamed while in a call: not signed out (the socket still answers).
    status, body = await _patch(server, admin_token, technician.id,
                                {"display_name": "Tom Field"})
    assert status == 200, body
    assert (body["user"]["name"], body["connections_closed"]) == ("Tom Field", 0)
    await ws.send_json({"type": "ping"})
    assert await receive(ws) == {"type": "pong"}
    # Left and joined again, the call shows the new name; the username where none is set.
    await leave(ws)
    ws, joined = await server.join_call(technician_token, job_id)
    assert joined["you"]["name"] == "Tom Field"
    status, body = await _patch(server, admin_token, technician.id, {"display_name": None})
    assert (status, body["user"]["name"]) == (200, technician.username)
    # The audit log says who was renamed, not to what.
    rows = await server.store.db.fetchall(
        "SELECT detail FROM audit_log WHERE action = 'user.renamed' AND target = ?",
        (f"user:{technician.id}",))
    assert len(rows) == 2 and all("Tom" not in str(r[0]) for r in rows)
    await ws.close()


async def test_names_that_would_show_as_something_else_are_refused(server: Server) -> None:
    admin, admin_token = await server.staff("admin")
    user, _ = await server.staff("technician")
    job_id = await server.job(admin_token)
    for bad in SPOOFING:
        status, body = await _patch(server, admin_token, user.id, {"display_name": bad})
        assert status == 400, (bad, body)
        status, body, _ = await server.request(
            "POST", "/api/users", token=admin_token,
            json={"username": "someone", "role": "expert", "display_name": bad})
        assert status == 400, (bad, body)
        status, body, _ = await server.request(
            "POST", f"/api/jobs/{job_id}/invites", token=admin_token,
            json={"role": "customer", "name": bad})
        assert status == 400, (bad, body)
    assert (await server.store.users.get(user.id)).display_name is None
    assert await server.store.users.find("someone") is None
    # A role and a name at once: a bad role changes neither.
    status, body = await _patch(server, admin_token, user.id,
                                {"role": "customer", "display_name": "Tom"})
    assert status == 400, body
    assert (await server.store.users.get(user.id)).display_name is None
    # Nothing else of a user changes this way; an expert renames nobody.
    status, body = await _patch(server, admin_token, user.id, {"username": "tom"})
    assert status == 400, body
    _, expert_token = await server.staff("expert")
    status, body = await _patch(server, expert_token, admin.id, {"display_name": "Boss"})
    assert status == 403, body


async def test_a_link_made_out_to_a_customer_shows_their_name_and_keeps_it_from_the_audit(
        server: Server) -> None:
    _, admin_token = await server.staff("admin")
    expert, expert_token = await server.staff("expert")
    await _patch(server, admin_token, expert.id, {"display_name": "Anna Berg"})
    job_id = await server.job(expert_token)
    link = await server.invite(expert_token, job_id, name="Mr Keller")
    # The page the link opens greets them, and says who made it.
    status, body, _ = await server.request("POST", "/api/invites/inspect",
                                           json={"token": link})
    assert (status, body["name"], body["invited_by"]) == (200, "Mr Keller", "Anna Berg")
    status, redeemed = await server.redeem(link)
    assert (status, redeemed["name"], redeemed["invited_by"]) == (200, "Mr Keller", "Anna Berg")
    staff_ws, _ = await server.join_call(expert_token, job_id)
    customer_ws, joined = await server.join_call(redeemed["token"])
    assert joined["you"]["name"] == "Mr Keller"
    assert [p["name"] for p in joined["participants"]] == ["Anna Berg"]
    seen = await receive(staff_ws)
    assert (seen["type"], seen["participant"]["name"]) == ("participant.joined", "Mr Keller")
    # A link nobody named shows the role; the name is in no audit row.
    customer_ws2, joined = await server.join_call(await server.participant(expert_token, job_id))
    assert joined["you"]["name"] == "Customer"
    rows = await server.store.db.fetchall("SELECT detail, personal FROM audit_log")
    assert not any("Keller" in str(row) for row in rows)
    for ws in (staff_ws, customer_ws, customer_ws2):
        await ws.close()


@pytest.mark.parametrize("server_backend", ["sqlite", "postgresql"])
async def test_retention_clears_the_names_links_were_made_out_to(server: Server) -> None:
    _, admin_token = await server.staff("admin")
    job_id = await server.job(admin_token)
    status, body, _ = await server.request("PATCH", f"/api/jobs/{job_id}", token=admin_token,
                                           json={"retention_days": 1})
    assert status == 200, body
    kept_job = await server.job(admin_token, "Kept for good")  # no retention
    for job in (job_id, kept_job):
        link = await server.invite(admin_token, job, role="technician", name="Tom Field")
        status, redeemed = await server.redeem(link)
        assert status == 200, redeemed
        ws, _ = await server.join_call(redeemed["token"])
        await ws.send_json({"type": "note.add", "text": "Valve replaced."})
        assert (await receive(ws))["type"] == "note.added"
        await leave(ws)  # gone before the clock moves: its leaving is past retention too
    await server.store.invites.set_sent_to(
        (await server.store.invites.of_job(job_id))[0].id, "tom@example.com")
    async with asyncio.timeout(5):  # both have left, by the server's clock, before it moves
        while await server.store.db.fetchall(
                "SELECT id FROM participants WHERE left_at IS NULL"):
            await asyncio.sleep(0.02)
    server.clock.advance(2 * DAY)
    counts = await retention.purge(server.store, server.settings, server.clock())
    assert counts["names"] == 3, counts  # the link's, the participant's, the note's

    async def names(job: int) -> list[object]:
        rows = await server.store.db.fetchall(
            "SELECT i.name, i.sent_to, p.display_name, n.author_name FROM invites i"
            " JOIN participants p ON p.invite_id = i.id JOIN notes n ON n.job_id = i.job_id"
            " WHERE i.job_id = ?", (job,))
        return [tuple(r) for r in rows]
    assert await names(job_id) == [(None, None, "Technician", "Technician")]
    assert await names(kept_job) == [("Tom Field", None, "Tom Field", "Tom Field")]
    events = await server.store.jobs.events(job_id)
    assert not any("Tom" in str(e) for e in events), events
