"""A participant whose connection is lost stays in the call, away, for the same person
to come back to (docs/protocol.md, "Coming back"; issue 19): real sockets on the
in-process server, its connections cut under them. The window is counted on the
server's injected clock, which the tests move past it instead of waiting.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest

from tests.support.server import Server, ServerFactory, leave, receive, two_parties
from videoassist.appkeys import HUB, MEDIA
from videoassist.signalling.members import Member


def _drop(ws: aiohttp.ClientWebSocketResponse) -> None:
    """The network under a socket goes: its TCP connection is cut, no close frame."""
    connection = ws._response.connection  # type: ignore[attr-defined]
    assert connection is not None and connection.transport is not None
    connection.transport.abort()


async def _next(ws: aiohttp.ClientWebSocketResponse) -> dict[str, Any]:
    """The next message about someone's coming and going, or an error."""
    return await receive(ws, skip=("participant.joined",))


def _member(server: Server, job_id: int, participant_id: int) -> Member:
    return server.app[HUB].rooms[job_id].members[participant_id]


async def _away(server: Server, ws: aiohttp.ClientWebSocketResponse,
                witness: aiohttp.ClientWebSocketResponse, you: dict[str, Any]
                ) -> dict[str, Any]:
    """Cut ``ws``, whose participant is ``you``; the ``participant.away`` that
    ``witness`` gets for it."""
    _drop(ws)
    away = await _next(witness)
    assert away["type"] == "participant.away", away
    assert away["participant"] == you, away
    return away


async def _expire(server: Server, seconds: float | None = None) -> None:
    """Move the server's clock past the window (or by ``seconds``) and let the watcher
    act on it."""
    server.clock.advance(server.settings.call_away_s + 1 if seconds is None else seconds)
    await server.app[HUB].end_away_past()


async def test_a_lost_socket_makes_its_participant_away_not_gone(server: Server) -> None:
    """Before: everyone got participant.left at once, and the customer's shapes were
    forgotten."""
    staff_token, customer_token, job_id = await two_parties(server)
    expert, _ = await server.join_call(staff_token, job_id)
    customer, joined = await server.join_call(customer_token)
    you = joined["you"]
    await expert.send_json({"type": "annotation.add", "target": you["id"], "shape": {
        "id": "a1", "kind": "arrow", "points": [[0.2, 0.8], [0.4, 0.6]], "color": "#ff3b30",
        "width": 0.008}})
    assert (await _next(customer))["type"] == "annotation.add"
    now = server.clock()
    away = await _away(server, customer, expert, you)
    assert set(away) == {"type", "participant", "away_since", "away_until"}
    assert now <= away["away_since"] <= server.clock()
    assert away["away_until"] == away["away_since"] + server.settings.call_away_s == (
        away["away_since"] + 120)
    member = _member(server, job_id, you["id"])
    assert member.away and member.away_until == away["away_until"]
    [row] = [p for p in await server.store.calls.participants_of_job(job_id)
             if p.id == you["id"]]
    assert row.left_at is None
    # Whoever joins now sees it away, with its shapes; the expert none of that.
    late, late_joined = await server.join_call(staff_token, job_id)
    others = {p["id"]: p for p in late_joined["participants"]}
    assert others[you["id"]] == you | {"away_since": away["away_since"],
                                       "away_until": away["away_until"]}
    assert [k for p in others.values() for k in p if k.startswith("away")
            and p["id"] != you["id"]] == []
    assert [a["shape"]["id"] for a in late_joined["annotations"]] == ["a1"]
    await leave(late)
    await leave(expert)


async def test_the_same_link_joining_without_resume_takes_its_place(server: Server) -> None:
    """A reloaded page knows nothing of the participant it was: its token is enough.
    Before: a new participant, and the old one had left."""
    staff_token, customer_token, job_id = await two_parties(server)
    expert, _ = await server.join_call(staff_token, job_id)
    customer, joined = await server.join_call(customer_token)
    you = joined["you"]
    await _away(server, customer, expert, you)
    back_ws, back = await server.join_call(customer_token)  # no resume
    assert (back["you"], back["resumed"]) == (you, True)
    assert [p.get("away_since") for p in back["participants"]] == [None]
    assert await _next(expert) == {"type": "participant.back", "participant": you}
    member = _member(server, job_id, you["id"])
    assert not member.away and member.ws is not None and not member.closing
    # It is in the call as before: it chats, and is told of others.
    await back_ws.send_json({"type": "chat.message", "text": "Back again"})
    for ws in (expert, back_ws):
        message = await _next(ws)
        assert (message["type"], message["message"]["participant_id"]) == (
            "chat.message", you["id"]), message
    # The window it had does not end it later.
    await _expire(server)
    await expert.send_json({"type": "ping"})
    assert await _next(expert) == {"type": "pong"}
    assert len(server.app[HUB].rooms[job_id].members) == 2
    await leave(back_ws)
    await leave(expert)


