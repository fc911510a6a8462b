"""Calls that come back: a client whose media or socket was lost returns to the same
call, with real aiortc clients and the real server (docs/protocol.md, "Coming back").

A new peer connection's offer on the old socket (what the web client sends when its
media fails) gets an answer from a new media session, whose tracks go to the viewers
over the transceivers that carried the old ones; a new socket naming the participant
it was (``resume``) takes that participant's place; whoever joins or comes back gets
the shapes drawn meanwhile and the chat since what it had; a chat line resent with its
``client_id`` is stored once. One test pauses a real server process for 25 s.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from tests.support.metrics import scrape, value
from tests.support.peers import MediaClient, Received, check_decodable, published
from tests.support.process import ServeProcess, ok
from tests.support.server import PASSWORD, Clock, Server, leave, receive, two_parties
from videoassist.appkeys import MEDIA
from videoassist.config import Settings
from videoassist.media.frames import is_keyframe

ARROW = {"id": "a1", "kind": "arrow", "points": [[0.2, 0.8], [0.45, 0.55]],
         "color": "#ff3b30", "width": 0.008}
CIRCLE = {"id": "c1", "kind": "circle", "points": [[0.5, 0.5], [0.6, 0.5]],
          "color": "#ffcc00", "width": 0.006}
# The stall of the finding: longer than Chrome takes to call its ICE failed,
# shorter than aiortc's 30 s of failed consent checks.
STALL_S = 25.0


def since(received: Received, moment: float) -> Received:
    """The frames of ``received`` that arrived after ``moment``."""
    first = next((i for i, t in enumerate(received.times) if t > moment), len(received.times))
    return Received(received.track, times=received.times[first:], pts=received.pts[first:],
                    frames=len(received.times) - first, encoded=received.encoded[first:])


async def fresh_video(viewer: MediaClient, publisher: MediaClient, moment: float,
                      frames: int = 10, timeout: float = 15.0) -> Received:
    """A run of the publisher's video that reached the viewer after ``moment``: the
    newest keyframe, once ``frames`` frames have followed it. A source a slot switched
    to starts at a keyframe, so the run is one source's, the one carrying video now."""
    async with asyncio.timeout(timeout):
        while True:
            received = viewer.remote(publisher.participant_id, "video")
            if received is not None:
                run = since(received, moment)
                starts = [i for i, data in enumerate(run.encoded) if is_keyframe("VP8", data)]
                if starts and len(run.encoded) - starts[-1] >= frames:
                    return since(run, run.times[starts[-1]] - 1e-6)
            await asyncio.sleep(0.02)


async def in_call(server: Server) -> tuple[MediaClient, MediaClient]:
    """An expert and a customer, each publishing a camera and a microphone and
    receiving the other's (video kept encoded, to compare with what was sent), media
    flowing both ways."""
    staff_token, customer_token, job_id = await two_parties(server)
    expert = await MediaClient(server, staff_token, job_id, encoded=True,
                               keyframes_on_request=True).start()
    customer = await MediaClient(server, customer_token, encoded=True,
                                 keyframes_on_request=True).start()
    await expert.wait_remote(customer.participant_id, "video", frames=5)
    await customer.wait_remote(expert.participant_id, "video", frames=5)
    return expert, customer


async def test_an_offer_from_a_new_peer_connection_gets_an_answer_and_media_flows(
        server: Server) -> None:
    """The web client's way back after its media failed: a new RTCPeerConnection's
    offer on the same socket, without any new field. Before: aiortc's
    ``setLocalDescription`` raised ``ValueError: None is not in list`` on the old
    session (the server's sending transceivers were never in this offer), the client
    got ``bad_request`` and no answer."""
    expert, customer = await in_call(server)
    router = server.app[MEDIA]
    try:
        old = router.sessions[customer.participant_id]  # type: ignore[attr-defined]
        transceivers = len(expert.pc.getTransceivers())
        offers = expert.offers_answered
        moment = time.monotonic()
        await customer.restart_media()  # no "restart": an old client
        video = await fresh_video(expert, customer, moment)
        check_decodable(video, published(customer))  # the very frames sent, whole
        # The old session is closed, its peer connection with it; the expert's
        # connection carries the new tracks on the m-sections it had.
        assert old.closed and old.pc.connectionState == "closed"
        for transceiver in old.pc.getTransceivers():  # its ICE sockets closed with it
            dtls = transceiver.receiver.transport
            assert dtls.state == "closed" and dtls.transport.state == "closed"
        new = router.sessions[customer.participant_id]  # type: ignore[attr-defined]
        assert new is not old and new.pc.connectionState == "connected"
        assert len(expert.pc.getTransceivers()) == transceivers
        assert value(await scrape(server), "videoassist_peer_connections_restarted_total") == 1
        # One offer tells the expert the new track ids (a=msid), none made an m-section
        # inactive in between.
        async with asyncio.timeout(5):
            while expert.offers_answered == offers:
                await asyncio.sleep(0.02)
        assert "a=inactive" not in expert.server_sdps[-1]
        # media.tracks names the new publications (after the first, of the old ones).
        wanted = {p.id for p, _ in new.publications.values()}
        async with asyncio.timeout(5):
            while True:
                tracks = await expert.next_message("media.tracks")
                if {t["id"] for t in tracks["tracks"]} == wanted:
                    break
        # The customer receives nothing it should not, and its re-offer said nothing wrong.
        assert all(m["type"] != "error" for m in list(customer.messages._queue))  # type: ignore[attr-defined]
    finally:
        await customer.close()
        await expert.close()


