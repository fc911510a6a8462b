"""The forwarding hooks fail loudly, not silently, if aiortc changes under them."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import aioice
import aiortc
import pytest
from aiortc import (
    RTCPeerConnection,
    RTCRtpReceiver,
    RTCRtpSender,
    RTCSessionDescription,
    rtcpeerconnection,
)
from aiortc import rtcrtpreceiver as receiver_module
from aiortc.exceptions import InvalidStateError
from aiortc.rate import RateCounter, RemoteBitrateEstimator
from aiortc.rtp import RTCP_PSFB_APP, RtcpPsfbPacket, RtpPacket, pack_remb_fci, unpack_remb_fci
from aiortc.sdp import SessionDescription

from videoassist.media import aiortc_hooks
from videoassist.media.aiortc_hooks import IncompatibleAiortc, check_compatible


def test_the_installed_aiortc_is_compatible() -> None:
    check_compatible()


def test_an_untested_aiortc_version_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(aiortc, "__version__", "1.17.0")
    with pytest.raises(IncompatibleAiortc, match=r"1\.17\.0"):
        check_compatible()


def test_an_untested_aioice_version_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(aioice, "__version__", "0.14.0")
    with pytest.raises(IncompatibleAiortc, match=r"aioice 0\.14\.0"):
        check_compatible()


def test_an_aioice_that_no_longer_queues_datagrams_is_named(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """receive_directly takes the place of Connection.data_received, which puts each
    datagram in ``_queue``: if it stops doing that, the check says so."""
    def data_received(self: aioice.Connection, data: bytes, component: int) -> None:
        return None

    monkeypatch.setattr(aioice.Connection, "data_received", data_received)
    with pytest.raises(IncompatibleAiortc,
                       match=r"Connection\.data_received no longer uses _queue"):
        check_compatible()


class _Srtp:
    def unprotect(self, data: bytes) -> bytes:
        return data

    def unprotect_rtcp(self, data: bytes) -> bytes:
        return data


class _Dtls:
    """What receive_directly's receiver reads of a DTLS transport; its RTP handler
    waits (as one sending through a TURN relay would) for packets in ``hold``."""

    _RTCDtlsTransport__rx_bytes = 0
    _RTCDtlsTransport__rx_packets = 0

    def __init__(self) -> None:
        self._rx_srtp = _Srtp()
        self._state = aiortc_hooks.DtlsState.CONNECTED
        self.handled: list[bytes] = []
        self.hold: dict[bytes, asyncio.Future[None]] = {}

    async def _handle_rtp_data(self, data: bytes, arrival_time_ms: int) -> None:
        if data in self.hold:
            await self.hold[data]
        self.handled.append(data)

    async def _handle_rtcp_data(self, data: bytes) -> None:
        self.handled.append(data)


class _Connection:
    def __init__(self) -> None:
        self._queue: asyncio.Queue[tuple[bytes, int] | None] = asyncio.Queue()

    def data_received(self, data: bytes, component: int) -> None:
        self._queue.put_nowait((data, component))


async def test_a_datagram_whose_handling_waits_holds_back_the_ones_behind_it() -> None:
    """SRTP datagrams are handled as they come, in order: one whose handler suspends
    goes on as a task and the next ones wait for it; DTLS records, and anything while
    aioice's queue holds datagrams, go through the queue."""
    dtls, connection = _Dtls(), _Connection()
    receive = aiortc_hooks._DirectReceiver(dtls, connection)
    one, two, three = (bytes([0x80, 96, 0, n]) for n in (1, 2, 3))
    receive(one, 1)
    assert dtls.handled == [one] and receive.direct == 1
    dtls.hold[two] = asyncio.get_running_loop().create_future()
    receive(two, 1)
    receive(three, 1)
    rtcp = bytes([0x80, 200, 0, 1])
    receive(rtcp, 1)
    record = bytes([22, 254, 253])  # a DTLS handshake record
    receive(record, 1)
    assert dtls.handled == [one]
    assert connection._queue.get_nowait() == (record, 1)
    dtls.hold[two].set_result(None)
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert dtls.handled == [one, two, three, rtcp]
    assert receive.direct == 4
    assert dtls._RTCDtlsTransport__rx_packets == 4
    assert dtls._RTCDtlsTransport__rx_bytes == 16
    connection._queue.put_nowait((record, 1))
    receive(one, 1)  # behind a queued datagram: queued too
    assert connection._queue.qsize() == 2 and receive.direct == 4
    connection._queue = asyncio.Queue()
    receive = aiortc_hooks._DirectReceiver(dtls, connection)
    dtls._rx_srtp = None  # before DTLS is done: the queue
    receive(one, 1)
    assert connection._queue.qsize() == 1 and receive.direct == 0


