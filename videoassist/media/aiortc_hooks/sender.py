"""Sending forwarded payloads: a viewer's sender sends a forwarded frame in the RTP
payloads it came in.

``send_packets``: the sender's RTP loop (``_run_rtp``, which ``send()`` starts) and its
answer to a NACK (``_retransmit``) are replaced on the instance by ``PacketSender``'s,
which send a forwarded frame in the RTP payloads it came in (the tap hands them over
with the frame) instead of packetizing it anew, with cheaper headers. It keeps what the
sender's other parts read and write: the ``__rtp_started``/``__rtp_exited`` events
``stop()`` waits for, the counts its RTCP sender reports read (``__ntp_timestamp``,
``__rtp_timestamp``, ``__packet_count``, ``__octet_count``), ``__force_keyframe`` and
``__encoder`` for a sender that encodes, ``__mid`` and ``__rtp_header_extensions_map``
for the header extensions. Over a plain UDP ICE pair it protects and sends a frame's
packets itself, as ``RTCDtlsTransport._send_rtp`` and aioice's ``Connection.sendto``
would (the transport's ``_tx_srtp``, ``_state`` and counts, aioice's ``_nominated``
pair and its protocol's datagram transport); through TURN, through ``_send_rtp``.
``PacketSender.send_now``: a forwarded frame may go out from the publication's fan-out
while the sender's loop waits for its track, in the loop's own sequence
(``media.forward``, ``media.slot``)."""

from __future__ import annotations

import asyncio
import fractions
import logging
import struct
from collections.abc import Callable
from typing import Any

from aioice import Connection as IceConnection
from aioice import turn as aioice_turn
from aioice.ice import CandidatePair, StunProtocol
from aiortc import RTCRtpSender, rtp
from aiortc.codecs import get_encoder
from aiortc.mediastreams import MediaStreamError
from aiortc.rtcdtlstransport import RTCDtlsTransport
from aiortc.rtcdtlstransport import State as DtlsState
from aiortc.rtcicetransport import RTCIceTransport
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtp import RTP_HISTORY_SIZE, HeaderExtensions, HeaderExtensionsMap
from aiortc.utils import random16, random32
from av import AudioFrame
from av.frame import Frame

from videoassist.media.aiortc_hooks.extensions import (
    _MAP_IDS,
    _extensions_template,
    _serialize_extensions,
    _with_send_time,
    ntp_now,
)
from videoassist.media.aiortc_hooks.internals import _names
from videoassist.media.frames import renumber_vp8

logger = logging.getLogger(__name__)

_SENDER = "_RTCRtpSender__"
# What PacketSender reads and writes of an RTCRtpSender: set by its __init__.
_SENDER_ATTRIBUTES = ("rtp_started", "rtp_exited", "mid", "rtp_header_extensions_map",
                      "rtx_payload_type", "force_keyframe", "encoder", "ntp_timestamp",
                      "rtp_timestamp", "octet_count", "packet_count")
_RTP_HEADER = struct.Struct("!BBHLL")
UdpPath = tuple[Callable[[bytes], bytes], Callable[[bytes, Any], None], Any]
"""SRTP protect, the datagram transport's ``sendto`` and the remote address."""
_SENDER_NTP = _SENDER + "ntp_timestamp"
_SENDER_RTP_TIMESTAMP = _SENDER + "rtp_timestamp"
_SENDER_OCTETS = _SENDER + "octet_count"
_SENDER_PACKETS = _SENDER + "packet_count"
_DTLS_TX_BYTES = "_RTCDtlsTransport__tx_bytes"
_DTLS_TX_PACKETS = "_RTCDtlsTransport__tx_packets"