async def test_a_viewer_that_restarts_with_restart_true_sees_the_publisher_again(
        server: Server) -> None:
    expert, customer = await in_call(server)
    try:
        moment = time.monotonic()
        await expert.restart_media(restart=True)
        video = await fresh_video(expert, customer, moment)
        check_decodable(video, published(customer))
        assert len(server.app[MEDIA].sessions) == 2  # type: ignore[attr-defined]
    finally:
        await customer.close()
        await expert.close()


async def test_a_new_socket_resumes_the_participant_in_its_place(server: Server) -> None:
    """The customer's network drops without a close; its new socket names the
    participant it was and takes its place: same id, nobody told it left, the old
    socket closed, the link's connections not counted twice, media back."""
    expert, customer = await in_call(server)
    try:
        before = customer.participant_id
        while not expert.messages.empty():  # the customer's join, its tracks
            expert.messages.get_nowait()
        old_ws = customer.ws
        assert old_ws is not None
        moment = time.monotonic()
        joined = await customer.reconnect()
        assert joined["resumed"] is True
        assert joined["you"]["id"] == before
        assert [p["id"] for p in joined["participants"]] == [expert.participant_id]
        closing = await old_ws.receive(timeout=5)
        while closing.type == aiohttp.WSMsgType.TEXT:
            closing = await old_ws.receive(timeout=5)
        assert (closing.type, closing.data, closing.extra) == (
            aiohttp.WSMsgType.CLOSE, 4410, "replaced")
        video = await fresh_video(expert, customer, moment)
        check_decodable(video, published(customer))
        # The expert heard of no leave or join, and the customer's row stays open.
        queued = [m["type"] for m in list(expert.messages._queue)]  # type: ignore[attr-defined]
        assert "participant.left" not in queued and "participant.joined" not in queued
        connections = await server.store.calls.participants_of_job(expert.job_id or 0)
        assert [(p.id, p.left_at) for p in connections if p.role == "customer"] == [
            (before, None)]
    finally:
        await customer.close()
        await expert.close()


async def test_a_resume_naming_someone_else_s_participant_joins_anew(server: Server) -> None:
    """Participant ids are no secret (everyone in the call sees them): a resume takes a
    participant's place only with the token of the same person."""
    staff_token, customer_token, job_id = await two_parties(server)
    expert, joined = await server.join_call(staff_token, job_id)
    customer, _ = await server.join_call(customer_token)
    other = await server.participant(staff_token, job_id, "technician")
    try:
        for token in (customer_token, other):
            ws = await server.ws()
            await ws.send_json({"type": "auth", "token": token, "resume": joined["you"]["id"]})
            answer = await receive(ws)
            assert answer["resumed"] is False and answer["you"]["id"] != joined["you"]["id"]
            await leave(ws)
        await expert.send_json({"type": "ping"})
        assert (await receive(expert, skip=("participant.joined", "participant.left"))
                )["type"] == "pong"
    finally:
        await customer.close()
        await expert.close()


async def test_coming_back_often_never_runs_into_the_link_s_connection_limit(
        server: Server) -> None:
    """A phone that changes network four times in a row, each time before the server
    noticed the last socket had gone: with ``resume`` each new socket replaces the
    last; without it, each lost socket holds one of the link's 3 connections until its
    heartbeat fails, and the fourth join is refused."""
    _, customer_token, _ = await two_parties(server)
    lost = []
    try:
        ws, joined = await server.join_call(customer_token)
        first = joined["you"]["id"]
        for _ in range(4):
            lost.append(ws)  # never read again, never closed: a dead network
            ws = await server.ws()
            await ws.send_json({"type": "auth", "token": customer_token, "resume": first})
            answer = await receive(ws)
            assert (answer["type"], answer["you"]["id"], answer["resumed"]) == (
                "joined", first, True), answer
        lost.append(ws)
        refused = None
        for _ in range(3):  # the old way: a new participant each time
            ws = await server.ws()
            await ws.send_json({"type": "auth", "token": customer_token})
            answer = await receive(ws)
            lost.append(ws)
            if answer["type"] == "error":
                refused = answer
                break
        assert refused is not None and refused["code"] == "too_many_connections", refused
    finally:
        for ws in lost:
            await ws.close()


