"""Real aiortc clients through the real server: media forwarded, not transcoded."""

from __future__ import annotations

import asyncio
import gc
import itertools
import threading
import weakref

import pytest
from aiortc import RTCConfiguration, RTCPeerConnection

from tests.support.clips import read_id, video_clip
from tests.support.peers import MediaClient, published
from tests.support.server import Server, receive
from tests.support.server import two_parties as _two_parties
from videoassist.appkeys import MEDIA
from videoassist.media import session as session_module
from videoassist.media.forward import VIDEO_QUEUE_FRAMES

CLIP_FRAMES = len(video_clip())


async def test_video_and_audio_both_ways_with_frame_ids_in_order(server: Server) -> None:
    staff_token, customer_token, job_id = await _two_parties(server)
    expert = await MediaClient(server, staff_token, job_id).start()
    customer = await MediaClient(server, customer_token).start()
    try:
        for viewer, publisher in ((expert, customer), (customer, expert)):
            video = await viewer.wait_remote(publisher.participant_id, "video", frames=30)
            audio = await viewer.wait_remote(publisher.participant_id, "audio", frames=25)
            assert audio.frames >= 25
            # Ids go up by one a frame (a few may be lost), wrapping at the clip's end.
            steps = [(b - a) % CLIP_FRAMES for a, b in itertools.pairwise(video.ids)]
            assert all(1 <= step <= 3 for step in steps), video.ids
        router = server.app[MEDIA]
        # Nothing is decoded on the server: its receivers' tracks stay empty.
        for session in router.sessions.values():  # type: ignore[attr-defined]
            for publication, transceiver in session.publications.values():
                assert publication.frames_in > 0
                assert transceiver.receiver.track._queue.qsize() == 0
    finally:
        await customer.close()
        await expert.close()


async def test_a_vanished_client_leaves_nothing_behind(server: Server) -> None:
    staff_token, customer_token, job_id = await _two_parties(server)
    threads_before = {t.name for t in threading.enumerate()}
    tasks_before = asyncio.all_tasks()
    expert = await MediaClient(server, staff_token, job_id).start()
    customer = await MediaClient(server, customer_token).start()
    await expert.wait_remote(customer.participant_id, "video", frames=5)
    router = server.app[MEDIA]
    assert len(router.sessions) == 2  # type: ignore[attr-defined]
    # The server's side of it all: peer connections, sessions, publications, tracks.
    server_side = []
    for session in router.sessions.values():  # type: ignore[attr-defined]
        server_side += [weakref.ref(session), weakref.ref(session.pc)]
        server_side += [weakref.ref(p) for p, _ in session.publications.values()]
        server_side += [weakref.ref(slot.track) for slot in session.slots]
        server_side += [weakref.ref(slot.source) for slot in session.slots if slot.source]
    del session
    # The customer vanishes: its socket drops without a leave, its media stops.
    assert customer.ws is not None
    customer.ws._response.connection.transport.close()  # type: ignore[union-attr]
    await customer.pc.close()
    async with asyncio.timeout(5):
        while len(router.sessions) != 1:  # type: ignore[attr-defined]
            await asyncio.sleep(0.05)
    await expert.close()
    await customer.close()
    async with asyncio.timeout(5):
        while router.sessions:  # type: ignore[attr-defined]
            await asyncio.sleep(0.05)
        while [t for t in threading.enumerate()
               if t.name.endswith("-decoder") and t.name not in threads_before]:
            await asyncio.sleep(0.05)
        # No task of either client's media or of its socket lives on.
        while asyncio.all_tasks() - tasks_before - {asyncio.current_task()}:
            await asyncio.sleep(0.05)
    assert not router.rooms  # type: ignore[attr-defined]
    gc.collect()
    alive = [ref() for ref in server_side if ref() is not None]
    assert not alive, alive


