"""Packet loss between a publisher and the server: real aiortc peers through the real
server, with the publisher's video packets dropped on their way out (the one fake)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from aiortc.rtp import RtpPacket, is_rtcp

from tests.support.clips import video_clip
from tests.support.metrics import scrape, value
from tests.support.peers import MediaClient, check_decodable
from tests.support.server import Server
from tests.support.server import two_parties as _two_parties
from videoassist.appkeys import MEDIA
from videoassist.media.aiortc_hooks import RETRANSMISSION_WAIT_S
from videoassist.media.frames import is_keyframe
from videoassist.media.router import MediaRouter

CLIP = video_clip()


class PacketLoss:
    """Wraps a client's DTLS transport to drop one video packet when armed, and with
    ``retransmissions`` also every retransmission of it (RTX), as a bad line would."""

    def __init__(self, client: MediaClient, *, retransmissions: bool) -> None:
        assert client.video is not None
        self._track = client.video
        sender = self._sender = next(t.sender for t in client.pc.getTransceivers()
                                     if t.sender.track is client.video)
        self._retransmissions = retransmissions
        self.armed = False
        self.lost: int | None = None  # the sequence number dropped
        self.lost_at = 0.0
        self.lost_frame = -1  # the clip frame it was part of
        self.dropped_retransmissions = 0
        transport = sender.transport
        send: Callable[[bytes], Awaitable[None]] = transport._send_rtp

        async def send_or_drop(data: bytes) -> None:
            if not self._drops(data):
                await send(data)

        transport._send_rtp = send_or_drop  # type: ignore[method-assign]

    def _drops(self, data: bytes) -> bool:
        if is_rtcp(data):
            return False
        packet = RtpPacket.parse(data)
        if packet.ssrc == self._sender._ssrc and self.armed and not packet.marker:
            self.armed = False  # a packet inside a frame: the frame cannot end without it
            self.lost, self.lost_at = packet.sequence_number, time.monotonic()
            self.lost_frame = self._track.frame_id  # the sender packetizes the newest
            return True
        if (packet.ssrc == self._sender._rtx_ssrc and self._retransmissions
                and self.lost is not None
                and int.from_bytes(packet.payload[:2], "big") == self.lost):
            self.dropped_retransmissions += 1
            return True
        return False


async def _call(server: Server) -> tuple[MediaClient, MediaClient, MediaRouter]:
    staff_token, customer_token, job_id = await _two_parties(server)
    publisher = await MediaClient(server, customer_token, audio=False,
                                  keyframes_on_request=True).start()
    viewer = await MediaClient(server, staff_token, job_id, video=False, audio=False,
                               encoded=True).start()
    router = server.app[MEDIA]
    assert isinstance(router, MediaRouter)
    return publisher, viewer, router


async def test_a_packet_retransmitted_in_time_costs_no_frame(server: Server) -> None:
    publisher, viewer, router = await _call(server)
    try:
        loss = PacketLoss(publisher, retransmissions=False)
        video = await viewer.wait_remote(publisher.participant_id, frames=20)
        requests = router.counters.keyframe_requests
        loss.armed = True
        await viewer.wait_remote(publisher.participant_id, frames=video.frames + 30)
        assert loss.lost is not None
        check_decodable(video)
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
        assert publisher.video is not None
        restarts = publisher.video.restarts
        armed_at = len(video.encoded)
        loss.armed = True
        async with asyncio.timeout(10):
            while loss.lost is None:
                await asyncio.sleep(0.01)
        before = len(video.encoded)
        async with asyncio.timeout(5):
            while len(video.encoded) < before + 10:
                await asyncio.sleep(0.02)
        indexes = check_decodable(video)
        assert loss.dropped_retransmissions >= 1  # the server did ask for it (NACK)
        assert router.counters.skipped_frames >= 1
        assert value(await scrape(server), "videoassist_skipped_frames_total") >= 1
        assert publisher.video.restarts > restarts  # and then for a keyframe (PLI)
        # The viewer got every frame up to the lost one, then nothing until a keyframe,
        # which came after the wait for the retransmission, and soon after it.
        resumed = next(n for n in range(armed_at, len(indexes))
                       if indexes[n] != (indexes[n - 1] + 1) % len(CLIP))
        assert indexes[resumed - 1] == (loss.lost_frame - 1) % len(CLIP), (
            loss.lost_frame, indexes[armed_at:])
        assert is_keyframe("VP8", CLIP[indexes[resumed]])
        waited = video.times[resumed] - loss.lost_at
        assert RETRANSMISSION_WAIT_S <= waited < 1.0, waited
        assert video.skipped == 0  # nothing was lost between the server and the viewer
    finally:
        await viewer.close()
        await publisher.close()