class ForwardedFrame:
    """An encoded frame as a track hands it to a sender that ``PacketSender`` runs: the
    RTP payloads it came in, sent again as they are. ``pts`` in ``time_base`` units
    (a track may move it). To aiortc's own sender loop it is a packet like
    ``av.Packet``: ``bytes()`` gives the frame, which its encoder packetizes."""

    __slots__ = ("codec", "data", "payloads", "pts", "time_base")

    def __init__(self, codec: str, data: bytes, payloads: tuple[bytes, ...], pts: int,
                 time_base: fractions.Fraction) -> None:
        self.codec = codec
        self.data = data
        self.payloads = payloads
        self.pts = pts
        self.time_base = time_base

    def __bytes__(self) -> bytes:
        return self.data


class PacketSender:
    """Runs an RTCRtpSender's RTP loop in its place (``_run_rtp``) and answers its
    viewer's NACKs (``_retransmit``).

    aiortc's loop makes, for every packet, an ``RtpPacket`` whose header extensions it
    serializes (about 15 µs here), and packetizes every frame anew. Ours sends a
    ``ForwardedFrame``'s payloads as they came in (VP8's picture id renumbered so that
    it counts this sender's frames, as aiortc's packetizer's does), each behind a
    header packed in one go, with the header extensions (mid, abs-send-time) from a
    template serialized by aiortc once and patched with each frame's send time.
    Anything else the track gives (a picture to encode, an ``av.Packet``) goes
    through aiortc's encoder as in its loop. The rest is aiortc's loop: sequence
    numbers and timestamps from a random origin, the sender's counts for its RTCP
    sender reports (``_run_rtcp``) after each frame, each packet through the DTLS
    transport's ``_send_rtp``, the track stopped when the loop ends. The last
    ``RTP_HISTORY_SIZE`` packets are kept for retransmission, over RTX when negotiated.

    ``send_now``: while the loop waits for its track's next frame, a forwarded frame
    may also be handed over directly by whoever has it (the publication's fan-out,
    through ``media.forward`` and ``media.slot``) and go out at once, numbered in the
    same sequence, without a queue and a task wake-up per frame and viewer.
    """

    def __init__(self, sender: RTCRtpSender) -> None:
        self._sender = sender
        self._history: list[tuple[int, int, bool, bytes, bytes] | None] = (
            [None] * RTP_HISTORY_SIZE)  # sequence number, timestamp, marker, extensions, payload
        self._picture_id = random16() & 0x7FFF
        self._rtx_sequence_number = random16() % 32768
        self._payload_type = 0  # the codec's, once the loop runs
        self._sequence_number = random16() % 32768
        self._origin = random32()
        self._clock_rate = fractions.Fraction(1, 90000)
        self._vp8 = False
        self._time_base: fractions.Fraction | None = None  # the last one seen
        self._same_clock = True  # ... and whether it is the codec's clock
        self._extensions_key: tuple[Any, ...] | None = None
        self._extensions: tuple[bytes, int | None] = (b"", None)
        self._waiting = False  # the loop waits for the track's next item
        self.frames = 0
        self.packets = 0
        self.retransmitted = 0
        self.sent_now = 0  # frames handed over by send_now (tests)
        sender._run_rtp = self._run_rtp  # type: ignore[method-assign]
        sender._retransmit = self._retransmit  # type: ignore[method-assign]

    def _get(self, name: str) -> Any:
        return getattr(self._sender, _SENDER + name)

    def _set(self, name: str, value: Any) -> None:
        setattr(self._sender, _SENDER + name, value)

    async def _run_rtp(self, codec: RTCRtpCodecParameters) -> None:
        sender = self._sender
        self._get("rtp_started").set()
        loop = asyncio.get_running_loop()
        self._payload_type = codec.payloadType or 0
        self._clock_rate = fractions.Fraction(1, codec.clockRate)
        self._vp8 = codec.name.lower() == "vp8"
        encoder: Any = None
        try:
            while True:
                track = sender.track
                if track is None:
                    await asyncio.sleep(0.02)
                    continue
                self._waiting = True
                try:
                    item = await track.recv()
                finally:
                    self._waiting = False
                if not sender._enabled:
                    continue
                if isinstance(item, ForwardedFrame):
                    await self.send(self._forwarded(item))
                    continue
                # As aiortc's loop (_next_encoded_frame).
                if encoder is None:
                    encoder = get_encoder(codec)
                    self._set("encoder", encoder)  # where a REMB sets its bitrate
                audio_level = None
                if isinstance(item, Frame):
                    if isinstance(item, AudioFrame):
                        audio_level = rtp.compute_audio_level_dbov(item)
                    force_keyframe = self._get("force_keyframe")
                    self._set("force_keyframe", False)
                    payloads, timestamp = await loop.run_in_executor(
                        None, encoder.encode, item, force_keyframe)
                else:
                    payloads, timestamp = encoder.pack(item)
                if payloads:
                    await self.send(self._packets(payloads, timestamp, audio_level))
        except (asyncio.CancelledError, ConnectionError, MediaStreamError):
            pass
        except Exception:  # as aiortc's: the loop must end with rtp_exited set
            logger.exception("RTCRtpSender(%s) RTP loop failed", sender.kind)
        track = sender.track
        if track is not None:
            track.stop()
        self._set("encoder", None)
        self._get("rtp_exited").set()

    def _forwarded(self, item: ForwardedFrame) -> list[bytes]:
        """A forwarded frame's packets, numbered as this sender's."""
        payloads: tuple[bytes, ...] | list[bytes] = item.payloads
        if self._vp8:
            payloads = renumber_vp8(payloads, self._picture_id)
            self._picture_id = (self._picture_id + 1) & 0x7FFF
        if item.time_base is not self._time_base:  # a track keeps one
            self._time_base = item.time_base
            self._same_clock = item.time_base == self._clock_rate
        timestamp = (item.pts if self._same_clock
                     else round(item.pts * item.time_base / self._clock_rate))
        return self._packets(payloads, timestamp, None)

    def _packets(self, payloads: tuple[bytes, ...] | list[bytes], timestamp: int,
                 audio_level: int | None) -> list[bytes]:
        """One frame's RTP packets, kept for retransmission, and the counts the next
        RTCP sender report reads (aiortc's ``_run_rtcp``)."""
        sender = self._sender
        timestamp = (self._origin + timestamp) & 0xFFFFFFFF
        ntp = ntp_now()
        value = self._header_extensions((ntp >> 14) & 0xFFFFFF, audio_level)
        first = 0x90 if value else 0x80
        payload_type, ssrc = self._payload_type, sender._ssrc
        pack_header, history = _RTP_HEADER.pack, self._history
        sequence_number = self._sequence_number
        last = len(payloads) - 1
        octets = 0
        packets = []
        for index, payload in enumerate(payloads):
            marker = index == last
            history[sequence_number % RTP_HISTORY_SIZE] = (
                sequence_number, timestamp, marker, value, payload)
            packets.append(pack_header(first, (marker << 7) | payload_type,
                                       sequence_number, timestamp, ssrc) + value + payload)
            sequence_number = (sequence_number + 1) & 0xFFFF
            octets += len(payload)
        self._sequence_number = sequence_number
        setattr(sender, _SENDER_NTP, ntp)
        setattr(sender, _SENDER_RTP_TIMESTAMP, timestamp)
        setattr(sender, _SENDER_OCTETS, getattr(sender, _SENDER_OCTETS) + octets)
        setattr(sender, _SENDER_PACKETS, getattr(sender, _SENDER_PACKETS) + len(packets))
        self.frames += 1
        self.packets += len(packets)
        return packets

    def _header_extensions(self, abs_send_time: int, audio_level: int | None) -> bytes:
        """The header extension block (with its profile and length) for this frame: mid
        and abs-send-time as the sender's map serializes them, from a template made
        once per map and mid and patched with the send time's three bytes. A frame
        with an audio level (encoded here) is serialized whole."""
        extensions_map = self._get("rtp_header_extensions_map")
        mid = self._get("mid")
        if audio_level is not None:
            extensions = HeaderExtensions(mid=mid, abs_send_time=abs_send_time,
                                          audio_level=(False, -audio_level))
            return _serialize_extensions(extensions_map, extensions)
        ids = getattr(extensions_map, _MAP_IDS)
        key = (mid, ids.mid, ids.abs_send_time, ids.audio_level)
        if key != self._extensions_key:
            self._extensions_key = key
            self._extensions = _extensions_template(extensions_map, mid)
        return _with_send_time(self._extensions, abs_send_time)

    def rtp_timestamp(self, pts: int) -> int:
        """The RTP timestamp a frame of this ``pts`` (the codec's clock) goes out with."""
        return (self._origin + pts) & 0xFFFFFFFF

    def ready_now(self) -> UdpPath | None:
        """Whether a forwarded frame may go out at once (``send_now``): the loop waits
        for its track's next item, with nothing of its own under way, and the path is
        plain UDP; that path, or None, and the frame should go through the track."""
        sender = self._sender
        if not self._waiting or not sender._enabled:
            return None
        return _udp_path(sender.transport)

    def send_now(self, item: ForwardedFrame, udp: UdpPath) -> None:
        """Send a forwarded frame at once, on the path ``ready_now`` gave."""
        self.send_udp(self._forwarded(item), udp)
        self.sent_now += 1

    async def send(self, packets: list[bytes]) -> None:
        """One frame's RTP packets, protected and sent in a row.

        Over a plain UDP path (no TURN), straight to the datagram transport of the
        ICE pair in use, as ``RTCDtlsTransport._send_rtp`` and aioice's
        ``Connection.send`` would, without their three awaits a packet; else, and
        for RTCP, through ``_send_rtp``."""
        dtls = self._sender.transport
        udp = _udp_path(dtls)
        if udp is None:
            for data in packets:
                await dtls._send_rtp(data)
            return
        self.send_udp(packets, udp)

    def send_udp(self, packets: list[bytes], udp: UdpPath) -> None:
        """One frame's packets, protected and handed to the socket: every frame over a
        plain UDP path goes out here, from the loop (``send``) or from ``send_now``."""
        protect, sendto, address = udp
        octets = 0
        for data in packets:
            data = protect(data)
            sendto(data, address)
            octets += len(data)
        dtls = self._sender.transport
        setattr(dtls, _DTLS_TX_BYTES, getattr(dtls, _DTLS_TX_BYTES) + octets)
        setattr(dtls, _DTLS_TX_PACKETS, getattr(dtls, _DTLS_TX_PACKETS) + len(packets))

    async def _retransmit(self, sequence_number: int) -> None:
        """A viewer's NACK: the packet again, over RTX if negotiated."""
        kept = self._history[sequence_number % RTP_HISTORY_SIZE]
        if kept is None or kept[0] != sequence_number:
            return
        _, timestamp, marker, extensions, payload = kept
        rtx_payload_type = self._get("rtx_payload_type")
        first = 0x90 if extensions else 0x80
        if rtx_payload_type is None:
            header = _RTP_HEADER.pack(first, (marker << 7) | self._payload_type,
                                      sequence_number, timestamp, self._sender._ssrc)
        else:
            header = _RTP_HEADER.pack(first, (marker << 7) | rtx_payload_type,
                                      self._rtx_sequence_number, timestamp,
                                      self._sender._rtx_ssrc)
            self._rtx_sequence_number = (self._rtx_sequence_number + 1) & 0xFFFF
            payload = struct.pack("!H", sequence_number) + payload
        self.retransmitted += 1
        await self._sender.transport._send_rtp(header + extensions + payload)