async def test_a_late_viewer_gets_a_picture_within_500_ms(server: Server) -> None:
    """The publisher's keyframes are 2 s apart; the viewer must not wait for one."""
    staff_token, customer_token, job_id = await _two_parties(server)
    customer = await MediaClient(server, customer_token, audio=False).start()
    try:
        await asyncio.sleep(1.2)  # well into the publisher's group of pictures
        expert = await MediaClient(server, staff_token, job_id, video=False,
                                   audio=False).start()
        try:
            async with asyncio.timeout(10):
                while expert.pc.connectionState != "connected":
                    await asyncio.sleep(0.01)
            connected = asyncio.get_running_loop().time()
            video = await expert.wait_remote(customer.participant_id, "video", frames=1,
                                             timeout=5)
            assert video.times[0] - connected < 0.5
        finally:
            await expert.close()
    finally:
        await customer.close()


async def test_a_viewer_slow_to_connect_starts_from_a_fresh_keyframe(server: Server) -> None:
    """Frames wait for a viewer's sender to start, not in its queue.

    The viewer takes 2.5 s to answer the server's offer, as a loaded phone might, so
    its sender starts that long after it subscribed. It must still get a picture at
    once, and a recent one: not a queue of seconds-old frames, nor (once those have
    overflowed the queue) a wait for the publisher's next keyframe, which this
    publisher, like the benchmark's, only sends every 2 s whatever it is asked.
    """
    staff_token, customer_token, job_id = await _two_parties(server)
    customer = await MediaClient(server, customer_token, audio=False).start()
    try:
        await asyncio.sleep(1.5)  # late in the publisher's group of pictures
        expert = await MediaClient(server, staff_token, job_id, video=False, audio=False,
                                   answer_delay=2.5).start()
        try:
            video = await expert.wait_remote(customer.participant_id, "video", frames=1,
                                             timeout=10)
            answered = expert.answered_at[0]
            sent_then = published(customer).frame_id
            assert video.times[0] - answered < 0.5
            await expert.wait_remote(customer.participant_id, "video", frames=2)
            # The first picture is the cached keyframe: at most one group of pictures
            # (60 frames) older than what the publisher was sending when it arrived,
            # give or take the half second this test may take to look (15 frames).
            assert (sent_then - video.ids[0]) % CLIP_FRAMES <= 60 + 15, (video.ids[0],
                                                                        sent_then)
            # Nothing was queued for it before its sender started, so nothing was
            # dropped or waited for.
            track = server.app[MEDIA].sessions[expert.participant_id].subscriptions[  # type: ignore[attr-defined]
                f"p{customer.participant_id}-video-0"].source
            assert track.dropped == 0
        finally:
            await expert.close()
    finally:
        await customer.close()


async def test_a_stalled_viewer_does_not_slow_the_others(server: Server) -> None:
    """One viewer's sender stops taking frames (a stalled path); the other keeps full rate.

    The stall is made by stopping that viewer's server-side sender from reading its
    ForwardTrack: the one fake here, since loopback UDP never pushes back.
    """
    staff_token, customer_token, job_id = await _two_parties(server)
    publisher = await MediaClient(server, customer_token, audio=False).start()
    fast = await MediaClient(server, staff_token, job_id, video=False, audio=False).start()
    slow = await MediaClient(server, staff_token, job_id, video=False, audio=False).start()
    try:
        await slow.wait_remote(publisher.participant_id, frames=3)
        router = server.app[MEDIA]
        stalled = router.sessions[slow.participant_id].subscriptions[  # type: ignore[attr-defined]
            f"p{publisher.participant_id}-video-0"].source

        async def never() -> None:
            await asyncio.Event().wait()

        stalled.recv = never  # the sender's next read never completes
        before = (await fast.wait_remote(publisher.participant_id)).frames
        seconds = VIDEO_QUEUE_FRAMES / 30 + 1  # long enough to fill the stalled queue
        await asyncio.sleep(seconds)
        received = fast.remote(publisher.participant_id)
        assert received is not None
        assert received.frames - before >= 0.9 * seconds * 30 * 0.9  # ~30 fps kept
        assert stalled._queue.qsize() <= stalled._queue.maxsize
        assert stalled.dropped > 0
    finally:
        for client in (slow, fast, publisher):
            await client.close()


