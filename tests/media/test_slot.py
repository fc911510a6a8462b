"""A viewer's sendonly transceivers are reused (videoassist/media/slot.py): a publisher
that leaves and rejoins, again and again, adds nothing to the viewer's peer connection,
and the viewer gets each new publisher's video and audio through the same m-sections."""

from __future__ import annotations

import asyncio
import fractions
import itertools
import threading
from typing import Any

import av
from aiortc import RTCConfiguration, RTCPeerConnection
from aiortc.mediastreams import MediaStreamError
from aiortc.sdp import SessionDescription

from tests.support.clips import CLIP_FRAMES, FPS, VIDEO_RATE, PacketTrack
from tests.support.peers import MediaClient, Received, check_decodable, published
from tests.support.server import Server
from videoassist.appkeys import MEDIA
from videoassist.media.forward import ForwardTrack
from videoassist.media.publication import Publication
from videoassist.media.slot import MAX_GAP_S, SenderSlot, SlotTrack

REJOINS = 5
# The viewer's own recvonly video (it publishes nothing), one audio, one video.
BOUND = 3


def _scheduled(sent: PacketTrack, number: int) -> float:
    """When the publisher's track was due to send its ``number``-th frame (monotonic):
    it sends frame n at its start plus n frame intervals, or late, never early."""
    return sent.sent_at[0] + number / FPS


def _clock_error(before: tuple[Received, list[int], PacketTrack],
                 after: tuple[Received, list[int], PacketTrack]) -> tuple[float, float, float]:
    """How far the viewer's RTP clock, from the last frame it got of one publication to
    the first of the next, is from the time the two publishers' schedules say passed;
    and the bounds the server's handling allows it (seconds).

    Within a publication the server keeps the publisher's timestamps, which follow its
    schedule. For a new source's first frame the server adds the time since it handled
    the old source's last (``SlotTrack``), so the error is how late (after its schedule)
    the server handled the new first frame, less how late it handled the old last one.
    Each frame is handled before the viewer gets it, and the new source's first frame
    is due no earlier than the new publisher's first: the bounds are those lags as this
    test measures them, wide on a busy machine and a few milliseconds on a quiet one."""
    (old, old_numbers, old_sent), (new, new_numbers, new_sent) = before, after
    passed = ((new.pts[0] - old.pts[-1]) % 2**32) / VIDEO_RATE  # a jump back reads huge
    error = passed - (_scheduled(new_sent, new_numbers[0])
                      - _scheduled(old_sent, old_numbers[-1]))
    new_late = new.times[0] - new_sent.sent_at[0]
    # The frames the server handled after the viewer's last (lost as the publisher
    # closed) are taken to be as late as the last ten it got; 0.1 s for the difference.
    old_late = max(at - _scheduled(old_sent, number) for at, number
                   in zip(old.times[-10:], old_numbers[-10:], strict=True)) + 0.1
    return error, -old_late, new_late + 0.1


def _running() -> tuple[int, list[str]]:
    """Tasks on this loop, and threads other than the loop's default executor's."""
    threads = [t.name for t in threading.enumerate() if not t.name.startswith("asyncio_")]
    return len(asyncio.all_tasks()), sorted(threads)


