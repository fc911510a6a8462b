"""Forwarded frames go out in the RTP payloads they came in (aiortc_hooks.PacketSender),
each viewer's packets numbered on by its own sender: real aiortc clients through the
real server, the server's packets to a viewer read on their way to its DTLS transport
(the one observer here; nothing is changed)."""

from __future__ import annotations

import asyncio
import itertools
import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiortc import (
    RTCCertificate,
    RTCDtlsTransport,
    RTCIceGatherer,
    RTCIceTransport,
    RTCRtpCodecParameters,
    RTCRtpReceiver,
    RTCRtpSender,
)
from aiortc.codecs.vpx import Vp8Encoder
from aiortc.rtcrtpparameters import (
    RTCRtpDecodingParameters,
    RTCRtpHeaderExtensionParameters,
    RTCRtpParameters,
    RTCRtpReceiveParameters,
    RTCRtpRtxParameters,
)
from aiortc.rtcrtpreceiver import RemoteStreamTrack
from aiortc.rtp import (
    RTP_HISTORY_SIZE,
    HeaderExtensions,
    HeaderExtensionsMap,
    RtcpPacket,
    RtcpSrPacket,
    RtpPacket,
    is_rtcp,
)

from tests.support.loss import PacketLoss
from tests.support.peers import MediaClient, check_decodable, published, sent_numbers
from tests.support.server import Server, two_parties
from videoassist.appkeys import MEDIA
from videoassist.media import aiortc_hooks
from videoassist.media.aiortc_hooks import (
    UdpPath,
    _extensions_template,
    _serialize_extensions,
    _udp_path,
    _with_send_time,
)
from videoassist.media.frames import is_keyframe, renumber_vp8
from videoassist.media.slot import SenderSlot


@dataclass
class Wire:
    """The packets one sender sent: its own (``ssrc``) and its retransmissions on RTX
    (``rtx_ssrc``), and its RTCP sender reports with how many packets and which RTP
    timestamp had gone before each."""

    ssrc: int
    rtx_ssrc: int
    packets: list[RtpPacket] = field(default_factory=list)
    rtx: list[RtpPacket] = field(default_factory=list)
    reports: list[tuple[RtcpSrPacket, int, int | None]] = field(default_factory=list)


def _tap_client(sender: RTCRtpSender) -> Wire:
    """What a client's (aiortc's own) sender sends: all through ``_send_rtp``."""
    wire = Wire(sender._ssrc, sender._rtx_ssrc)
    note = _noter(wire)
    transport = sender.transport
    send_rtp: Callable[[bytes], Awaitable[None]] = transport._send_rtp

    async def send_rtp_and_note(data: bytes) -> None:
        note(data)
        await send_rtp(data)

    transport._send_rtp = send_rtp_and_note  # type: ignore[method-assign]
    return wire


def _tap_wire(slot: SenderSlot) -> Wire:
    """What the slot's sender sends: its frames' packets over UDP
    (``PacketSender.send_udp``, from its loop or handed over at once), and RTCP,
    retransmissions and anything through TURN (the DTLS transport's ``_send_rtp``)."""
    sender = slot.transceiver.sender
    wire = Wire(sender._ssrc, sender._rtx_ssrc)
    note = _noter(wire)
    transport = sender.transport
    send_rtp: Callable[[bytes], Awaitable[None]] = transport._send_rtp
    send_udp = slot.packets.send_udp

    async def send_rtp_and_note(data: bytes) -> None:
        note(data)
        await send_rtp(data)

    def send_udp_and_note(packets: list[bytes], udp: UdpPath) -> None:
        for data in packets:
            note(data)
        send_udp(packets, udp)

    transport._send_rtp = send_rtp_and_note  # type: ignore[method-assign]
    slot.packets.send_udp = send_udp_and_note  # type: ignore[method-assign]
    return wire


def _noter(wire: Wire) -> Callable[[bytes], None]:
    def note(data: bytes) -> None:
        if is_rtcp(data):
            for report in RtcpPacket.parse(data):
                if isinstance(report, RtcpSrPacket) and report.ssrc == wire.ssrc:
                    last = wire.packets[-1].timestamp if wire.packets else None
                    wire.reports.append((report, len(wire.packets), last))
        else:
            packet = RtpPacket.parse(data)
            if packet.ssrc == wire.ssrc:
                wire.packets.append(packet)
            elif packet.ssrc == wire.rtx_ssrc:
                wire.rtx.append(packet)

    return note