async def test_media_that_outlived_its_socket_goes_on_with_the_new_one(
        server: Server) -> None:
    """Only the socket was lost (the media path still works): the client resumes on a
    new socket and keeps its peer connection. Its media session stays, and the server's
    offers (someone new publishes) come on the new socket."""
    expert, customer = await in_call(server)
    technician = None
    try:
        moment = time.monotonic()
        joined = await customer.reconnect(media=False)
        assert joined["resumed"] is True
        video = await fresh_video(customer, expert, moment)
        check_decodable(video, published(expert))
        assert expert.job_id is not None
        technician = await MediaClient(
            server, await server.participant(expert.token, expert.job_id, "technician"),
            keyframes_on_request=True).start()
        await customer.wait_remote(technician.participant_id, "video", frames=5)
    finally:
        if technician is not None:
            await technician.close()
        await customer.close()
        await expert.close()


async def test_a_participant_away_keeps_its_media_and_a_socket_without_resume_takes_it(
        server: Server) -> None:
    """Only the socket is lost, under it (the media path still works): the participant
    is away, its media session kept and its video still reaching the expert. A new
    socket with the same token and no ``resume`` (a reloaded page knows nothing of the
    participant it was) takes its place and its media session, as a resume does.
    Before: the participant left at once, its media session closed with it."""
    expert, customer = await in_call(server)
    router = server.app[MEDIA]
    try:
        session = router.sessions[customer.participant_id]  # type: ignore[attr-defined]
        assert customer.ws is not None
        customer.ws._response.connection.transport.abort()  # type: ignore[union-attr]
        away = await expert.next_message("participant.away")
        assert away["participant"]["id"] == customer.participant_id
        video = await fresh_video(expert, customer, time.monotonic())
        check_decodable(video, published(customer))
        assert router.sessions[customer.participant_id] is session  # type: ignore[attr-defined]
        before = customer.participant_id
        joined = await customer.reconnect(resume=False, media=False)
        assert (joined["you"]["id"], joined["resumed"]) == (before, True)
        back = await expert.next_message("participant.back")
        assert back["participant"]["id"] == before
        assert router.sessions[before] is session  # type: ignore[attr-defined]
        video = await fresh_video(customer, expert, time.monotonic())
        check_decodable(video, published(expert))
    finally:
        await customer.close()
        await expert.close()


async def test_the_media_of_a_participant_away_is_closed_when_its_window_passes(
        server: Server) -> None:
    expert, customer = await in_call(server)
    router = server.app[MEDIA]
    try:
        session = router.sessions[customer.participant_id]  # type: ignore[attr-defined]
        assert customer.ws is not None
        customer.ws._response.connection.transport.abort()  # type: ignore[union-attr]
        await expert.next_message("participant.away")
        server.clock.advance(server.settings.call_away_s + 1)
        left = await expert.next_message("participant.left")
        assert left["participant"]["id"] == customer.participant_id
        async with asyncio.timeout(5):
            while customer.participant_id in router.sessions:  # type: ignore[attr-defined]
                await asyncio.sleep(0.05)
        assert session.closed
    finally:
        await customer.close()
        await expert.close()


async def test_a_chat_line_resent_after_a_reconnection_is_stored_once(server: Server) -> None:
    staff_token, customer_token, job_id = await two_parties(server)
    expert, _ = await server.join_call(staff_token, job_id)
    customer = await MediaClient(server, customer_token, video=False, audio=False,
                                 read=False).start()
    try:
        assert customer.ws is not None
        await customer.ws.send_json({"type": "chat.message", "text": "It clicks twice",
                                     "client_id": "m-1"})
        first = await receive(expert, skip=("participant.joined", "media.tracks"))
        assert first["type"] == "chat.message" and first["client_id"] == "m-1"
        # The answer never reached the customer (its network dropped): it resends on
        # its new socket, with the same client id.
        joined = await customer.reconnect(chat_after=0, media=False)
        assert [m["id"] for m in joined["chat"]] == [first["message"]["id"]]
        assert customer.ws is not None
        await customer.ws.send_json({"type": "chat.message", "text": "It clicks twice",
                                     "client_id": "m-1"})
        again = await customer.next_message("chat.message")
        assert again == first  # as stored the first time
        await customer.ws.send_json({"type": "chat.message", "text": "And hisses",
                                     "client_id": "m-2"})
        second = await receive(expert)
        assert (second["type"], second["message"]["text"]) == ("chat.message", "And hisses")
        status, body, _ = await server.request("GET", f"/api/jobs/{job_id}", token=staff_token)
        assert status == 200, body
        assert [m["text"] for m in body["messages"]] == ["It clicks twice", "And hisses"]
    finally:
        await customer.close()
        await expert.close()


