"""A late viewer's catch-up: the cached run since the last keyframe, paced.

The server holds the frames since its publisher's last keyframe; a viewer whose sender
starts gets that keyframe at once and the frames after it at half their offsets from
it (``media.forward``), and the publisher is asked for a fresh keyframe when the
cached one is older than half a second (``media.publication``). The first two tests
use real aiortc peers through the real server: the viewer answers the server's offer
for the publisher's video (and so the server's sender to it starts) only once the
publisher's run is 1.5 s old, so the catch-up starts at a known point of the run on a
machine of any speed. What the viewer got is compared with the frames the publisher's track sent
(``tests.support.peers.sent_numbers``), and when the server sent each frame is read
at the server's own sender for that viewer. The others are quick checks of the rule
and of a mute during a replay, without media.
"""

from __future__ import annotations

import asyncio
import os
import socket
import struct
import time
from pathlib import Path
from typing import Any

import pytest
from aiortc import RTCPeerConnection

from tests.support.clips import FPS, PacketTrack, video_clip
from tests.support.peers import MediaClient, check_decodable, published, sent_numbers
from tests.support.server import Server, two_parties
from videoassist.appkeys import MEDIA
from videoassist.media.forward import ForwardTrack
from videoassist.media.frames import EncodedFrame
from videoassist.media.publication import Publication
from videoassist.media.slot import SenderSlot

# The publisher's clip: small frames, and one keyframe in 10 s unless asked (a
# browser's encoder sends them when asked), so that nothing but the server's own
# request ends a run during a test.
CLIP = {"video_size": (384, 216), "clip_frames": 300, "keyframe_every": 300}
# The run's age when the viewer's sender starts: well past the half second after which
# a fresh keyframe is asked for, well within the 3 s (and 90 frames) a run is kept and
# replayed however slow the machine is between the gate and the start.
RUN_FRAMES = 45
# The viewer's socket receive buffer in the pacing test (Linux grants twice what is
# asked: 128 KiB). The run of 45 frames is about 150 packets of up to 1.2 KB, which
# sent in one go overflow it (the same as a 720p run does aiortc's 256 KiB); paced,
# the keyframe (7 packets) goes at once and the rest a frame or two at a time.
SMALL_BUFFER = 64 * 1024
# Waits for media: guards against what never comes, not bounds on speed.
WAIT_S = 15.0


def _ice_sockets(pc: RTCPeerConnection) -> list[Any]:
    """The UDP sockets of the client's ICE transport (one, bundled)."""
    found: list[Any] = []
    for transceiver in pc.getTransceivers():
        dtls = transceiver.receiver.transport
        if dtls is None:
            continue
        for protocol in dtls.transport._connection._protocols:
            sock = protocol.transport.get_extra_info("socket")
            if sock is not None and all(sock.fileno() != s.fileno() for s in found):
                found.append(sock)
    assert found, "the client has no ICE socket"
    return found


def _socket_drops(sockets: list[Any]) -> int:
    """Datagrams the kernel dropped at these sockets because their buffer was full."""
    inodes = {os.fstat(sock.fileno()).st_ino for sock in sockets}
    drops = 0
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if int(fields[9]) in inodes:
                drops += int(fields[12])
    return drops


class SendTimes:
    """When the server's sender to one viewer first sent each frame, by its RTP
    timestamp (every frame over a plain UDP path goes through ``send_udp``)."""

    def __init__(self, slot: SenderSlot) -> None:
        self.first: dict[int, float] = {}
        self.origin: int | None = None  # the RTP timestamp of the first frame sent
        send_udp = slot.packets.send_udp

        def timed(packets: list[bytes], udp: Any) -> None:
            (timestamp,) = struct.unpack_from("!I", packets[0], 4)
            self.first.setdefault(timestamp, time.monotonic())
            if self.origin is None:
                self.origin = timestamp
            send_udp(packets, udp)

        slot.packets.send_udp = timed  # type: ignore[method-assign]

    def of(self, ticks: int) -> float:
        """When the frame ``ticks`` after the first one sent was sent (the viewer's
        receiver maps timestamps to start at 0: differences are what it keeps)."""
        assert self.origin is not None, "nothing was sent"
        return self.first[(self.origin + ticks) % 2**32]


async def _gated_call(server: Server,
                      **publishing: Any) -> tuple[MediaClient, asyncio.Event, MediaClient]:
    """A viewer whose connection is up, then a publisher: the server's sender of the
    publisher's video to the viewer starts when the viewer answers the server's offer,
    once the test sets the gate. Starting the publisher last puts its run's start
    where the test sees it, however long the viewer took to connect."""
    staff_token, customer_token, job_id = await two_parties(server)
    gate = asyncio.Event()
    viewer = await MediaClient(server, staff_token, job_id, video=False, audio=False,
                               encoded=True, answer_gate=gate).start()
    try:
        async with asyncio.timeout(WAIT_S):
            while viewer.pc.connectionState != "connected":
                await asyncio.sleep(0.01)
        publisher = await MediaClient(server, customer_token, audio=False,
                                      **publishing).start()
    except BaseException:
        gate.set()
        await viewer.close()
        raise
    return viewer, gate, publisher


