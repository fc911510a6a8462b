"""Packet loss between a publisher and the server: real aiortc peers through the real
server, with the publisher's video packets dropped on their way out (the one fake)."""

from __future__ import annotations

import asyncio

from tests.support.clips import PacketTrack
from tests.support.loss import PacketLoss
from tests.support.metrics import scrape, value
from tests.support.peers import MediaClient, Received, check_decodable, published, sent_numbers
from tests.support.server import Server, two_parties
from videoassist.appkeys import MEDIA
from videoassist.media.aiortc_hooks import RETRANSMISSION_WAIT_S
from videoassist.media.frames import is_keyframe
from videoassist.media.router import MediaRouter


async def _call(server: Server) -> tuple[MediaClient, MediaClient, MediaRouter]:
    staff_token, customer_token, job_id = await two_parties(server)
    publisher = await MediaClient(server, customer_token, audio=False,
                                  keyframes_on_request=True).start()
    viewer = await MediaClient(server, staff_token, job_id, video=False, audio=False,
                               encoded=True).start()
    router = server.app[MEDIA]
    assert isinstance(router, MediaRouter)
    return publisher, viewer, router


async def _past(video: Received, sent: PacketTrack, frame: int, frames: int = 10) -> None:
    """Until the viewer has a frame sent ``frames`` after that one: frames arriving
    after a loss are not frames sent after it, when the viewer runs behind the
    publisher (more than 10 frames, on a busy machine)."""
    async with asyncio.timeout(10):
        while not video.encoded or sent_numbers(video, sent)[-1] < frame + frames:
            await asyncio.sleep(0.02)


async def test_a_packet_retransmitted_in_time_costs_no_frame(server: Server) -> None:
    publisher, viewer, router = await _call(server)
    try:
        loss = PacketLoss(publisher, retransmissions=False)
        video = await viewer.wait_remote(publisher.participant_id, frames=20)
        requests = router.counters.keyframe_requests
        loss.armed = True
        async with asyncio.timeout(10):
            while loss.lost is None:
                await asyncio.sleep(0.01)
        await _past(video, published(publisher), loss.lost_frame)
        numbers = check_decodable(video, published(publisher))
        assert numbers[-1] > loss.lost_frame  # the frame that lost a packet came whole
        assert loss.lost_frame in numbers
        assert router.counters.skipped_frames == 0
        assert router.counters.keyframe_requests == requests
        assert video.skipped == 0
    finally:
        await viewer.close()
        await publisher.close()


async def test_a_packet_lost_for_good_costs_a_keyframe_not_a_broken_picture(
        server: Server) -> None:
    """The lost packet and its retransmissions never reach the server: after the wait
    it gives up, asks for a keyframe, and forwards nothing before it."""
    publisher, viewer, router = await _call(server)
    try:
        loss = PacketLoss(publisher, retransmissions=True)
        video = await viewer.wait_remote(publisher.participant_id, frames=20)
        sent = published(publisher)
        restarts = sent.restarts
        armed_at = len(video.encoded)
        loss.armed = True
        async with asyncio.timeout(10):
            while loss.lost is None:
                await asyncio.sleep(0.01)
        await _past(video, sent, loss.lost_frame)
        numbers = check_decodable(video, sent)
        assert loss.dropped_retransmissions >= 1  # the server did ask for it (NACK)
        assert router.counters.skipped_frames >= 1
        assert value(await scrape(server), "videoassist_skipped_frames_total") >= 1
        assert sent.restarts > restarts  # and then for a keyframe (PLI)
        # The viewer got every frame up to the lost one, then nothing until a keyframe,
        # which came after the wait for the retransmission, and soon after it.
        resumed = next(n for n in range(armed_at, len(numbers))
                       if numbers[n] != numbers[n - 1] + 1)
        assert numbers[resumed - 1] == loss.lost_frame - 1, (loss.lost_frame,
                                                             numbers[armed_at:])
        assert is_keyframe("VP8", sent.packets[sent.log[numbers[resumed]]])
        waited = video.times[resumed] - loss.lost_at
        assert RETRANSMISSION_WAIT_S <= waited < 1.0, waited
        assert video.skipped == 0  # nothing was lost between the server and the viewer
    finally:
        await viewer.close()
        await publisher.close()