async def test_shapes_drawn_while_a_participant_was_away_are_there_on_its_return(
        server: Server) -> None:
    staff_token, customer_token, job_id = await two_parties(server)
    expert, _ = await server.join_call(staff_token, job_id)
    customer = await MediaClient(server, customer_token, video=False, audio=False,
                                 read=False).start()
    try:
        target = customer.participant_id
        await receive(expert, skip=("media.tracks",))  # participant.joined
        # The customer's network is gone (its socket unread); the expert draws on.
        assert customer.ws is not None
        customer._tasks[0].cancel()
        for shape in (ARROW, CIRCLE):
            await expert.send_json({"type": "annotation.add", "target": target,
                                    "shape": shape})
        await expert.send_json({"type": "annotation.remove", "target": target, "id": "a1"})
        await expert.send_json({"type": "annotation.pointer", "target": target, "x": 0.5,
                                "y": 0.5})
        await expert.send_json({"type": "ping"})
        assert (await receive(expert))["type"] == "pong"  # all of it handled
        joined = await customer.reconnect(media=False)
        assert joined["annotations"] == [
            {"from": joined["participants"][0]["id"], "target": target, "shape": CIRCLE}]
        # Someone who joins now gets them too; a clear leaves nothing to give.
        late, late_joined = await server.join_call(staff_token, job_id)
        assert [a["shape"]["id"] for a in late_joined["annotations"]] == ["c1"]
        await expert.send_json({"type": "annotation.clear", "target": target})
        await expert.send_json({"type": "ping"})
        assert (await receive(expert, skip=("participant.joined",)))["type"] == "pong"
        await late.close()
        _, after_clear = await server.join_call(staff_token, job_id)
        assert after_clear["annotations"] == []
    finally:
        await customer.close()
        await expert.close()


# -- a real server process, paused ---------------------------------------------------


@pytest.fixture
async def process(tmp_path: Path) -> AsyncIterator[tuple[ServeProcess, Server]]:
    """``videoassist serve`` as its own process (a pause stops it alone) with an expert
    and a job, and a client of it."""
    data_dir = tmp_path / "data"
    ok(data_dir, "user", "add", "bob", "--role", "expert", "--password-stdin",
       stdin=PASSWORD + "\n")
    assert ok(data_dir, "job", "create", "Boiler").strip() == "1"
    served = ServeProcess(data_dir, env={"VIDEOASSIST_WORKERS": "1"})  # one process to stop
    http = aiohttp.ClientSession()
    try:
        await asyncio.to_thread(served.wait_ready, 60)
        yield served, Server(served.url, Settings(port=served.port), None,  # type: ignore[arg-type]
                             Clock(), http)
    finally:
        await http.close()
        if served.proc.poll() is None:
            os.kill(served.proc.pid, signal.SIGCONT)
        await asyncio.to_thread(served.stop, 10)
        print(served.output)  # shown when the test failed


async def test_after_the_server_stalled_25_s_both_sides_come_back(
        process: tuple[ServeProcess, Server]) -> None:
    """The issue's finding, with aiortc clients: the server process stopped for 25 s
    (SIGSTOP), then resumed. The customer does what the web client does when its media
    fails (a new peer connection's offer on its socket, which survived: the kernel kept
    the TCP connection), the expert what a client does whose socket was lost (a new
    socket naming the participant it was, then a new peer connection). Each gets the
    other's video again: frames the other sent after the stall, whole. Only this test
    waits the whole 25 s: the mechanisms are tested without a stall above."""
    served, server = process
    token = await server.sign_in("bob")
    expert = await MediaClient(server, token, 1, encoded=True, keyframes_on_request=True
                               ).start()
    customer = await MediaClient(server, await server.participant(token, 1), encoded=True,
                                 keyframes_on_request=True).start()
    try:
        await expert.wait_remote(customer.participant_id, "video", frames=5)
        await customer.wait_remote(expert.participant_id, "video", frames=5)
        os.kill(served.proc.pid, signal.SIGSTOP)
        try:
            await asyncio.sleep(STALL_S)
        finally:
            os.kill(served.proc.pid, signal.SIGCONT)
        moment = time.monotonic()
        await customer.restart_media()
        joined = await expert.reconnect()
        assert joined["resumed"] is True
        for viewer, publisher in ((expert, customer), (customer, expert)):
            video = await fresh_video(viewer, publisher, moment)
            check_decodable(video, published(publisher))
        assert "Traceback" not in served.output
    finally:
        await customer.close()
        await expert.close()