def _video_slot(server: Server, viewer: MediaClient) -> SenderSlot:
    session = server.app[MEDIA].sessions[viewer.participant_id]  # type: ignore[attr-defined]
    (slot,) = [slot for slot in session.outgoing.slots if slot.kind == "video"]
    assert isinstance(slot, SenderSlot)
    return slot


def _picture_id(payload: bytes) -> int:
    assert payload[0] & 0x80 and payload[1] & 0x80 and payload[2] & 0x80  # 15-bit id
    return (payload[2] & 0x7F) << 8 | payload[3]


def _frames(packets: list[RtpPacket]) -> list[list[RtpPacket]]:
    """Packets grouped by frame (their RTP timestamp), in sending order."""
    return [list(group) for _, group in itertools.groupby(packets, lambda p: p.timestamp)]


async def _until(check: Callable[[], bool], timeout: float = 10) -> None:
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(0.02)


async def test_a_viewer_gets_the_payloads_as_sent_numbered_by_its_own_sender(
        server: Server) -> None:
    """The publisher's RTP payloads reach a late viewer unchanged but for the VP8
    picture id, which counts the viewer's own frames; its first frame is the cached
    keyframe, sequence numbers go up by one packet by packet, and its RTCP sender
    reports count the packets sent and name the last timestamp sent."""
    staff_token, customer_token, job_id = await two_parties(server)
    publisher = await MediaClient(server, customer_token, audio=False).start()
    sent = published(publisher)
    own = _tap_client(next(t.sender for t in publisher.pc.getTransceivers()
                         if t.sender.track is sent))
    try:
        await _until(lambda: sent.sent >= 20)  # well into the first group of pictures
        viewer = await MediaClient(server, staff_token, job_id, video=False, audio=False,
                                   encoded=True).start()
        try:
            video = await viewer.wait_remote(publisher.participant_id, frames=1)
            slot = _video_slot(server, viewer)
            # Straight to the UDP socket (loopback, no TURN), counted by the transport.
            dtls = slot.transceiver.sender.transport
            assert _udp_path(dtls) is not None
            tx_before = dtls._get_stats().popitem()[1].packetsSent  # type: ignore[attr-defined]
            wire = _tap_wire(slot)
            await _until(lambda: len(wire.reports) >= 2 and len(_frames(wire.packets)) > 30)
            numbers = check_decodable(video, sent)
            assert numbers[0] < 20  # the keyframe sent before the viewer came
            payloads = {packet.payload[4:]: packet.payload for packet in own.packets}
            frames = _frames(wire.packets)
            for frame in frames:
                # Each payload is one the publisher sent, picture id aside.
                originals = [payloads[packet.payload[4:]] for packet in frame]
                assert [p.payload for p in frame] == renumber_vp8(
                    originals, _picture_id(frame[0].payload))
                assert [p.marker for p in frame] == [0] * (len(frame) - 1) + [1]
            ids = [_picture_id(frame[0].payload) for frame in frames]
            assert all((b - a) % 2**15 == 1 for a, b in itertools.pairwise(ids)), ids
            sequence = [p.sequence_number for p in wire.packets]
            assert all((b - a) % 2**16 == 1 for a, b in itertools.pairwise(sequence))
            for report, count, timestamp in wire.reports:
                # The wire was tapped once the viewer had its first frame: the report
                # counts those packets too.
                assert report.sender_info.packet_count >= count > 0
                assert report.sender_info.rtp_timestamp == timestamp
            first_report, first_count, _ = wire.reports[0]
            last_report, last_count, _ = wire.reports[-1]
            assert (last_report.sender_info.packet_count
                    - first_report.sender_info.packet_count) == last_count - first_count
            stats = dtls._get_stats().popitem()[1]  # type: ignore[attr-defined]
            assert stats.packetsSent - tx_before >= len(wire.packets) + len(wire.reports)
            octets = sum(len(p.payload) for p in wire.packets[first_count:last_count])
            assert (last_report.sender_info.octet_count
                    - first_report.sender_info.octet_count) == octets
            # Caught up, frames go out from the publication's fan-out at once, not
            # through the viewer's queue and its sender's loop: all but a few the
            # loop was busy for. A loaded machine may make the loop busy more often:
            # most. (The catch-up, the cached run paced, goes through the loop: it
            # lasts the run's age, so the count starts once the viewer is live.)
            await _until(lambda: sent_numbers(video, sent)[-1] >= sent.sent - 3)
            sent_now, before = slot.packets.sent_now, len(_frames(wire.packets))
            await _until(lambda: len(_frames(wire.packets)) > before + 30)
            after = len(_frames(wire.packets))
            assert slot.packets.sent_now - sent_now > (after - before) // 2, (
                slot.packets.sent_now - sent_now, after - before)
        finally:
            await viewer.close()
    finally:
        await publisher.close()


