"""Feedback between viewers and publisher: keyframe requests and bandwidth estimates.

``on_keyframe_request``: the sender calls ``self._send_keyframe()`` for a PLI or FIR;
an instance attribute of that name takes the call. ``on_bitrate_estimate``: the
sender handles REMB in ``_handle_rtcp_packet``; we wrap it on the instance to read
each viewer's estimate. ``EstimateRelay``: wraps the receiver's ``_send_rtcp`` so its
own REMB to the publisher never exceeds the viewers' estimate, throttles those REMBs
(``REMB_INTERVAL_S``), and sends REMB with the receiver's private ``__rtcp_ssrc`` when
the viewers' estimate changes."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiortc import RTCRtpReceiver, RTCRtpSender
from aiortc.rtp import RTCP_PSFB_APP, RtcpPsfbPacket, pack_remb_fci, unpack_remb_fci

from videoassist.media.aiortc_hooks.internals import _RTCP_SSRC

# The shortest time between two REMBs to a publisher that do not lower its estimate
# (EstimateRelay), as libwebrtc's RembThrottler.
REMB_INTERVAL_S = 0.2


def on_keyframe_request(sender: RTCRtpSender,
                        callback: Callable[[], None]) -> Callable[[], None]:
    """Call ``callback`` when the remote viewer asks this sender for a keyframe.

    Returns the sender's own handling (its encoder's next frame is a keyframe), for a
    callback that passes the request on when the sender encodes for itself.
    """
    own: Callable[[], None] = sender._send_keyframe
    sender._send_keyframe = callback  # type: ignore[method-assign]
    return own


def _remb(packet: Any) -> tuple[int, list[int]] | None:
    """(bits per second, media SSRCs) of a REMB packet; None for any other packet."""
    if isinstance(packet, RtcpPsfbPacket) and packet.fmt == RTCP_PSFB_APP:
        try:
            return unpack_remb_fci(packet.fci)
        except ValueError:  # an APP feedback that is not REMB
            return None
    return None


def on_bitrate_estimate(sender: RTCRtpSender, callback: Callable[[int], None]) -> None:
    """Call ``callback(bits_per_second)`` on each REMB the viewer sends this sender."""
    original = sender._handle_rtcp_packet

    async def handle(packet: Any) -> None:
        remb = _remb(packet)
        if remb is not None and sender._ssrc in remb[1]:
            callback(remb[0])
        await original(packet)

    sender._handle_rtcp_packet = handle  # type: ignore[method-assign]


class EstimateRelay:
    """What the publisher hears as its bandwidth: the lower of the server's own
    estimate (aiortc's receiver sends REMB) and the viewers' (``set_viewers``).

    Wraps the receiver's ``_send_rtcp`` to lower its own REMB reports, and sends a
    REMB of its own when the viewers' estimate changes.

    aiortc's receiver sends a REMB on every packet while its estimator sees the
    link overused (delays growing), as on a server short of CPU: hundreds a second.
    As libwebrtc's ``RembThrottler``, one goes out at most every
    ``REMB_INTERVAL_S`` unless it lowers the last one sent by more than 3%.
    """

    def __init__(self, receiver: RTCRtpReceiver,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._receiver = receiver
        self._clock = clock
        self.own: int | None = None
        self.viewers: int | None = None
        self.sent: int | None = None  # the last REMB sent
        self._sent_at = -REMB_INTERVAL_S
        self.held = 0  # own REMBs not sent (throttled)
        self._send: Callable[[Any], Awaitable[None]] = receiver._send_rtcp

        async def send(packet: Any) -> None:
            remb = _remb(packet)
            if remb is not None:
                self.own, ssrcs = remb
                lowest = min(self.own, self.viewers or self.own)
                if (self._clock() - self._sent_at < REMB_INTERVAL_S and self.sent is not None
                        and lowest >= self.sent * 0.97):
                    self.held += 1
                    return
                packet = RtcpPsfbPacket(fmt=RTCP_PSFB_APP, ssrc=packet.ssrc, media_ssrc=0,
                                        fci=pack_remb_fci(lowest, ssrcs))
                self._note_sent(lowest)
            await self._send(packet)

        receiver._send_rtcp = send  # type: ignore[method-assign]

    def _note_sent(self, bitrate: int) -> None:
        self.sent = bitrate
        self._sent_at = self._clock()

    async def set_viewers(self, bitrate: int | None) -> bool:
        """Tell the publisher at once; False if there is nobody to tell yet."""
        self.viewers = bitrate
        if bitrate is None:
            return False
        rtcp_ssrc = getattr(self._receiver, _RTCP_SSRC, None)
        sources = self._receiver.getSynchronizationSources()
        if rtcp_ssrc is None or not sources:
            return False
        lowest = min(bitrate, self.own or bitrate)
        self._note_sent(lowest)
        await self._send(RtcpPsfbPacket(
            fmt=RTCP_PSFB_APP, ssrc=rtcp_ssrc, media_ssrc=0,
            fci=pack_remb_fci(lowest, [s.source for s in sources])))
        return True
