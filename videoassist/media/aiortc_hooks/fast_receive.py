"""A tapped receiver's packets, handled from the datagram: ``tap_receiver`` gives the
receiver a ``_FastReceive``, which ``receive_directly``'s datagrams reach for a known
SSRC: the receiver's ``_handle_rtp_packet`` for the common packet, from the datagram,
without ``RtpPacket.parse`` and two coroutines a packet. It reads the receiver's
private state that handler uses (codecs, statistics, NACK generator, estimator, jitter
buffer, timestamp mapper, decoder queue) and the router's tables; anything uncommon
(RTX, CSRCs, two-byte header extensions) goes through aiortc's handler."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from aiortc import RTCRtpReceiver, clock
from aiortc.codecs import depayload, is_rtx
from aiortc.codecs.vpx import vp8_depayload
from aiortc.rtcdtlstransport import RTCDtlsTransport, RtpRouter
from aiortc.rtcrtpreceiver import StreamStatistics
from aiortc.rtp import RTCP_PSFB_APP, RtcpPsfbPacket, pack_remb_fci

from videoassist.media.aiortc_hooks.internals import (
    _DECODER_QUEUE,
    _ESTIMATOR,
    _JITTER_BUFFER,
    _RTCP_SSRC,
    _names,
)

_FAST = "_videoassist_fast_receive"  # a tapped receiver's _FastReceive, on the instance
_RECEIVER = "_RTCRtpReceiver__"
_RECEIVER_ATTRIBUTES = ("codecs", "remote_streams", "nack_generator", "active_ssrc",
                        "jitter_buffer", "timestamp_mapper", "decoder_queue",
                        "decoder_thread", "remote_bitrate_estimator", "rtcp_ssrc")
ACTIVE_SSRC_INTERVAL_S = 0.1  # how often a source's "last seen" is written (not per packet)


class _Packet:
    """What a tapped receiver's statistics, NACK generator and jitter buffer read of a
    packet (``RtpPacket``'s names), without parsing what nothing reads."""

    __slots__ = (
        "_data",
        "marker",
        "padding_size",
        "payload",
        "payload_type",
        "sequence_number",
        "ssrc",
        "timestamp",
    )

    def __init__(self, sequence_number: int, timestamp: int, marker: int, payload: bytes,
                 payload_type: int, ssrc: int, padding_size: int) -> None:
        self.sequence_number = sequence_number
        self.timestamp = timestamp
        self.marker = marker
        self.payload = payload
        self.payload_type = payload_type
        self.ssrc = ssrc
        self.padding_size = padding_size
        self._data = b""


class _FastReceive:
    """``RTCRtpReceiver._handle_rtp_packet`` for a tapped receiver's common packet, run
    synchronously from the unprotected datagram (``_DirectReceiver``), without
    ``RtpPacket.parse``, its header extensions map and two coroutines a packet.

    The same steps in the same order: the bandwidth estimator (REMB), the source's
    "last seen" (written at most every ``ACTIVE_SSRC_INTERVAL_S``, not per packet), the
    codec, RTCP receiver statistics, the NACK generator, depayloading, the jitter
    buffer, the tap. What aiortc sends from there (a REMB, a NACK, a PLI) goes out as a
    task instead of being awaited in line. A tapped receiver has no decoder, so its
    decoder-error PLI does not apply. Anything out of the common (RTX, CSRCs, two-byte
    header extensions, a malformed header, an unknown SSRC) returns False before any
    step, and goes through aiortc's own ``_handle_rtp_data``.
    """

    def __init__(self, receiver: RTCRtpReceiver) -> None:
        self._receiver = receiver
        self._kinds: dict[int, tuple[Any, bool, bool]] = {}  # pt: codec, is RTX, is VP8
        self._seen: dict[int, float] = {}  # ssrc: when its "last seen" was written
        self._tasks: set[asyncio.Task[Any]] = set()
        self.handled = 0  # packets handled here (tests)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def __call__(self, data: bytes, arrival_time_ms: int, ssrc: int,
                 abs_send_time_id: int | None) -> bool:
        receiver = self._receiver
        first, length = data[0], len(data)
        if first & 0x0F:  # CSRCs: rare, aiortc's parse
            return False
        payload_type = data[1] & 0x7F
        codecs = getattr(receiver, _RECEIVER + "codecs")
        codec = codecs.get(payload_type)
        kind = self._kinds.get(payload_type)
        if kind is None or kind[0] is not codec:
            kind = self._kinds[payload_type] = (
                codec, codec is not None and is_rtx(codec),
                codec is not None and codec.name == "VP8")  # as depayload
        if kind[1]:
            return False  # RTX: aiortc unwraps it
        offset = 12
        abs_send_time = None
        if first & 0x10:
            if length < 16 or data[12] != 0xBE or data[13] != 0xDE:
                return False  # too short, or two-byte header extensions
            end = 16 + ((data[14] << 8) | data[15]) * 4
            if end > length:
                return False
            position = 16
            while position < end:
                element = data[position]
                if element == 0:  # padding
                    position += 1
                    continue
                size = (element & 0x0F) + 1
                if position + 1 + size > end:
                    return False
                if element >> 4 == abs_send_time_id:
                    if size != 3:
                        return False
                    abs_send_time = int.from_bytes(data[position + 1:position + 4], "big")
                position += 1 + size
            offset = end
        padding = 0
        if first & 0x20:
            padding = data[-1]
            if not padding or padding > length - offset:
                return False
        self.handled += 1
        if not receiver._enabled:
            return True
        payload = data[offset:length - padding]
        estimator = getattr(receiver, _ESTIMATOR)
        if estimator is not None and abs_send_time is not None:
            remb = estimator.add(abs_send_time=abs_send_time, arrival_time_ms=arrival_time_ms,
                                 payload_size=len(payload) + padding, ssrc=ssrc)
            rtcp_ssrc = getattr(receiver, _RTCP_SSRC)
            if rtcp_ssrc is not None and remb is not None:
                self._spawn(receiver._send_rtcp(RtcpPsfbPacket(
                    fmt=RTCP_PSFB_APP, ssrc=rtcp_ssrc, media_ssrc=0,
                    fci=pack_remb_fci(*remb))))
        now = time.monotonic()
        if now - self._seen.get(ssrc, -ACTIVE_SSRC_INTERVAL_S) >= ACTIVE_SSRC_INTERVAL_S:
            self._seen[ssrc] = now
            getattr(receiver, _RECEIVER + "active_ssrc")[ssrc] = clock.current_datetime()
        if codec is None:
            return True
        packet = _Packet((data[2] << 8) | data[3], int.from_bytes(data[4:8], "big"),
                         data[1] >> 7, payload, payload_type, ssrc, padding)
        streams = getattr(receiver, _RECEIVER + "remote_streams")
        statistics = streams.get(ssrc)
        if statistics is None:
            statistics = streams[ssrc] = StreamStatistics(codec.clockRate)
        statistics.add(packet)
        nacks = getattr(receiver, _RECEIVER + "nack_generator")
        if nacks is not None and nacks.add(packet):
            self._spawn(receiver._send_rtcp_nack(ssrc, sorted(nacks.missing)))
        if payload:
            try:
                packet._data = vp8_depayload(payload) if kind[2] else depayload(codec, payload)
            except ValueError:
                return True
        pli, frame = getattr(receiver, _JITTER_BUFFER).add(packet)
        if pli:
            self._spawn(receiver._send_rtcp_pli(ssrc))
        if frame is not None and getattr(receiver, _RECEIVER + "decoder_thread"):
            frame.timestamp = getattr(receiver, _RECEIVER + "timestamp_mapper").map(
                frame.timestamp)
            getattr(receiver, _DECODER_QUEUE).put((codec, frame))
        return True


def _fast_receive_problems() -> list[str]:
    """What ``_FastReceive`` relies on in aiortc."""
    problems = []
    handler = _names(getattr(RTCRtpReceiver, "_handle_rtp_packet", None))
    for attribute in _RECEIVER_ATTRIBUTES:
        if _RECEIVER + attribute not in handler:
            problems.append(f"RTCRtpReceiver._handle_rtp_packet no longer uses "
                            f"{_RECEIVER}{attribute}")
    for name in ("_enabled", "_send_rtcp", "_send_rtcp_nack", "_send_rtcp_pli", "add",
                 "map", "put", "is_rtx", "depayload", "StreamStatistics"):
        if name not in handler:
            problems.append(f"RTCRtpReceiver._handle_rtp_packet no longer uses {name}")
    for owner, method, name in [
            (RTCDtlsTransport, "_handle_rtp_data", "_rtp_router"),
            (RTCDtlsTransport, "_handle_rtp_data", "_rtp_header_extensions_map"),
            (RtpRouter, "route_rtp", "ssrc_table"),
            (RtpRouter, "route_rtp", "payload_type_table")]:
        if name not in _names(getattr(owner, method, None)):
            problems.append(f"{owner.__name__}.{method} no longer uses {name}")
    return problems