async def test_a_viewers_nack_is_answered_from_its_senders_history(server: Server) -> None:
    staff_token, customer_token, job_id = await two_parties(server)
    publisher = await MediaClient(server, customer_token, audio=False).start()
    viewer = await MediaClient(server, staff_token, job_id, video=False, audio=False,
                               encoded=True).start()
    try:
        await viewer.wait_remote(publisher.participant_id, frames=1)
        slot = _video_slot(server, viewer)
        wire = _tap_wire(slot)
        await _until(lambda: len(wire.packets) >= 20)
        index = len(wire.packets) - 10  # not 10: the wait may have let more by, when busy
        lost = wire.packets[index]
        receiver = next(t.receiver for t in viewer.pc.getTransceivers()
                        if t.mid == slot.transceiver.mid)
        # RTX (RFC 4588): the original sequence number, then the payload as sent. On a
        # busy machine the viewer's own receiver also asks again for packets its
        # socket really dropped (this one too, if so), and gets them: the checks are
        # of this packet's answers, and of none once it has left the history.
        original = lost.sequence_number.to_bytes(2, "big")

        def answers() -> list[RtpPacket]:
            return [packet for packet in wire.rtx if packet.payload[:2] == original]

        await receiver._send_rtcp_nack(wire.ssrc, [lost.sequence_number])
        await _until(lambda: bool(answers()))
        again = answers()[0]
        assert again.payload == original + lost.payload
        assert (again.timestamp, again.marker) == (lost.timestamp, lost.marker)
        assert slot.packets.retransmitted == len(wire.rtx)
        # Once RTP_HISTORY_SIZE packets later, it is no longer held: not answered.
        await _until(lambda: len(wire.packets) >= index + 1 + RTP_HISTORY_SIZE)
        held = len(answers())
        await receiver._send_rtcp_nack(wire.ssrc, [lost.sequence_number])
        sent = len(wire.packets)
        await _until(lambda: len(wire.packets) >= sent + 30)  # a round trip and more
        assert len(answers()) == held
    finally:
        await viewer.close()
        await publisher.close()


async def test_a_slot_numbers_its_packets_on_across_publishers(server: Server) -> None:
    """A publisher leaves and another takes its place on the viewer's video slot: the
    viewer's packets carry on in sequence, their timestamps move on, and the new
    publisher's video starts at a keyframe that decodes."""
    staff_token, customer_token, job_id = await two_parties(server)
    viewer = await MediaClient(server, staff_token, job_id, video=False, audio=False,
                               encoded=True).start()
    first = await MediaClient(server, customer_token, audio=False).start()
    try:
        await viewer.wait_remote(first.participant_id, frames=1)
        slot = _video_slot(server, viewer)
        wire = _tap_wire(slot)
        await _until(lambda: len(_frames(wire.packets)) >= 10)
    finally:
        await first.close()
    changed_at = len(wire.packets)
    second = await MediaClient(server, customer_token, audio=False).start()
    try:
        video = await viewer.wait_remote(second.participant_id, frames=10)
        assert _video_slot(server, viewer) is slot  # the same m-section
        numbers = check_decodable(video, published(second))
        assert is_keyframe("VP8", video.encoded[0]) and numbers[0] == 0
        sequence = [p.sequence_number for p in wire.packets]
        assert len(sequence) > changed_at
        assert all((b - a) % 2**16 == 1 for a, b in itertools.pairwise(sequence)), sequence
        timestamps = [frame[0].timestamp for frame in _frames(wire.packets)]
        assert all(0 < (b - a) % 2**32 < 2**31 for a, b in itertools.pairwise(timestamps))
    finally:
        await second.close()
        await viewer.close()