@pytest.mark.parametrize("owner, name", [
    (receiver_module, "decoder_worker"),
    (RTCRtpReceiver, "_send_rtcp_pli"),
    (RTCRtpSender, "_send_keyframe"),
    (RTCRtpSender, "_handle_rtcp_packet"),
    (RTCRtpSender, "_run_rtp"),
    (RTCRtpSender, "_retransmit"),
    (aioice.Connection, "get_component_candidates"),
    (aioice.ice, "server_reflexive_candidate"),
    (rtcpeerconnection, "add_transport_description"),
])
def test_a_missing_internal_is_named(monkeypatch: pytest.MonkeyPatch, owner: object,
                                     name: str) -> None:
    monkeypatch.delattr(owner, name)
    with pytest.raises(IncompatibleAiortc, match=name):
        check_compatible()


def test_an_aioice_that_binds_its_host_candidates_elsewhere_is_named(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """gather_on takes the place of Connection.get_component_candidates, which
    gather_candidates calls for the host sockets: if it stops, or the method takes other
    arguments, the check says so (else the media ports would silently be ephemeral)."""
    async def gather_candidates(self: aioice.Connection) -> None:
        return None

    async def get_component_candidates(self: aioice.Connection,
                                       component: int) -> list[Any]:
        return []

    with monkeypatch.context() as patched:
        patched.setattr(aioice.Connection, "gather_candidates", gather_candidates)
        with pytest.raises(IncompatibleAiortc, match=r"Connection\.gather_candidates no "
                                                     "longer uses get_component_candidates"):
            check_compatible()
    monkeypatch.setattr(aioice.Connection, "get_component_candidates",
                        get_component_candidates)
    with pytest.raises(IncompatibleAiortc, match=r"get_component_candidates is gone or no "
                                                 r"longer takes \(self, component, addresses"):
        check_compatible()


def test_a_sender_internal_the_packet_sender_keeps_is_named(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """PacketSender writes the counts aiortc's RTCP sender reports read: a sender
    that stops reading them (or renames them) must fail the check."""
    def run_rtcp(self: RTCRtpSender) -> None:
        return None

    monkeypatch.setattr(RTCRtpSender, "_run_rtcp", run_rtcp)
    with pytest.raises(IncompatibleAiortc, match="_run_rtcp no longer uses "
                                                 "_RTCRtpSender__packet_count"):
        check_compatible()


async def test_send_packets_takes_the_senders_loop_before_it_starts() -> None:
    pc = aiortc.RTCPeerConnection(aiortc.RTCConfiguration(iceServers=[]))
    try:
        sender = pc.addTransceiver("video", direction="sendonly").sender
        packets = aiortc_hooks.send_packets(sender)
        assert sender._run_rtp == packets._run_rtp
        assert sender._retransmit == packets._retransmit
        sender._RTCRtpSender__started = True  # type: ignore[attr-defined]
        try:
            with pytest.raises(RuntimeError, match="before the sender starts"):
                aiortc_hooks.send_packets(sender)
        finally:
            sender._RTCRtpSender__started = False  # type: ignore[attr-defined]
    finally:
        await pc.close()


def test_a_moved_msid_writer_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    """Reused senders are renamed through the attributes aiortc writes a=msid from."""
    monkeypatch.setattr(rtcpeerconnection, "create_media_description_for_transceiver",
                        lambda *args: None)
    with pytest.raises(IncompatibleAiortc, match="a=msid"):
        check_compatible()


async def test_the_tap_replaces_the_decoder_queue_and_refuses_a_started_receiver() -> None:
    pc = aiortc.RTCPeerConnection(aiortc.RTCConfiguration(iceServers=[]))
    try:
        receiver = pc.addTransceiver("video", direction="recvonly").receiver
        frames: list[tuple[str, bytes, int]] = []
        aiortc_hooks.tap_receiver(receiver, lambda *frame: frames.append(frame))
        queue = receiver._RTCRtpReceiver__decoder_queue  # type: ignore[attr-defined]
        assert isinstance(queue, aiortc_hooks._TapQueue)

        class Codec:
            name = "VP8"

        class Frame:
            data = b"\x10frame"
            timestamp = 3000

        queue.put((Codec(), Frame()))
        assert frames == [("VP8", b"\x10frame", 3000)]
        queue.put(None)
        assert queue.get() is None  # the parked decoder thread is released
        receiver._RTCRtpReceiver__started = True  # type: ignore[attr-defined]
        try:
            with pytest.raises(RuntimeError, match="before the receiver starts"):
                aiortc_hooks.tap_receiver(receiver, lambda *frame: None)
        finally:  # it never really started: let close() skip stopping it
            receiver._RTCRtpReceiver__started = False  # type: ignore[attr-defined]
    finally:
        await pc.close()


# A client that numbers its codecs and header extensions the way Chromium does: aiortc's
# numbers (Opus 96, VP8 97 with RTX 98, H.264 99/101 with RTX 100/102) moved elsewhere.
CHROMIUM_PAYLOAD_TYPES = {96: 111, 97: 96, 98: 97, 99: 103, 100: 104, 101: 107, 102: 108}


def _renumber_like_chromium(sdp: str) -> str:
    def payload_type(number: str) -> str:
        return str(CHROMIUM_PAYLOAD_TYPES.get(int(number), int(number)))

    lines = []
    for line in sdp.split("\r\n"):
        if line.startswith("m="):
            head = line.split(" ")[:3]
            line = " ".join(head + [payload_type(n) for n in line.split(" ")[3:]])
        for prefix in ("a=rtpmap:", "a=fmtp:", "a=rtcp-fb:"):
            if line.startswith(prefix):
                number, _, rest = line[len(prefix):].partition(" ")
                line = f"{prefix}{payload_type(number)} {rest}"
        if "apt=" in line:
            before, _, number = line.partition("apt=")
            line = f"{before}apt={payload_type(number)}"
        if line.startswith("a=extmap:"):
            number, _, rest = line[len("a=extmap:"):].partition(" ")
            line = f"a=extmap:{int(number) + 6} {rest}"
        lines.append(line)
    return "\r\n".join(lines)


def _meanings(sdp: str) -> dict[int, set[str]]:
    """Payload type to every codec it names anywhere in the description."""
    meanings: dict[int, set[str]] = {}
    for media in SessionDescription.parse(sdp).media:
        for codec in media.rtp.codecs:
            assert codec.payloadType is not None
            meanings.setdefault(codec.payloadType, set()).add(
                f"{codec} {sorted(codec.parameters.items(), key=str)}".replace(
                    f"PT={codec.payloadType}", ""))
    return meanings


async def _negotiated(client: aiortc.RTCPeerConnection, server: aiortc.RTCPeerConnection
                      ) -> tuple[str, aiortc_hooks.ClientNegotiation]:
    """A Chromium-numbered client publishes audio and video, then the server adds two
    sendonly transceivers of its own; returns the client's offer and what it taught."""
    client.addTransceiver("audio", direction="sendonly")
    client.addTransceiver("video", direction="sendonly")
    await client.setLocalDescription(await client.createOffer())
    offer = _renumber_like_chromium(client.localDescription.sdp)
    await client.setLocalDescription(RTCSessionDescription(offer, "offer"))
    negotiation = aiortc_hooks.ClientNegotiation()
    await server.setRemoteDescription(RTCSessionDescription(offer, "offer"))
    negotiation.learn(offer)
    await server.setLocalDescription(await server.createAnswer())
    await client.setRemoteDescription(server.localDescription)
    server.addTransceiver("audio", direction="sendonly")
    server.addTransceiver("video", direction="sendonly")
    return offer, negotiation


async def test_a_server_re_offer_keeps_the_clients_numbers() -> None:
    """Chromium follows a re-offer's renumbering and a started aiortc receiver does not
    (pictures stopped after the first re-offer): the server must keep the client's."""
    config = aiortc.RTCConfiguration(iceServers=[])
    peers = [aiortc.RTCPeerConnection(config) for _ in range(4)]
    client, server, control_client, control_server = peers
    try:
        await _negotiated(control_client, control_server)
        plain = SessionDescription.parse((await control_server.createOffer()).sdp)
        assert [c.payloadType for c in plain.media[1].rtp.codecs][:1] == [97], (
            "aiortc's createOffer no longer renumbers: the hook may be unnecessary")

        offer, negotiation = await _negotiated(client, server)
        re_offer = await aiortc_hooks.create_offer_keeping_negotiation(server, negotiation)
        described = SessionDescription.parse(re_offer.sdp)
        assert len(described.media) == 4
        client_numbers = _meanings(offer)
        for media in described.media:
            first = media.rtp.codecs[0]
            assert (first.mimeType, first.payloadType) in [("audio/opus", 111), ("video/VP8", 96)]
            assert {e.uri: e.id for e in media.rtp.headerExtensions}.items() <= (
                negotiation.extension_ids.items())
            assert [e.id for e in media.rtp.headerExtensions]
        for number, meaning in _meanings(re_offer.sdp).items():
            assert len(meaning) == 1, f"payload type {number} has two meanings: {meaning}"
            assert number not in client_numbers or meaning == client_numbers[number]

        await server.setLocalDescription(re_offer)
        await client.setRemoteDescription(server.localDescription)
        await client.setLocalDescription(await client.createAnswer())
        await server.setRemoteDescription(client.localDescription)
        new_video = server.getTransceivers()[3]
        assert [(c.mimeType, c.payloadType) for c in new_video._codecs][:2] == [
            ("video/VP8", 96), ("video/rtx", 97)]
    finally:
        for peer in peers:
            await peer.close()


def _packet(sequence_number: int, timestamp: int, data: bytes, *, marker: bool = False
            ) -> RtpPacket:
    packet = RtpPacket(payload_type=96, marker=int(marker), sequence_number=sequence_number,
                       timestamp=timestamp, payload=data)
    packet._data = data  # type: ignore[attr-defined]  # the depayloaded bytes, as aiortc sets
    return packet


class Clock:
    """Monotonic seconds the test moves."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _video_buffer(clock: Clock) -> aiortc_hooks.PromptJitterBuffer:
    return aiortc_hooks.PromptJitterBuffer(capacity=128, is_video=True, clock=clock)


def _out(frame: Any) -> list[tuple[bytes, int, int]]:
    """(data, RTP timestamp, frames skipped before it) of each frame handed over."""
    if frame is None:
        return []
    return [(f.data, f.rtp_timestamp, f.skipped) for f in [frame, *frame.following]]


def test_a_video_frame_is_handed_over_at_its_marker_bit_not_a_frame_later() -> None:
    buffer = _video_buffer(Clock())
    assert buffer.add(_packet(65534, 3000, b"a")) == (False, None)
    _, frame = buffer.add(_packet(65535, 3000, b"b", marker=True))
    assert frame is not None and (frame.data, frame.timestamp) == (b"ab", 3000)
    # a lost packet holds the frame back until it is retransmitted
    assert buffer.add(_packet(1, 6000, b"d", marker=True)) == (False, None)
    _, frame = buffer.add(_packet(0, 6000, b"c"))
    assert frame is not None and frame.data == b"cd"
    # a frame whose marker never came completes when the next frame begins
    assert buffer.add(_packet(2, 9000, b"e")) == (False, None)
    _, frame = buffer.add(_packet(3, 12000, b"f"))
    assert frame is not None and (frame.data, frame.timestamp) == (b"e", 9000)
    # a late duplicate of a frame already handed over is dropped
    assert buffer.add(_packet(1, 6000, b"d", marker=True)) == (False, None)


def test_a_frame_comes_with_the_payloads_it_came_in_less_padding() -> None:
    """The payloads go on to viewers as they are (PacketSender); a padding packet
    (no payload) is not media."""
    buffer = _video_buffer(Clock())
    buffer.add(_packet(1, 3000, b"a"))
    buffer.add(_packet(2, 3000, b""))
    _, frame = buffer.add(_packet(3, 3000, b"c", marker=True))
    assert isinstance(frame, aiortc_hooks.PromptFrame)
    assert (frame.data, frame.payloads) == (b"ac", (b"a", b"c"))
    audio = aiortc_hooks.PromptJitterBuffer(capacity=16)
    _, frame = audio.add(_packet(7, 960, b"opus"))
    assert isinstance(frame, aiortc_hooks.PromptFrame) and frame.payloads == (b"opus",)


def test_a_frame_held_by_a_lost_packet_is_given_up_after_the_wait() -> None:
    clock = Clock()
    buffer = _video_buffer(clock)
    assert _out(buffer.add(_packet(10, 3000, b"a"))[1]) == []
    assert _out(buffer.add(_packet(11, 3000, b"b", marker=True))[1]) == [(b"ab", 3000, 0)]
    # Frame 6000 loses packet 12; packet 13 shows the gap. Frames 9000 and 12000 are
    # complete behind it, and held back: they follow a frame that may still come.
    assert _out(buffer.add(_packet(13, 6000, b"d", marker=True))[1]) == []
    clock.now += 0.033
    assert _out(buffer.add(_packet(14, 9000, b"e", marker=True))[1]) == []
    clock.now += 0.033
    assert _out(buffer.add(_packet(15, 12000, b"f"))[1]) == []
    clock.now += 0.083  # 149 ms since the gap showed
    assert _out(buffer.add(_packet(16, 12000, b"g", marker=True))[1]) == []
    clock.now += 0.001  # 150 ms: give up on frame 6000; all that is complete comes out
    assert _out(buffer.add(_packet(17, 15000, b"h", marker=True))[1]) == [
        (b"e", 9000, 1), (b"fg", 12000, 0), (b"h", 15000, 0)]
    # The retransmission comes too late and is dropped; the stream goes on.
    assert buffer.add(_packet(12, 6000, b"c")) == (False, None)
    assert _out(buffer.add(_packet(18, 18000, b"i", marker=True))[1]) == [(b"i", 18000, 0)]


def test_a_retransmission_later_than_a_hundred_packets_does_not_empty_the_buffer() -> None:
    """aiortc's buffer takes a packet over 100 behind its oldest as a new stream and
    empties itself, keyframe request and all; one given up on is merely late."""
    clock = Clock()
    buffer = _video_buffer(clock)
    buffer.add(_packet(1, 3000, b"a", marker=True))
    buffer.add(_packet(3, 6000, b"c", marker=True))  # 2 is lost
    clock.now += 0.2
    # given up on 2's frame, and on 3's, which cannot be known to start a frame
    assert _out(buffer.add(_packet(4, 9000, b"d", marker=True))[1]) == [(b"d", 9000, 1)]
    for n in range(5, 105):  # a hundred more frames
        assert _out(buffer.add(_packet(n, 3000 * n, b"x", marker=True))[1]) == [
            (b"x", 3000 * n, 0)]
    for n in range(105, 115):  # a keyframe, its last packet not yet here
        assert buffer.add(_packet(n, 315_000, b"k")) == (False, None)
    assert buffer.add(_packet(2, 3001, b"b", marker=True)) == (False, None)  # too late
    _, frame = buffer.add(_packet(115, 315_000, b"K", marker=True))
    assert _out(frame) == [(b"k" * 10 + b"K", 315_000, 0)]  # the keyframe is whole


def test_a_retransmission_in_time_releases_every_frame_held_behind_it() -> None:
    clock = Clock()
    buffer = _video_buffer(clock)
    buffer.add(_packet(1, 3000, b"a", marker=True))
    for sequence_number, timestamp, data in ((3, 6000, b"c"), (4, 9000, b"d"),
                                             (5, 12000, b"e")):
        assert buffer.add(_packet(sequence_number, timestamp, data, marker=True)) == (
            False, None)
        clock.now += 0.033
    _, frame = buffer.add(_packet(2, 3001, b"b", marker=True))  # 99 ms late: in time
    assert _out(frame) == [(b"b", 3001, 0), (b"c", 6000, 0), (b"d", 9000, 0),
                           (b"e", 12000, 0)]


def test_a_loss_across_a_frame_boundary_skips_to_a_frame_known_to_start() -> None:
    """Packets 13 and 14 are lost: the end of frame 6000 and the start of frame 9000.
    Packet 15 cannot be shown to start a frame; 16 follows a marker and does."""
    clock = Clock()
    buffer = _video_buffer(clock)
    buffer.add(_packet(11, 3000, b"a", marker=True))
    assert buffer.add(_packet(12, 6000, b"b")) == (False, None)
    assert buffer.add(_packet(15, 9000, b"e", marker=True)) == (False, None)
    clock.now += 0.2
    assert buffer.add(_packet(16, 12000, b"f")) == (False, None)  # not complete yet
    _, frame = buffer.add(_packet(17, 12000, b"g", marker=True))
    assert _out(frame) == [(b"fg", 12000, 2)]


def test_the_tap_reports_skipped_frames_before_the_next_and_maps_timestamps() -> None:
    calls: list[Any] = []
    queue = aiortc_hooks._TapQueue(lambda *frame: calls.append(frame),
                                   lambda count: calls.append(count))

    class Codec:
        name = "VP8"

    first = aiortc_hooks.PromptFrame(b"e", 4294967000, skipped=1)
    first.following = [aiortc_hooks.PromptFrame(b"f", 2704),  # the RTP clock wrapped
                       aiortc_hooks.PromptFrame(b"g", 5704, skipped=2)]
    first.timestamp = 90_000  # as the receiver maps the frame it is handed
    queue.put((Codec(), first))
    assert calls == [1, ("VP8", b"e", 90_000), ("VP8", b"f", 93_000), 2,
                     ("VP8", b"g", 96_000)]


def test_audio_packets_are_handed_over_at_once_and_a_gap_is_not_waited_for() -> None:
    buffer = aiortc_hooks.PromptJitterBuffer(capacity=16)
    seen = []
    for sequence_number in (10, 11, 13, 12, 14):  # 12 comes late, after 13
        _, frame = buffer.add(_packet(sequence_number, sequence_number * 960, b"x"))
        seen.append(None if frame is None else frame.timestamp // 960)
    assert seen == [10, 11, 13, None, 14]


async def test_the_tap_also_swaps_the_jitter_buffer() -> None:
    pc = aiortc.RTCPeerConnection(aiortc.RTCConfiguration(iceServers=[]))
    try:
        video = pc.addTransceiver("video", direction="recvonly").receiver
        audio = pc.addTransceiver("audio", direction="recvonly").receiver
        for receiver, capacity in ((video, 512), (audio, 16)):
            aiortc_hooks.tap_receiver(receiver, lambda *frame: None)
            buffer = receiver._RTCRtpReceiver__jitter_buffer  # type: ignore[attr-defined]
            assert isinstance(buffer, aiortc_hooks.PromptJitterBuffer)
            assert buffer.capacity == capacity and buffer._is_video == (receiver is video)
    finally:
        await pc.close()


async def test_the_tap_gives_a_video_receivers_estimator_the_cheaper_counter() -> None:
    pc = aiortc.RTCPeerConnection(aiortc.RTCConfiguration(iceServers=[]))
    try:
        receiver = pc.addTransceiver("video", direction="recvonly").receiver
        aiortc_hooks.tap_receiver(receiver, lambda *frame: None)
        estimator = receiver._RTCRtpReceiver__remote_bitrate_estimator  # type: ignore[attr-defined]
        assert isinstance(estimator.incoming_bitrate, aiortc_hooks._RateCounter)
        assert estimator.incoming_bitrate._window_size == 1000
    finally:
        await pc.close()


@pytest.mark.parametrize("seed", range(4))
def test_the_estimator_sends_the_same_rembs_with_the_cheaper_counter(seed: int) -> None:
    """A video stream as these publishers send it (30 frames a second, 6 packets a
    frame), arrival times jittered by a few ms either way (some before the window's
    first) and a pause longer than the window now and then: aiortc's estimator gives
    the same estimates, at the same packets, with either counter."""
    def estimates(counter: bool) -> list[tuple[int, list[int]] | None]:
        rnd = random.Random(seed)
        estimator = RemoteBitrateEstimator()
        if counter:
            estimator.incoming_bitrate = aiortc_hooks._RateCounter(1000, 8000)  # type: ignore[assignment]
        out, now = [], 1000
        for i in range(6000):
            if i % 6 == 0:
                now += rnd.choice([0, 1, 4, 4, 9, 33])
            if rnd.random() < 0.002:
                now += 1500
            abs_send_time = ((i // 6 * 33) << 18) // 1000 & 0xFFFFFF
            out.append(estimator.add(arrival_time_ms=now + rnd.randint(-3, 3),
                                     abs_send_time=abs_send_time,
                                     payload_size=rnd.randint(100, 1200), ssrc=1234))
        return out

    theirs = estimates(False)
    assert sum(e is not None for e in theirs) > 5
    assert estimates(True) == theirs


def test_the_cheaper_counter_forgets_what_left_the_window() -> None:
    for counter in (aiortc_hooks._RateCounter(1000, 8000), RateCounter(1000, 8000)):
        assert counter.rate(5) is None
        counter.add(1000, 0)
        counter.add(1000, 500)
        assert counter.rate(999) == 16_000  # bits a second: 2000 bytes in 1000 ms
        assert counter.rate(1000) == 8_000  # the first left the window
        assert counter.rate(1600) is None
        counter.add(500, 1700)
        counter.reset()
        assert counter.rate(1701) is None


async def test_own_rembs_go_out_every_200_ms_unless_they_lower_the_estimate() -> None:
    """aiortc's receiver sends a REMB a packet while it sees the link overused."""
    pc = aiortc.RTCPeerConnection(aiortc.RTCConfiguration(iceServers=[]))
    try:
        receiver = pc.addTransceiver("video", direction="recvonly").receiver
        sent: list[int] = []

        async def record(packet: Any) -> None:
            sent.append(unpack_remb_fci(packet.fci)[0])

        receiver._send_rtcp = record  # type: ignore[method-assign]
        now = [100.0]
        relay = aiortc_hooks.EstimateRelay(receiver, clock=lambda: now[0])

        def remb(bits_per_second: int) -> RtcpPsfbPacket:
            return RtcpPsfbPacket(fmt=RTCP_PSFB_APP, ssrc=1, media_ssrc=0,
                                  fci=pack_remb_fci(bits_per_second, [5]))

        for bits_per_second in (1_000_000, 1_000_000, 990_000, 900_000):
            await receiver._send_rtcp(remb(bits_per_second))
        now[0] += aiortc_hooks.REMB_INTERVAL_S
        await receiver._send_rtcp(remb(950_000))
        assert sent == [1_000_000, 900_000, 950_000]  # 1% lower waits, 10% does not
        assert relay.held == 2
    finally:
        await pc.close()


async def test_a_connection_closed_while_it_connects_ends_its_task_quietly(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """aiortc's connecting task (``__connect``, started by setRemoteDescription and
    awaited by nobody) raised InvalidStateError ('RTCIceTransport is closed') when the
    connection closed while it was connecting: logged as "Task exception was never
    retrieved", which failed test_sdp_fuzz on a busy machine (a fuzzed offer, then the
    socket closed at once). The interleaving depends on where the close catches the
    task, so aiortc's task is made to fail so here: on a closed connection the server's
    ``PeerConnection`` ends it quietly; on an open one the error is raised as before."""
    async def fails(self: RTCPeerConnection) -> None:
        raise InvalidStateError("RTCIceTransport is closed")

    monkeypatch.setattr(RTCPeerConnection, "_RTCPeerConnection__connect", fails)
    connection = aiortc_hooks.PeerConnection()
    with pytest.raises(InvalidStateError):
        await connection._RTCPeerConnection__connect()
    await connection.close()
    await connection._RTCPeerConnection__connect()  # closed: nothing raised
    plain = RTCPeerConnection()
    await plain.close()
    with pytest.raises(InvalidStateError):
        await plain._RTCPeerConnection__connect()