async def test_capture_returns_the_newest_frame_quickly(server: Server) -> None:
    _staff_token, customer_token, _job_id = await _two_parties(server)
    customer = await MediaClient(server, customer_token, audio=False).start()
    try:
        router = server.app[MEDIA]
        publication = router.publication(customer.participant_id)  # type: ignore[attr-defined]
        async with asyncio.timeout(10):
            while publication.frames_in < 40:
                await asyncio.sleep(0.02)
        durations = []
        for _ in range(8):
            loop = asyncio.get_running_loop()
            newest_when_asked = publication.frames_in - 1
            start = loop.time()
            shot = await router.capture(customer.participant_id)  # type: ignore[attr-defined]
            durations.append(loop.time() - start)
            assert shot.image.shape == (360, 640, 3)
            # The picture is the frame it says it is, and at least as new as the newest
            # frame the server had when asked.
            assert read_id(shot.image) == shot.frame_index % CLIP_FRAMES
            assert shot.frame_index >= newest_when_asked
            await asyncio.sleep(0.15)
        # The median meets the 150 ms target; a capture that lands on a busy shared
        # machine (CI runs here too) still has a bound.
        assert sorted(durations)[len(durations) // 2] < 0.15, durations
        assert max(durations) < 0.5, durations
    finally:
        await customer.close()


async def test_malformed_media_messages_get_clear_errors(server: Server) -> None:
    staff_token, customer_token, job_id = await _two_parties(server)
    ws, _ = await server.join_call(staff_token, job_id)
    plausible = ("v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n"
                 "m=video 9 UDP/TLS/RTP/SAVPF 96\r\n")
    await ws.send_json({"type": "sdp.answer", "sdp": plausible})
    error = await receive(ws)
    assert (error["code"], error["ref"]) == ("conflict", "sdp.answer")  # no offer was sent
    await ws.send_json({"type": "sdp.offer", "sdp": plausible.replace("96", "96 x")})
    error = await receive(ws)
    assert (error["code"], error["ref"]) == ("bad_request", "sdp.offer"), error
    await ws.send_json({"type": "sdp.offer", "sdp": "v=0\r\nthis is not sdp\r\n"})
    error = await receive(ws)
    assert (error["code"], error["ref"]) == ("bad_request", "sdp.offer")
    await ws.close()
    client = await MediaClient(server, customer_token, audio=False).start()
    try:
        assert client.ws is not None
        candidate = "candidate:1 1 udp 2122260223 192.0.2.1 50000 typ host"
        for fields in ({"sdpMid": None, "sdpMLineIndex": None},
                       {"sdpMid": "0", "sdpMLineIndex": 0, "candidate": "candidate:garbage"}):
            await client.ws.send_json({"type": "ice.candidate", "candidate": candidate,
                                       **fields})
            error = await asyncio.wait_for(client.messages.get(), 5)
            assert (error["code"], error["ref"]) == ("bad_request", "ice.candidate"), error
        await client.ws.send_json({"type": "ping"})
        assert (await asyncio.wait_for(client.messages.get(), 5))["type"] == "pong"
    finally:
        await client.close()


async def test_a_peer_connection_that_never_connects_is_closed(
        server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(session_module, "CONNECT_TIMEOUT_S", 0.5)
    staff_token, _, job_id = await _two_parties(server)
    ws, _ = await server.join_call(staff_token, job_id)
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    try:
        pc.addTransceiver("video", direction="recvonly")
        await pc.setLocalDescription(await pc.createOffer())
        await ws.send_json({"type": "sdp.offer", "sdp": pc.localDescription.sdp})
        assert (await receive(ws))["type"] == "sdp.answer"  # and never applied: no ICE
        router = server.app[MEDIA]
        assert len(router.sessions) == 1  # type: ignore[attr-defined]
        async with asyncio.timeout(3):
            while router.sessions:  # type: ignore[attr-defined]
                await asyncio.sleep(0.05)
        await ws.send_json({"type": "ping"})  # the call itself lives on
        assert (await receive(ws))["type"] == "pong"
    finally:
        await pc.close()
        await ws.close()