async def test_a_publisher_rejoining_five_times_reuses_the_viewers_transceivers(
        server: Server) -> None:
    _, staff_token = await server.staff("expert")
    job_id = await server.job(staff_token)
    customer_token = await server.participant(staff_token, job_id)
    # The viewer keeps video encoded, timed as it arrives: decoding would add its own
    # backlog to the times compared with the RTP clock below (a second, on a busy
    # machine).
    viewer = await MediaClient(server, staff_token, job_id, video=False, audio=False,
                               encoded=True).start()
    router = server.app[MEDIA]
    participants: list[int] = []
    previous: tuple[Received, list[int], PacketTrack] | None = None
    first_lines: list[tuple[str, list[str]]] = []
    baseline: tuple[int, list[str]] | None = None
    try:
        for _ in range(REJOINS + 1):
            publisher = await MediaClient(server, customer_token).start()
            participant = publisher.participant_id
            assert participant not in participants  # a rejoin is a new participant
            participants.append(participant)
            try:
                video = await viewer.wait_remote(participant, "video", frames=30)
                audio = await viewer.wait_remote(participant, "audio", frames=25)
                assert audio.frames >= 25
                sent = published(publisher)
                numbers = check_decodable(video, sent)  # as sent
                steps = [b - a for a, b in itertools.pairwise(numbers)]
                assert all(1 <= step <= 3 for step in steps), numbers
                # Bounded on both ends: the viewer's transceivers and m-sections, and
                # the server's side of the same connection.
                assert len(viewer.pc.getTransceivers()) <= BOUND
                sdp = viewer.pc.remoteDescription.sdp
                assert sdp.count("\r\nm=") <= BOUND
                # A reused m-section keeps its payload types.
                lines = [(line.split()[0], line.split()[3:]) for line in sdp.split("\r\n")
                         if line.startswith("m=")]
                assert lines == (first_lines := first_lines or lines), lines
                session = router.sessions[viewer.participant_id]  # type: ignore[attr-defined]
                assert len(session.pc.getTransceivers()) <= BOUND
                assert sorted(slot.kind for slot in session.outgoing.slots) == ["audio", "video"]
                if previous is not None:
                    # The reused m-section's RTP clock went on with the time between
                    # the two publishers' frames: no jump for the jitter buffer. (Its
                    # arithmetic is test_a_slot_track_carries_timestamps_on_..., with a
                    # clock of the test's own.)
                    error, low, high = _clock_error(previous, (video, numbers, sent))
                    assert low <= error <= high, (error, low, high, previous[0].pts[-3:],
                                                  video.pts[:3])
                previous = (video, numbers, sent)
            finally:
                await publisher.close()  # and at once the next one joins
            if baseline is None:
                async with asyncio.timeout(10):
                    while participant in router.sessions:  # type: ignore[attr-defined]
                        await asyncio.sleep(0.05)
                await asyncio.sleep(1)
                baseline = _running()
        # Five rejoins later nothing more runs than after the first one left.
        async with asyncio.timeout(10):
            while router.sessions.keys() != {viewer.participant_id}:  # type: ignore[attr-defined]
                await asyncio.sleep(0.05)
            while (now := _running())[0] > baseline[0] or len(now[1]) > len(baseline[1]):
                await asyncio.sleep(0.1)
        session = router.sessions[viewer.participant_id]  # type: ignore[attr-defined]
        assert len(session.outgoing.slots) == 2 and not session.outgoing.subscriptions
    finally:
        await viewer.close()


async def test_a_publisher_with_another_codec_gets_a_slot_of_its_own(server: Server) -> None:
    """A reused sender keeps its codec (aiortc fixes it when the sender starts, and the
    m-section keeps its payload types): H.264 takes a slot of its own, and the next VP8
    publisher takes the VP8 one back."""
    _, staff_token = await server.staff("expert")
    job_id = await server.job(staff_token)
    customer_token = await server.participant(staff_token, job_id)
    viewer = await MediaClient(server, staff_token, job_id, video=False, audio=False).start()
    router = server.app[MEDIA]
    mids = []
    try:
        for codec in ("VP8", "H264", "VP8"):
            publisher = await MediaClient(server, customer_token, audio=False,
                                          video_codec=codec).start()
            try:
                label = f"p{publisher.participant_id}-video-0"
                video = await viewer.wait_remote(publisher.participant_id, frames=20)
                steps = [(b - a) % CLIP_FRAMES for a, b in itertools.pairwise(video.ids)]
                assert all(1 <= step <= 3 for step in steps), video.ids
                mids.append(next(mid for mid, now in viewer.labels.items() if now == label))
            finally:
                await publisher.close()
        assert mids[0] == mids[2] != mids[1]
        assert len(viewer.pc.getTransceivers()) == 3  # its own, VP8 and H.264
        session = router.sessions[viewer.participant_id]  # type: ignore[attr-defined]
        assert sorted(slot.codec.name for slot in session.outgoing.slots) == ["H264", "VP8"]
    finally:
        await viewer.close()


async def _offer(server: RTCPeerConnection, viewer: RTCPeerConnection) -> dict[str, str]:
    """The server offers and the viewer takes it; returns the first m-section's
    direction and msid."""
    await server.setLocalDescription(await server.createOffer())
    media = SessionDescription.parse(server.localDescription.sdp).media[0]
    await viewer.setRemoteDescription(server.localDescription)
    return {"direction": media.direction or "", "msid": media.msid or ""}