async def test_a_packet_lost_before_the_server_leaves_no_hole_for_the_viewer(
        server: Server) -> None:
    """The publisher's packet and its retransmissions never reach the server: the
    viewer gets no part of the frames given up on, its sequence numbers have no hole
    (its receiver would ask for packets nobody has), and it goes on at a keyframe."""
    staff_token, customer_token, job_id = await two_parties(server)
    publisher = await MediaClient(server, customer_token, audio=False,
                                  keyframes_on_request=True).start()
    viewer = await MediaClient(server, staff_token, job_id, video=False, audio=False,
                               encoded=True).start()
    try:
        video = await viewer.wait_remote(publisher.participant_id, frames=20)
        wire = _tap_wire(_video_slot(server, viewer))
        loss = PacketLoss(publisher, retransmissions=True)
        await _until(lambda: len(wire.packets) >= 10)
        loss.armed = True
        await _until(lambda: loss.lost is not None)
        sent = published(publisher)
        await _until(lambda: bool(sent.restarted_at) and len(video.encoded) > 40)
        numbers = check_decodable(video, sent)
        assert loss.lost_frame not in numbers
        sequence = [p.sequence_number for p in wire.packets]
        assert all((b - a) % 2**16 == 1 for a, b in itertools.pairwise(sequence))
        frames = _frames(wire.packets)
        assert all(frame[-1].marker for frame in frames[:-1])  # whole frames only
        assert video.skipped == 0
    finally:
        await viewer.close()
        await publisher.close()


def test_a_vp8_picture_id_is_written_in_the_width_it_had() -> None:
    seven = bytes([0x90, 0x80, 0x05]) + b"data"        # X, S; I; 7-bit id
    fifteen = bytes([0x90, 0xE0, 0x81, 0x02, 0x11, 0x22]) + b"data"  # I, L, T; 15 bits
    plain = bytes([0x10]) + b"data"                     # no extension: no id
    assert renumber_vp8([seven, fifteen, plain], 0x1234) == [
        bytes([0x90, 0x80, 0x34]) + b"data",
        bytes([0x90, 0xE0, 0x92, 0x34, 0x11, 0x22]) + b"data",
        plain]


def _refuse(*args: object) -> None:
    raise AssertionError("over TURN, received datagrams go through aioice's queue")


async def test_a_publishers_datagrams_skip_aioices_queue(server: Server) -> None:
    """Once connected over plain UDP, the server's DTLS transport handles each SRTP
    datagram as aioice's protocol gets it (aiortc_hooks.receive_directly), not through
    aioice's queue and its own task: counted by the transport, in the receiver's
    statistics, and forwarded to a viewer that decodes them; the ICE pair's protocol
    hands them over without trying to parse them as STUN first."""
    staff_token, customer_token, job_id = await two_parties(server)
    publisher = await MediaClient(server, customer_token, audio=False).start()
    viewer = await MediaClient(server, staff_token, job_id, video=False, audio=False,
                               encoded=True).start()
    try:
        video = await viewer.wait_remote(publisher.participant_id, frames=1)
        session = server.app[MEDIA].sessions[publisher.participant_id]  # type: ignore[attr-defined]
        ((_, transceiver),) = session.publications.values()
        dtls = transceiver.receiver.transport
        connection = dtls.transport._connection
        direct = connection.data_received
        assert isinstance(direct, aiortc_hooks._DirectReceiver)
        assert aiortc_hooks.receive_directly(dtls) is direct
        protocol = connection._nominated[1].protocol
        assert protocol.datagram_received is direct.demux is not None
        before, media_before = direct.direct, direct.demux.media
        at_once_before = direct.at_once
        received = dtls._get_stats().popitem()[1].packetsReceived
        frames = len(video.encoded)
        await _until(lambda: len(video.encoded) >= frames + 30)
        assert direct.direct - before >= 30
        # The tapped receiver's packets (all but the RTCP among the datagrams) handled
        # from the datagram (_FastReceive), not by aiortc's RtpPacket and coroutines.
        fast = transceiver.receiver.__dict__[aiortc_hooks._FAST]
        assert direct.at_once - at_once_before >= 30 * 3  # 30 frames of 3+ packets
        assert fast.handled >= direct.at_once
        # Without aioice's STUN parse first (RTP and RTCP by their first byte).
        assert direct.demux.media - media_before >= direct.direct - before
        assert connection._queue.empty()
        stats = dtls._get_stats().popitem()[1]
        assert stats.packetsReceived - received >= direct.direct - before
        inbound = [s for s in (await transceiver.receiver.getStats()).values()
                   if s.type == "inbound-rtp"]
        assert inbound and inbound[0].packetsReceived >= direct.direct - before
        check_decodable(video, published(publisher))
    finally:
        await viewer.close()
        await publisher.close()