def _slot(server: Server, viewer: MediaClient, publisher: MediaClient) -> SenderSlot:
    session = server.app[MEDIA].sessions[viewer.participant_id]  # type: ignore[attr-defined]
    slot: SenderSlot = session.outgoing.subscriptions[f"p{publisher.participant_id}-video-0"]
    return slot


def _publication(server: Server, publisher: MediaClient) -> Publication:
    session = server.app[MEDIA].sessions[publisher.participant_id]  # type: ignore[attr-defined]
    publication: Publication = session.publications[f"p{publisher.participant_id}-video-0"][0]
    return publication


async def _run_of(sent: PacketTrack, frames: int) -> None:
    """Until the publisher's current run (since its last keyframe, clip index 0) is
    that many frames long."""
    async with asyncio.timeout(WAIT_S):
        while not sent.log or sent.log[-1] < frames:
            await asyncio.sleep(0.005)


async def test_a_late_viewer_gets_the_cached_run_paced_and_its_small_buffer_loses_nothing(
        server: Server) -> None:
    """The viewer starts from the cached keyframe, sent at once; every frame after it
    goes out no sooner than half its offset from that keyframe, so the viewer's small
    socket buffer drops nothing, every frame decodes, and the viewer is live after
    the run's age."""
    viewer, gate, publisher = await _gated_call(server, **CLIP)
    sent = published(publisher)
    try:
        sockets = _ice_sockets(viewer.pc)
        for sock in sockets:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SMALL_BUFFER)
            assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) == 2 * SMALL_BUFFER
        drops_before = _socket_drops(sockets)
        times = SendTimes(_slot(server, viewer, publisher))
        await _run_of(sent, RUN_FRAMES)
        cached = _publication(server, publisher).gop
        assert cached and cached[0].keyframe
        keyframe_received = cached[0].received  # at the server
        sent_before = sent.sent
        gate.set()
        video = await viewer.wait_remote(publisher.participant_id, frames=1,
                                         timeout=WAIT_S)
        start = times.of(0)  # when the server sent the viewer its first frame
        age = start - keyframe_received  # of the run when the replay started
        # The replay's own start, which paces every frame of it: the keyframe itself
        # goes out at it or after (through the sender's pipeline: 5 to 7 ms after on a
        # machine beside CPU hogs, which made later frames look early against it).
        source = _slot(server, viewer, publisher).source
        assert isinstance(source, ForwardTrack)
        replay_start = source._replay_start
        assert replay_start <= start
        # Until the viewer has a frame the publisher sent well after the replay
        # should have caught up (the run's age after it started).
        async with asyncio.timeout(WAIT_S):
            while sent.sent_at[sent_numbers(video, sent)[-1]] < start + age + 0.3:
                await asyncio.sleep(0.05)
        numbers = check_decodable(video, sent)
        # The first frame is the cached keyframe, which the publisher sent before
        # the viewer's sender started: not the next one (10 s later).
        assert numbers[0] < sent_before and sent.log[numbers[0]] == 0, numbers
        # Every frame since, none skipped (no newer keyframe came).
        assert numbers == list(range(numbers[0], numbers[-1] + 1)), numbers
        # Paced: the server sends frame f at half its offset from the keyframe as
        # both came to it, from the replay's start, and f came after its publisher
        # sent it, so
        #   sent_to_viewer(f) - replay_start >= (sent(f) - keyframe_received) / 2
        # whatever the load (a busy server sends late, never early). Sent in one
        # go, as before, the run's 45 frames left within milliseconds.
        early = []
        for pts, number in zip(video.pts[1:], numbers[1:], strict=True):
            bound = (sent.sent_at[number] - keyframe_received) / 2
            at = times.of(pts - video.pts[0]) - replay_start
            if at < bound - 0.005:
                early.append((number - numbers[0], round(at, 3), round(bound, 3)))
        assert not early, f"frames sent before their time (frame, at, due): {early}"
        assert _socket_drops(sockets) == drops_before
        # Live after the run's age: the frame that brought the wait above to an
        # end did not arrive the run's age late, as a replay at the publisher's
        # own pace would have it (half the age: the run was at least 1.5 s old,
        # far beyond what loopback takes even on a busy machine).
        last = len(numbers) - 1
        assert video.times[last] - sent.sent_at[numbers[last]] < age / 2, (age, last)
    finally:
        gate.set()
        await viewer.close()
        await publisher.close()