async def _answer(server: RTCPeerConnection, viewer: RTCPeerConnection) -> None:
    await viewer.setLocalDescription(await viewer.createAnswer())
    await server.setRemoteDescription(viewer.localDescription)


async def _nothing() -> bool:
    return False


async def test_a_slot_goes_to_its_next_publication_only_through_inactive() -> None:
    """The viewer must see a slot go inactive before it carries another publication
    (Chromium fires ``track`` then, and no frames reach an m-section it holds
    inactive), even when the next publication comes while an offer from before the
    release is still out."""
    server = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    viewer = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    try:
        first = Publication("p2-video-0", 2, "video", _nothing)
        second = Publication("p3-video-0", 3, "video", _nothing)
        slot = SenderSlot(server, "video", None, "[test]")
        slot.carry(first, ForwardTrack(first, first.id))
        assert await _offer(server, viewer) == {"direction": "sendonly",
                                                "msid": "p2 p2-video-0"}
        await _answer(server, viewer)
        assert slot.negotiated() is False and slot.track.source is slot.source
        assert await _offer(server, viewer) == {"direction": "sendonly",
                                                "msid": "p2 p2-video-0"}
        slot.release()  # while that offer is out
        assert slot.fits("video", None)
        slot.carry(second, ForwardTrack(second, second.id))
        await _answer(server, viewer)
        assert slot.negotiated() is False  # that answer was about the first one
        assert slot.track.source is None  # nothing is sent meanwhile
        assert (await _offer(server, viewer))["direction"] == "inactive"
        await _answer(server, viewer)
        assert slot.negotiated() is True  # the viewer saw it inactive: offer again
        assert slot.track.source is None
        assert await _offer(server, viewer) == {"direction": "sendonly",
                                                "msid": "p3 p3-video-0"}
        await _answer(server, viewer)
        assert slot.negotiated() is False and slot.track.source is slot.source
        assert not slot.fits("video", None)  # busy
        slot.close()
    finally:
        await server.close()
        await viewer.close()


def _packet(pts: int) -> av.Packet[Any]:
    packet = av.Packet(b"\x10")
    packet.pts = pts
    packet.time_base = fractions.Fraction(1, 90_000)
    return packet


class Source:
    """Stands in for a ForwardTrack: hands out queued packets, then ends."""

    def __init__(self, *pts: int) -> None:
        self.items = [_packet(p) for p in pts]
        self.stopped = False

    async def recv(self) -> av.Packet[Any]:
        if not self.items:
            raise MediaStreamError
        return self.items.pop(0)

    def stop(self) -> None:
        self.stopped = True


async def test_a_slot_track_carries_timestamps_on_with_the_time_between_sources() -> None:
    now = [100.0]
    track = SlotTrack("video", clock=lambda: now[0])
    first = Source(5_000, 8_000)
    track.feed(first)  # type: ignore[arg-type]
    assert [(await track.recv()).pts for _ in range(2)] == [5_000, 8_000]
    waiting = asyncio.ensure_future(track.recv())
    await asyncio.sleep(0)
    assert not waiting.done()  # the first source ended: the track waits, never ends
    now[0] += 2.5
    track.feed(Source(4_000_000_000, 4_000_003_000))  # type: ignore[arg-type]
    assert (await waiting).pts == 8_000 + 225_000  # 2.5 s at 90 kHz after the last
    assert (await track.recv()).pts == 8_000 + 228_000
    now[0] += 10 * MAX_GAP_S  # a slot idle for hours claims no more than the cap
    track.feed(Source(7))  # type: ignore[arg-type]
    assert (await track.recv()).pts == 8_000 + 228_000 + round(MAX_GAP_S * 90_000)
    waiting = asyncio.ensure_future(track.recv())
    await asyncio.sleep(0)
    track.stop()
    try:
        await waiting
    except MediaStreamError:
        pass
    else:
        raise AssertionError("a stopped slot track must end its sender's loop")



async def test_a_slot_whose_sender_died_takes_no_new_publication() -> None:
    server = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    try:
        slot = SenderSlot(server, "video", None, "[test]")
        assert slot.fits("video", None)
        slot.track.stop()  # as aiortc's sender loop does when recv() raises
        assert not slot.fits("video", None)  # else what it is given never arrives
    finally:
        await server.close()