async def test_another_link_s_token_does_not_take_an_away_participant_s_place(
        server: Server) -> None:
    staff_token, customer_token, job_id = await two_parties(server)
    expert, _ = await server.join_call(staff_token, job_id)
    customer, joined = await server.join_call(customer_token)
    you = joined["you"]
    await _away(server, customer, expert, you)
    # Another customer's link, a technician's, even naming it with `resume`; staff.
    others = [await server.participant(staff_token, job_id),
              await server.participant(staff_token, job_id, "technician")]
    sockets = []
    for token in others:
        ws = await server.ws()
        await ws.send_json({"type": "auth", "token": token, "resume": you["id"]})
        answer = await receive(ws)
        assert (answer["type"], answer["resumed"]) == ("joined", False), answer
        assert answer["you"]["id"] != you["id"]
        sockets.append(ws)
    staff_ws, staff_joined = await server.join_call(staff_token, job_id)
    assert staff_joined["resumed"] is False and staff_joined["you"]["id"] != you["id"]
    assert _member(server, job_id, you["id"]).away
    for ws in [*sockets, staff_ws, expert]:
        await leave(ws)


async def test_the_window_passing_makes_it_leave_and_the_call_end_with_the_last(
        server: Server) -> None:
    staff_token, customer_token, job_id = await two_parties(server)
    expert, expert_joined = await server.join_call(staff_token, job_id)
    customer, joined = await server.join_call(customer_token)
    you = joined["you"]
    call_id = joined["call"]["id"]
    await _away(server, customer, expert, you)
    await _expire(server, server.settings.call_away_s - 5)  # not yet
    assert _member(server, job_id, you["id"]).away
    await _expire(server, 6)
    left = await _next(expert)
    assert (left["type"], left["participant"]["id"]) == ("participant.left", you["id"])
    assert left["participant"]["left_at"] is not None
    assert you["id"] not in server.app[HUB].rooms[job_id].members
    # The expert's connection goes too: the call goes on while it is away, and ends
    # with its window; the watcher does it, without being asked.
    _drop(expert)
    async with asyncio.timeout(5):
        while not _member(server, job_id, expert_joined["you"]["id"]).away:
            await asyncio.sleep(0.02)
    assert (await server.store.calls.get(call_id)).ended_at is None
    server.clock.advance(server.settings.call_away_s + 1)
    async with asyncio.timeout(5):
        while job_id in server.app[HUB].rooms:
            await asyncio.sleep(0.02)
    call = await server.store.calls.get(call_id)
    assert call.ended_at is not None
    rows = await server.store.calls.participants_of_job(job_id)
    assert all(p.left_at is not None for p in rows), rows


async def test_leave_leaves_at_once(server: Server) -> None:
    staff_token, customer_token, job_id = await two_parties(server)
    expert, _ = await server.join_call(staff_token, job_id)
    customer, joined = await server.join_call(customer_token)
    await customer.send_json({"type": "leave"})
    left = await _next(expert)
    assert (left["type"], left["participant"]["id"]) == ("participant.left",
                                                         joined["you"]["id"])
    # Its token joining again is someone new.
    again, answer = await server.join_call(customer_token)
    assert answer["resumed"] is False and answer["you"]["id"] != joined["you"]["id"]
    await leave(again)
    await leave(expert)