async def test_a_path_that_is_not_plain_udp_sends_through_the_dtls_transport(
        server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    """Through a TURN relay (aioice's own protocol), or whenever the direct way is not
    known to fit, a frame's packets go through ``RTCDtlsTransport._send_rtp``, one by
    one, as aiortc's own loop sends them."""
    # Where the names are looked up: the sender's loop, and receive_directly.
    monkeypatch.setattr(aiortc_hooks.sender, "_udp_path", lambda dtls: None)
    monkeypatch.setattr(aiortc_hooks.direct, "_udp_path", lambda dtls: None)
    monkeypatch.setattr(aiortc_hooks.direct, "_DirectReceiver", _refuse)
    staff_token, customer_token, job_id = await two_parties(server)
    publisher = await MediaClient(server, customer_token, audio=False).start()
    viewer = await MediaClient(server, staff_token, job_id, video=False, audio=False,
                               encoded=True).start()
    try:
        video = await viewer.wait_remote(publisher.participant_id, frames=1)
        slot = _video_slot(server, viewer)
        through: list[bytes] = []
        transport = slot.transceiver.sender.transport
        send_rtp: Callable[[bytes], Awaitable[None]] = transport._send_rtp

        async def send_and_keep(data: bytes) -> None:
            if not is_rtcp(data):
                through.append(data)
            await send_rtp(data)

        transport._send_rtp = send_and_keep  # type: ignore[method-assign]
        frames = len(video.encoded)
        await _until(lambda: len(video.encoded) >= frames + 20)
        check_decodable(video, published(publisher))
        ssrcs = {RtpPacket.parse(data).ssrc for data in through}
        assert slot.transceiver.sender._ssrc in ssrcs
        assert len(through) >= 20
    finally:
        await viewer.close()
        await publisher.close()


@pytest.mark.parametrize("ids", [{"mid": 4, "abs": 2}, {"mid": 9, "abs": 14},
                                 {"mid": 3, "abs": None}, {"mid": None, "abs": 3},
                                 {"mid": 15, "abs": 20}])  # the last: two-byte headers
def test_header_extensions_from_the_template_are_aiortcs_own(ids: dict[str, int | None]
                                                             ) -> None:
    """A sender's header extensions, patched into a template per frame, are byte for
    byte what aiortc's map serializes, whatever ids were negotiated."""
    uris = {"mid": "urn:ietf:params:rtp-hdrext:sdes:mid",
            "abs": "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"}
    extensions_map = HeaderExtensionsMap()
    extensions_map.configure(RTCRtpParameters(headerExtensions=[
        RTCRtpHeaderExtensionParameters(id=number, uri=uris[name])
        for name, number in ids.items() if number is not None]))
    template = _extensions_template(extensions_map, "1")
    for abs_send_time in (0, 1, 0x123456, 0xABCDEF, 0xFFFFFF, 0x800000):
        assert _with_send_time(template, abs_send_time) == _serialize_extensions(
            extensions_map, HeaderExtensions(mid="1", abs_send_time=abs_send_time))


async def test_a_tapped_receivers_packets_handled_at_once_do_what_aiortcs_handler_does(
        ) -> None:
    """The same packets, through aiortc's ``_handle_rtp_packet`` on one receiver and
    through ``_FastReceive`` on another (each tapped, as the server taps a
    publisher's): the same frames and payloads reach the tap, the same RTCP goes back
    (NACKs for a lost packet, REMBs from the same arrival times), the same receiver
    statistics, the same state of the bandwidth estimator (whose REMBs follow from
    it). Packets carry mid and abs-send-time, some padding; one is lost, two come out
    of order; an RTX packet and one with a CSRC are left to aiortc."""
    ids = {"urn:ietf:params:rtp-hdrext:sdes:mid": 4,
           "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time": 2}
    extensions_map = HeaderExtensionsMap()
    extensions_map.configure(RTCRtpParameters(headerExtensions=[
        RTCRtpHeaderExtensionParameters(id=number, uri=uri) for uri, number in ids.items()]))
    vp8 = RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90000, payloadType=96)
    rtx = RTCRtpCodecParameters(mimeType="video/rtx", clockRate=90000, payloadType=97,
                                parameters={"apt": 96})
    ssrc, rtx_ssrc = 1234, 5678
    parameters = RTCRtpReceiveParameters(codecs=[vp8, rtx], encodings=[
        RTCRtpDecodingParameters(ssrc=ssrc, payloadType=96,
                                 rtx=RTCRtpRtxParameters(ssrc=rtx_ssrc))])

    # Three seconds of 30 frames a second, three to five packets each as a VP8
    # packetizer cuts them, each packet with the time it arrives (1 ms apart in a frame).
    packets: list[tuple[bytes, int]] = []
    sequence = 1000
    for index in range(90):
        sent_ms = index * 100 // 3
        payloads = Vp8Encoder()._packetize(bytes([index]) * (2400 + 300 * (index % 3)), index)
        for number, payload in enumerate(payloads):
            packet = RtpPacket(payload_type=96, marker=number == len(payloads) - 1,
                               sequence_number=sequence & 0xFFFF, timestamp=3000 * index,
                               ssrc=ssrc, payload=payload)
            packet.extensions = HeaderExtensions(
                mid="0", abs_send_time=(sent_ms * 2**18 // 1000) & 0xFFFFFF)
            packet.padding_size = 7 if index % 4 == 1 and number == 0 else 0
            packets.append((packet.serialize(extensions_map),
                            3_900_000_000_000 + sent_ms + number))
            sequence += 1
    lost, _ = packets.pop(30)  # a NACK for it, then its retransmission on RTX
    packets[50], packets[51] = packets[51], packets[50]
    original = RtpPacket.parse(lost, extensions_map)
    packets.insert(40, (RtpPacket(
        payload_type=97, marker=original.marker, sequence_number=1,
        timestamp=original.timestamp, ssrc=rtx_ssrc,
        payload=struct.pack("!H", original.sequence_number) + original.payload,
    ).serialize(extensions_map), packets[40][1]))
    with_csrc = RtpPacket.parse(packets[-1][0], extensions_map)
    with_csrc.csrc = [42]
    packets[-1] = (with_csrc.serialize(extensions_map), packets[-1][1])

    async def receiver_and_what_it_does() -> tuple[RTCRtpReceiver, list[Any], list[bytes]]:
        transport = RTCDtlsTransport(RTCIceTransport(RTCIceGatherer()),
                                     [RTCCertificate.generateCertificate()])
        receiver = RTCRtpReceiver("video", transport)
        receiver._track = RemoteStreamTrack(kind="video")  # as a peer connection's
        frames: list[Any] = []
        rtcp: list[bytes] = []
        aiortc_hooks.tap_receiver(receiver, None, payload_sink=lambda *frame: frames.append(
            frame))
        receiver._set_rtcp_ssrc(99)

        async def note(packet: Any) -> None:
            rtcp.append(bytes(packet))

        receiver._send_rtcp = note  # type: ignore[method-assign]
        await receiver.receive(parameters)
        return receiver, frames, rtcp

    slow, slow_frames, slow_rtcp = await receiver_and_what_it_does()
    fast, fast_frames, fast_rtcp = await receiver_and_what_it_does()
    handler = fast.__dict__[aiortc_hooks._FAST]
    try:
        for data, arrival_ms in packets:
            await slow._handle_rtp_packet(RtpPacket.parse(data, extensions_map), arrival_ms)
            parsed = RtpPacket.parse(data, extensions_map)
            if not handler(data, arrival_ms, parsed.ssrc, 2):  # as _DirectReceiver
                assert parsed.payload_type == 97 or parsed.csrc  # what is left to aiortc
                await fast._handle_rtp_packet(parsed, arrival_ms)
            for _ in range(3):
                await asyncio.sleep(0)  # the fast handler's RTCP goes out as tasks
        assert handler.handled == len(packets) - 2
        assert len(fast_frames) == len(slow_frames) >= 88
        assert fast_frames == slow_frames
        assert sorted(fast_rtcp) == sorted(slow_rtcp)
        assert any(RtcpPacket.parse(data)[0].fmt == 1 for data in fast_rtcp)  # a NACK
        # The bandwidth estimator was fed the same: its rate, its filter's state.
        estimators = [receiver._RTCRtpReceiver__remote_bitrate_estimator  # type: ignore[attr-defined]
                      for receiver in (fast, slow)]
        last_ms = packets[-1][1]
        assert len({(e.incoming_bitrate.rate(last_ms), e.estimator.offset(),
                     e.estimator.num_of_deltas(), tuple(e.ssrcs.items()))
                    for e in estimators}) == 1
        assert estimators[0].estimator.num_of_deltas() > 50
        for name in ("packets_received", "base_seq", "max_seq", "cycles"):
            assert ([getattr(s, name) for s in
                     fast._RTCRtpReceiver__remote_streams.values()]  # type: ignore[attr-defined]
                    == [getattr(s, name) for s in
                        slow._RTCRtpReceiver__remote_streams.values()])  # type: ignore[attr-defined]
    finally:
        await slow.stop()
        await fast.stop()
