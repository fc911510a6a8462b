"""Viewers' bandwidth estimates reach the publisher: its encoder fits the slowest line,
down to a floor, so one bad line cannot starve the other viewers."""

from __future__ import annotations

import asyncio

from aiortc.rtp import RTCP_PSFB_APP, RtcpPsfbPacket, pack_remb_fci

from tests.support.peers import MediaClient, Received
from tests.support.server import Server, two_parties
from videoassist.media import aiortc_hooks
from videoassist.media.publication import MIN_VIEWER_ESTIMATE_BPS


async def _send_remb(viewer: MediaClient, received: Received, bits_per_second: int) -> None:
    """What a browser on a slow line does: a REMB for the stream it receives."""
    receiver = next(t.receiver for t in viewer.pc.getTransceivers()
                    if t.receiver.track is received.track)
    rtcp_ssrc = receiver._RTCRtpReceiver__rtcp_ssrc  # type: ignore[attr-defined]
    media_ssrcs = [s.source for s in receiver.getSynchronizationSources()]
    await receiver._send_rtcp(RtcpPsfbPacket(
        fmt=RTCP_PSFB_APP, ssrc=rtcp_ssrc, media_ssrc=0,
        fci=pack_remb_fci(bits_per_second, media_ssrcs)))


async def _heard(heard: list[int], wanted: int, timeout: float = 3.0) -> None:
    async with asyncio.timeout(timeout):
        while wanted not in heard:
            await asyncio.sleep(0.02)


async def test_the_publisher_hears_the_slowest_viewer_down_to_a_floor(server: Server) -> None:
    staff_token, customer_token, job_id = await two_parties(server)
    technician_token = await server.participant(staff_token, job_id, role="technician")
    customer = await MediaClient(server, customer_token).start()
    heard: list[int] = []  # every REMB the customer's camera sender gets
    camera = next(t.sender for t in customer.pc.getTransceivers()
                  if t.sender.track is customer.video)
    aiortc_hooks.on_bitrate_estimate(camera, heard.append)
    expert = await MediaClient(server, staff_token, job_id, video=False, audio=False).start()
    technician = await MediaClient(server, technician_token, video=False, audio=False).start()
    try:
        expert_video = await expert.wait_remote(customer.participant_id, "video", frames=5)
        technician_video = await technician.wait_remote(customer.participant_id, "video",
                                                        frames=5)
        await _send_remb(expert, expert_video, 2_000_000)
        await _send_remb(technician, technician_video, 400_000)
        await _heard(heard, 400_000)  # the lower of the two, not the expert's
        await _send_remb(technician, technician_video, 20_000)  # a terrible line
        await _heard(heard, MIN_VIEWER_ESTIMATE_BPS)
        assert min(heard) >= MIN_VIEWER_ESTIMATE_BPS
    finally:
        for client in (technician, expert, customer):
            await client.close()
