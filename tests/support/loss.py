"""Packet loss on a client's way out: its video packets dropped before they leave, as a
bad line would (tests/media/test_loss.py, tests/media/test_packets.py)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from aiortc.rtp import RtpPacket, is_rtcp

from tests.support.peers import MediaClient


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
        self.lost_frame = -1  # the frame it was part of, numbered in send order
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
            self.lost_frame = self._track.sent - 1  # the sender packetizes the newest
            return True
        if (packet.ssrc == self._sender._rtx_ssrc and self._retransmissions
                and self.lost is not None
                and int.from_bytes(packet.payload[:2], "big") == self.lost):
            self.dropped_retransmissions += 1
            return True
        return False