def _udp_path(dtls: RTCDtlsTransport) -> UdpPath | None:
    """(SRTP protect, datagram sendto, remote address) of a connected DTLS transport
    whose ICE pair in use is plain UDP; None otherwise (not connected: ``_send_rtp``
    raises ConnectionError as it should; a TURN relay: its own send)."""
    if dtls._state != DtlsState.CONNECTED or dtls._tx_srtp is None:
        return None
    pair = dtls.transport._connection._nominated.get(1)
    if pair is None or type(pair.protocol).send_data is not StunProtocol.send_data:
        return None
    transport = pair.protocol.transport
    # A relay pair's protocol is a StunProtocol too, on aioice's TurnTransport.
    if (transport is None or isinstance(transport, aioice_turn.TurnTransport)
            or transport.is_closing()):
        return None
    return dtls._tx_srtp.protect, transport.sendto, pair.remote_addr


def send_packets(sender: RTCRtpSender) -> PacketSender:
    """Run this sender's RTP loop with ``PacketSender``; call before it starts."""
    if getattr(sender, _SENDER + "started", False):
        raise RuntimeError("send_packets must run before the sender starts")
    return PacketSender(sender)


def _sender_problems() -> list[str]:
    """What ``PacketSender`` relies on in RTCRtpSender (see its docstring)."""
    problems = []
    for name in ("_run_rtp", "_retransmit", "_run_rtcp", "send", "stop"):
        if not callable(getattr(RTCRtpSender, name, None)):
            problems.append(f"RTCRtpSender.{name} is gone")
    for attribute in _SENDER_ATTRIBUTES:
        if _SENDER + attribute not in _names(RTCRtpSender.__init__):
            problems.append(f"RTCRtpSender.__init__ no longer sets {_SENDER}{attribute}")
    uses = [("send", "_run_rtp"), ("_handle_rtcp_packet", "_retransmit"),
            ("_send_keyframe", _SENDER + "force_keyframe"),
            ("stop", _SENDER + "rtp_started"), ("stop", _SENDER + "rtp_exited")]
    uses += [("_run_rtcp", _SENDER + name)
             for name in ("ntp_timestamp", "rtp_timestamp", "octet_count", "packet_count")]
    for method, name in uses:
        if name not in _names(getattr(RTCRtpSender, method, None)):
            problems.append(f"RTCRtpSender.{method} no longer uses {name}")
    if not isinstance(getattr(HeaderExtensionsMap(), _MAP_IDS, None), HeaderExtensions):
        problems.append(f"HeaderExtensionsMap has no {_MAP_IDS}")
    # PacketSender.send's UDP path (_udp_path).
    for owner, method, name in [
            (RTCDtlsTransport, "__init__", _DTLS_TX_BYTES),
            (RTCDtlsTransport, "__init__", _DTLS_TX_PACKETS),
            (RTCDtlsTransport, "_send_rtp", "_tx_srtp"),
            (RTCDtlsTransport, "_send_rtp", "_state"),
            (RTCIceTransport, "__init__", "_connection"),
            (IceConnection, "sendto", "_nominated"),
            (IceConnection, "sendto", "send_data"),
            (StunProtocol, "send_data", "sendto")]:
        if name not in _names(getattr(owner, method, None)):
            problems.append(f"{owner.__name__}.{method} no longer uses {name}")
    if not isinstance(getattr(aioice_turn, "TurnTransport", None), type):
        problems.append("aioice.turn.TurnTransport (a relay pair's transport) is gone")
    if not hasattr(DtlsState, "CONNECTED"):
        problems.append("RTCDtlsTransport's State has no CONNECTED")
    if not isinstance(getattr(CandidatePair, "remote_addr", None), property):
        problems.append("aioice's CandidatePair has no remote_addr")
    fields = getattr(HeaderExtensions, "__dataclass_fields__", {})
    for field in ("mid", "abs_send_time", "audio_level"):
        if field not in fields:
            problems.append(f"rtp.HeaderExtensions has no {field}")
    return problems