async def test_the_others_hear_of_a_leave_before_its_media_is_closed(
        server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    """Closing a peer connection can take seconds on a busy machine: participant.left
    goes out first. Here the leaver's media close waits until the expert has heard of
    the leave; the other way round, the expert would hear nothing (its wait fails).
    Its media is withdrawn (nothing forwarded, nobody given its tracks) before the
    others are told: while it is still a member."""
    staff_token, customer_token, job_id = await two_parties(server)
    expert, _ = await server.join_call(staff_token, job_id)
    customer, joined = await server.join_call(customer_token)
    media = server.app[MEDIA]
    close_media, withdraw_media = media.leave, media.withdraw
    heard, closed, withdrawn_as_member = asyncio.Event(), [], []

    def withdraw(participant_id: int) -> None:
        withdrawn_as_member.append(participant_id in server.app[HUB].rooms[job_id].members)
        withdraw_media(participant_id)

    async def once_heard(participant_id: int) -> None:
        async with asyncio.timeout(10):
            await heard.wait()
        await close_media(participant_id)
        closed.append(participant_id)

    monkeypatch.setattr(media, "leave", once_heard)
    monkeypatch.setattr(media, "withdraw", withdraw)
    await customer.send_json({"type": "leave"})
    left = await _next(expert)
    assert (left["type"], left["participant"]["id"]) == ("participant.left",
                                                         joined["you"]["id"])
    heard.set()
    async with asyncio.timeout(10):
        while not closed:
            await asyncio.sleep(0.02)
    # (Withdrawn first by the hub, while a member; leave's own withdraw then finds
    # nothing left to do.)
    assert closed == [joined["you"]["id"]] and withdrawn_as_member[0] is True
    await leave(expert)


async def test_with_no_window_a_lost_socket_leaves_at_once(
        server_factory: ServerFactory) -> None:
    server = await server_factory(call_away_s=0)
    staff_token, customer_token, job_id = await two_parties(server)
    expert, _ = await server.join_call(staff_token, job_id)
    customer, joined = await server.join_call(customer_token)
    _drop(customer)
    left = await _next(expert)
    assert (left["type"], left["participant"]["id"]) == ("participant.left",
                                                         joined["you"]["id"])
    await leave(expert)


async def test_a_removed_participant_is_not_away_nor_one_whose_link_is_withdrawn(
        server: Server) -> None:
    _, admin_token = await server.staff("admin")
    maker, maker_token = await server.staff("expert")
    job_id = await server.job(admin_token)
    expert, _ = await server.join_call(admin_token, job_id)
    customer, customer_joined = await server.join_call(
        await server.participant(admin_token, job_id))
    technician, technician_joined = await server.join_call(
        await server.participant(maker_token, job_id, "technician"))
    await expert.send_json({"type": "participant.remove",
                            "target": customer_joined["you"]["id"]})
    assert (await _next(customer))["code"] == "removed"
    left = await _next(expert)
    assert (left["type"], left["participant"]["id"]) == ("participant.left",
                                                         customer_joined["you"]["id"])
    # The maker of the technician's link is disabled: the link is withdrawn.
    status, _, _ = await server.request("POST", f"/api/users/{maker.id}/disable",
                                        token=admin_token)
    assert status == 200
    error = await receive(technician, skip=("participant.joined", "participant.left"))
    assert error["code"] == "link_revoked", error
    left = await _next(expert)
    assert (left["type"], left["participant"]["id"]) == ("participant.left",
                                                         technician_joined["you"]["id"])
    assert list(server.app[HUB].rooms[job_id].members) == [_only(server, job_id)]
    await leave(expert)


def _only(server: Server, job_id: int) -> int:
    [member] = server.app[HUB].rooms[job_id].members.values()
    return member.id


async def test_an_away_participant_removed_or_withdrawn_leaves_at_once(
        server: Server) -> None:
    """No window is waited out for a participant that may not come back."""
    _, admin_token = await server.staff("admin")
    maker, maker_token = await server.staff("expert")
    job_id = await server.job(admin_token)
    expert, _ = await server.join_call(admin_token, job_id)
    customer_token = await server.participant(admin_token, job_id)
    customer, customer_joined = await server.join_call(customer_token)
    technician, technician_joined = await server.join_call(
        await server.participant(maker_token, job_id, "technician"))
    await _away(server, customer, expert, customer_joined["you"])
    await _away(server, technician, expert, technician_joined["you"])
    await expert.send_json({"type": "participant.remove",
                            "target": customer_joined["you"]["id"]})
    left = await _next(expert)
    assert (left["type"], left["participant"]["id"]) == ("participant.left",
                                                         customer_joined["you"]["id"])
    status, _, _ = await server.request("POST", f"/api/users/{maker.id}/disable",
                                        token=admin_token)
    assert status == 200
    left = await _next(expert)
    assert (left["type"], left["participant"]["id"]) == ("participant.left",
                                                         technician_joined["you"]["id"])
    # The removed customer's token does not come back.
    ws = await server.ws()
    await ws.send_json({"type": "auth", "token": customer_token})
    assert (await receive(ws))["code"] == "unauthorized"
    await ws.close()
    await leave(expert)


async def test_ending_the_call_or_closing_the_job_ends_it_for_those_away_too(
        server: Server) -> None:
    staff_token, customer_token, job_id = await two_parties(server)
    expert, _ = await server.join_call(staff_token, job_id)
    customer, joined = await server.join_call(customer_token)
    await _away(server, customer, expert, joined["you"])
    await expert.send_json({"type": "call.end"})
    assert (await _next(expert))["code"] == "call_ended"
    async with asyncio.timeout(5):
        while job_id in server.app[HUB].rooms:
            await asyncio.sleep(0.02)
    assert (await server.store.calls.get(joined["call"]["id"])).ended_at is not None
    # A job closed while its only participant is away: its call ends at once.
    customer, joined = await server.join_call(customer_token)
    _drop(customer)
    async with asyncio.timeout(5):
        while not _member(server, job_id, joined["you"]["id"]).away:
            await asyncio.sleep(0.02)
    status, _, _ = await server.request("POST", f"/api/jobs/{job_id}/close", token=staff_token)
    assert status == 200
    async with asyncio.timeout(5):
        while job_id in server.app[HUB].rooms:
            await asyncio.sleep(0.02)
    assert (await server.store.calls.get(joined["call"]["id"])).ended_at is not None


async def test_a_server_that_stops_leaves_nobody_away(server: Server) -> None:
    staff_token, customer_token, job_id = await two_parties(server)
    expert, _ = await server.join_call(staff_token, job_id)
    customer, joined = await server.join_call(customer_token)
    await _away(server, customer, expert, joined["you"])
    hub = server.app[HUB]
    async with asyncio.timeout(10):
        await hub.close_all()
        await hub.wait_idle()
    assert hub.members() == []
    assert (await server.store.calls.get(joined["call"]["id"])).ended_at is not None
    rows = await server.store.calls.participants_of_job(job_id)
    assert all(p.left_at is not None for p in rows), rows


async def test_dropping_and_joining_again_never_passes_the_link_s_limit(
        server: Server) -> None:
    """Each drop leaves a participant away, holding its place; each join takes one
    back. Before: each drop left at once, and each join was someone new."""
    limit = server.settings.call_max_connections_per_link
    staff_token, customer_token, job_id = await two_parties(server)
    expert, _ = await server.join_call(staff_token, job_id)
    sockets = [await server.join_call(customer_token) for _ in range(limit)]
    ids = {joined["you"]["id"] for _, joined in sockets}
    for _ in range(3):
        for ws, joined in sockets:
            await _away(server, ws, expert, joined["you"])
        sockets = []
        for _ in range(limit):
            ws, joined = await server.join_call(customer_token)
            assert joined["resumed"] is True, joined
            assert (await _next(expert))["type"] == "participant.back"
            sockets.append((ws, joined))
        assert {joined["you"]["id"] for _, joined in sockets} == ids
        ws = await server.ws()
        await ws.send_json({"type": "auth", "token": customer_token})
        assert (await receive(ws))["code"] == "too_many_connections"
        await ws.close()
        assert len(server.app[HUB].rooms[job_id].members) == limit + 1
    # One away and the link at its limit: the next join takes it back, the one after
    # is refused.
    ws, joined = sockets.pop()
    await _away(server, ws, expert, joined["you"])
    back, answer = await server.join_call(customer_token)
    assert answer["you"]["id"] == joined["you"]["id"]
    refused = await server.ws()
    await refused.send_json({"type": "auth", "token": customer_token})
    assert (await receive(refused))["code"] == "too_many_connections"
    await refused.close()
    for ws in [back, *(ws for ws, _ in sockets), expert]:
        await leave(ws)


async def test_an_away_participant_holds_its_place_in_a_full_call(
        server_factory: ServerFactory) -> None:
    server = await server_factory(call_max_participants=2)
    staff_token, customer_token, job_id = await two_parties(server)
    expert, _ = await server.join_call(staff_token, job_id)
    customer, joined = await server.join_call(customer_token)
    await _away(server, customer, expert, joined["you"])
    ws = await server.ws()
    await ws.send_json({"type": "auth", "token": await server.participant(
        staff_token, job_id, "technician")})
    assert (await receive(ws))["code"] == "call_full"
    await ws.close()
    back, answer = await server.join_call(customer_token)
    assert answer["resumed"] is True
    await leave(back)
    await leave(expert)


async def test_a_staff_member_signing_in_again_takes_its_away_participant_back(
        server: Server) -> None:
    """An expert whose page reloaded signs in again (a new token: nothing of the old
    one was kept) and is back in the call as the participant it was."""
    user, staff_token = await server.staff("expert")
    job_id = await server.job(staff_token)
    expert, joined = await server.join_call(staff_token, job_id)
    customer, _ = await server.join_call(await server.participant(staff_token, job_id))
    await _away(server, expert, customer, joined["you"])
    token = await server.sign_in(user.username)
    assert token != staff_token
    back_ws, back = await server.join_call(token, job_id)
    assert (back["you"], back["resumed"]) == (joined["you"], True)
    assert await _next(customer) == {"type": "participant.back", "participant": joined["you"]}
    await leave(back_ws)
    await leave(customer)


async def test_a_staff_member_signed_out_while_away_is_not_taken_back(
        server: Server) -> None:
    """A role change signs a user out: its participant away leaves, and its new
    session joins as someone new."""
    _, admin_token = await server.staff("admin")
    user, staff_token = await server.staff("expert")
    job_id = await server.job(staff_token)
    expert, joined = await server.join_call(staff_token, job_id)
    customer, _ = await server.join_call(await server.participant(staff_token, job_id))
    await _away(server, expert, customer, joined["you"])
    status, body, _ = await server.request("PATCH", f"/api/users/{user.id}",
                                           token=admin_token, json={"role": "technician"})
    assert status == 200, body
    left = await _next(customer)
    assert (left["type"], left["participant"]["id"]) == ("participant.left",
                                                         joined["you"]["id"])
    again, answer = await server.join_call(await server.sign_in(user.username), job_id)
    assert answer["resumed"] is False and answer["you"]["id"] != joined["you"]["id"]
    await leave(again)
    await leave(customer)


async def test_of_several_away_the_one_resume_names_else_the_most_recent_comes_back(
        server: Server) -> None:
    staff_token, customer_token, job_id = await two_parties(server)
    expert, _ = await server.join_call(staff_token, job_id)
    first, first_joined = await server.join_call(customer_token)
    second, second_joined = await server.join_call(customer_token)
    await _away(server, first, expert, first_joined["you"])
    await _away(server, second, expert, second_joined["you"])
    ws = await server.ws()
    await ws.send_json({"type": "auth", "token": customer_token,
                        "resume": first_joined["you"]["id"]})
    named = await receive(ws)
    assert (named["you"], named["resumed"]) == (first_joined["you"], True)
    latest, latest_joined = await server.join_call(customer_token)
    assert (latest_joined["you"], latest_joined["resumed"]) == (second_joined["you"], True)
    for socket in (ws, latest, expert):
        await leave(socket)


async def test_a_socket_cut_while_it_is_let_in_leaves_its_participant_away(
        server: Server) -> None:
    """Before: sending ``joined`` on the dead socket failed after the hub had taken the
    participant in, and it stayed in the call, present to the others, with nothing
    serving it."""
    staff_token, customer_token, job_id = await two_parties(server)
    expert, _ = await server.join_call(staff_token, job_id)
    customer = await server.ws()
    await customer.send_json({"type": "auth", "token": customer_token})
    _drop(customer)  # gone before the server's answer can be written
    joined = await receive(expert)
    assert joined["type"] == "participant.joined", joined
    away = await _next(expert)
    assert away["type"] == "participant.away", away
    assert away["participant"] == joined["participant"]
    assert _member(server, job_id, away["participant"]["id"]).away
    await leave(expert)
