"""Real aiortc clients through the real server: media forwarded, not transcoded."""

from __future__ import annotations

import asyncio
import itertools
import threading

from tests.conftest import Server
from tests.media.clips import video_clip
from tests.media.peers import MediaClient
from videoassist.appkeys import MEDIA

CLIP_FRAMES = len(video_clip())


async def _two_parties(server: Server) -> tuple[str, str, int]:
    _, staff_token = await server.staff("expert")
    job_id = await server.job(staff_token)
    return staff_token, await server.participant(staff_token, job_id), job_id


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
    expert = await MediaClient(server, staff_token, job_id).start()
    customer = await MediaClient(server, customer_token).start()
    await expert.wait_remote(customer.participant_id, "video", frames=5)
    router = server.app[MEDIA]
    assert len(router.sessions) == 2  # type: ignore[attr-defined]
    # The customer vanishes: its socket drops without a leave, its media stops.
    assert customer.ws is not None
    customer.ws._response.connection.transport.close()  # type: ignore[union-attr]
    await customer.pc.close()
    async with asyncio.timeout(5):
        while len(router.sessions) != 1:  # type: ignore[attr-defined]
            await asyncio.sleep(0.05)
    await expert.close()
    async with asyncio.timeout(5):
        while router.sessions:  # type: ignore[attr-defined]
            await asyncio.sleep(0.05)
        while [t for t in threading.enumerate()
               if t.name.endswith("-decoder") and t.name not in threads_before]:
            await asyncio.sleep(0.05)
    assert not router.rooms  # type: ignore[attr-defined]
    await customer.close()