async def test_a_late_viewer_of_an_old_run_asks_for_a_keyframe_and_goes_live_on_it(
        server: Server) -> None:
    """The cached keyframe is 1.5 s old: the publisher is asked for a fresh one when
    the viewer's sender starts, and makes it 3 frames later (as over a 100 ms round
    trip). The viewer gets the cached keyframe and the first frames of the run, then
    the fresh keyframe as soon as it comes: the rest of the replay is skipped."""
    viewer, gate, publisher = await _gated_call(server, keyframes_on_request=True,
                                                keyframe_delay=3, **CLIP)
    sent = published(publisher)
    try:
        await _run_of(sent, RUN_FRAMES)
        restarts, sent_before = len(sent.restarted_at), sent.sent
        gate.set()
        video = await viewer.wait_remote(publisher.participant_id, frames=1,
                                         timeout=WAIT_S)
        try:
            async with asyncio.timeout(WAIT_S):
                while not (fresh := [n for n in sent_numbers(video, sent)
                                     if n in sent.restarted_at[restarts:]]):
                    await asyncio.sleep(0.05)
        except TimeoutError:
            pytest.fail(f"no fresh keyframe reached the viewer: the publisher was "
                        f"asked {sent.restarts} times")
        await viewer.wait_remote(publisher.participant_id, frames=len(video.encoded) + 3,
                                 timeout=WAIT_S)
        numbers = check_decodable(video, sent)
        assert numbers[0] < sent_before and sent.log[numbers[0]] == 0, numbers
        at = numbers.index(fresh[0])
        assert at >= 1, numbers
        assert numbers[:at] == list(range(numbers[0], numbers[at - 1] + 1)), numbers
        assert numbers[at:] == list(range(numbers[at], numbers[-1] + 1)), numbers
        # Frames of the run were left out: the fresh keyframe did not wait behind
        # them (the whole run, sent at once, would have left nothing to skip).
        assert numbers[at] > numbers[at - 1] + 1, numbers
    finally:
        gate.set()
        await viewer.close()
        await publisher.close()


# -- the rule and a replay's end, without media ------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Recorder:
    """A subscriber that notes what catch_up gives it."""

    def __init__(self) -> None:
        self.replays: list[list[EncodedFrame]] = []
        self.offered: list[EncodedFrame] = []

    def offer(self, frame: EncodedFrame) -> None:
        self.offered.append(frame)

    def discard(self) -> None:
        pass

    def replay(self, frames: list[EncodedFrame], now: float) -> None:
        self.replays.append(frames)

    def end(self) -> None:
        pass


@pytest.mark.parametrize(("age", "replayed", "asked"), [
    (0.2, True, False),   # a young keyframe: replayed, the publisher spared a keyframe
    (1.0, True, True),    # an older one: replayed, and a fresh one asked for
    (3.5, False, True),   # past REPLAY_MAX_AGE_S: not replayed; the fresh one it is
    (None, False, True),  # none held
])
async def test_a_starting_viewer_asks_for_a_keyframe_unless_the_cached_one_is_young(
        age: float | None, replayed: bool, asked: bool) -> None:
    requests: list[float] = []
    clock = Clock()

    async def request_keyframe() -> bool:
        requests.append(clock.now)
        return True

    publication = Publication("p1-video-0", 1, "video", request_keyframe, clock=clock)
    if age is not None:
        publication.push("VP8", video_clip(frames=1)[0], 0)
        clock.now += age
    viewer = Recorder()
    publication.subscribe(viewer)
    await asyncio.sleep(0)  # the request's task runs
    assert bool(viewer.replays) == replayed
    assert not viewer.offered  # a replay is the viewer's to pace, never offered at once
    assert bool(requests) == asked


async def test_a_mute_during_a_replay_drops_the_rest_and_restarts_at_a_keyframe() -> None:
    clip = video_clip(frames=3, keyframe_every=2)  # a keyframe, a delta, a keyframe
    clock = Clock()

    async def request_keyframe() -> bool:
        return True

    publication = Publication("p1-video-0", 1, "video", request_keyframe, clock=clock)
    publication.push("VP8", clip[0], 0)
    clock.now += 1 / FPS
    publication.push("VP8", clip[1], 3_000)
    clock.now += 1.0  # the run is a second old: its second frame is due in 1/60 s
    viewer = ForwardTrack(publication, "p1-video-0")
    publication.subscribe(viewer, catch_up=False)
    first = await asyncio.wait_for(viewer.recv(), 1)  # the cached keyframe, at once
    assert first.pts == 0
    clock.now -= 10  # the rest of the replay is not due for seconds now
    second = asyncio.create_task(viewer.recv())
    await asyncio.sleep(0.01)
    assert not second.done()
    publication.set_muted(True)
    publication.set_muted(False)
    publication.push("VP8", clip[1], 6_000)  # refers to frames the viewer never got
    publication.push("VP8", clip[2], 9_000)  # a keyframe: the viewer goes on from here
    frame = await asyncio.wait_for(second, 1)
    assert frame.pts == 9_000
    assert viewer.dropped == 1  # the replay's delta (the publication held back the other)
    viewer.stop()
    publication.close()
