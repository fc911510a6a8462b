"""Every touch of aiortc's internals, in one place, and why.

aiortc 1.16 decodes every received track in a thread per receiver and re-encodes
for every sender (about 13 ms a 720p VP8 frame here). videoassist forwards encoded
frames instead, which aiortc half supports: a sender packetizes an ``av.Packet``
from its track without encoding, but a receiver has no public way to hand over its
encoded frames, and a sender swallows keyframe requests (PLI/FIR) for packets.

The hooks below close those two gaps, with the smallest reach we could find:

- ``tap_receiver``: the receiver puts each re-assembled encoded frame into
  ``self.__decoder_queue`` (a ``queue.Queue``) for its decoder thread. We replace
  that queue, before ``receive()`` starts the thread, with one whose ``put`` hands
  the frame to us on the event loop and whose ``get`` parks the thread until the
  receiver stops, so nothing is decoded and the track's own queue never grows.
- ``tap_receiver`` also swaps the receiver's ``__jitter_buffer`` for one that hands
  over a video frame as soon as its last packet (RTP marker bit) is in, and audio
  packet by packet. aiortc's own waits for the next frame's first packet (one frame
  interval, 33 ms at 30 fps) and holds four audio packets (80 ms): right before a
  decoder, too slow for a relay whose viewers have jitter buffers of their own.
  Ours also gives up on a video frame that a lost packet has held back for
  ``RETRANSMISSION_WAIT_S`` (aiortc's waits until its 512 packets overflow, seconds
  at a phone's bitrate), and hands over at once every frame that is complete, not
  one per packet received; the tap reports frames given up on (``on_skip``). A
  retransmission that comes after its frame was given up on is dropped
  (``LATE_PACKETS``), where aiortc's buffer would empty itself.
- ``tap_receiver`` also gives a video receiver's bandwidth estimator
  (``__remote_bitrate_estimator``, a ``RemoteBitrateEstimator``) an incoming
  bitrate counter (``incoming_bitrate``) that counts as aiortc's ``RateCounter``
  does, to the same figures and so the same REMBs, without a Python step for every
  millisecond between two packets (``_RateCounter``).
- ``request_keyframe``: the receiver's private ``_send_rtcp_pli(media_ssrc)``.
- ``on_keyframe_request``: the sender calls ``self._send_keyframe()`` for a PLI or
  FIR; an instance attribute of that name takes the call.
- ``label_sender``: aiortc writes each m-section's ``a=msid`` from the sender's
  ``_stream_id`` (the same for every sender of a peer connection) and ``_track_id``
  (the id of the track it was made with). A sender that carries one publication after
  another (``media.slot``) is renamed for each, and each publisher gets a stream id of
  its own, which is what a browser reports as ``event.streams``.
- ``on_bitrate_estimate``: the sender handles REMB in ``_handle_rtcp_packet``; we
  wrap it on the instance to read each viewer's estimate.
- ``EstimateRelay``: wraps the receiver's ``_send_rtcp`` so its own REMB to the
  publisher never exceeds the viewers' estimate, and sends REMB with the
  receiver's private ``__rtcp_ssrc`` when the viewers' estimate changes.
- ``create_offer_keeping_negotiation``: re-offers keep the client's payload types
  and header extension ids (see its docstring; found with Chromium).
- ``send_packets``: the sender's RTP loop (``_run_rtp``, which ``send()`` starts) and
  its answer to a NACK (``_retransmit``) are replaced on the instance by
  ``PacketSender``'s, which send a forwarded frame in the RTP payloads it came in
  (the tap hands them over with the frame) instead of packetizing it anew, with
  cheaper headers. It keeps what the sender's other parts read and write: the
  ``__rtp_started``/``__rtp_exited`` events ``stop()`` waits for, the counts its RTCP
  sender reports read (``__ntp_timestamp``, ``__rtp_timestamp``, ``__packet_count``,
  ``__octet_count``), ``__force_keyframe`` and ``__encoder`` for a sender that
  encodes, ``__mid`` and ``__rtp_header_extensions_map`` for the header extensions.
  Over a plain UDP ICE pair it protects and sends a frame's packets itself, as
  ``RTCDtlsTransport._send_rtp`` and aioice's ``Connection.sendto`` would (the
  transport's ``_tx_srtp``, ``_state`` and counts, aioice's ``_nominated`` pair and
  its protocol's datagram transport); through TURN, through ``_send_rtp``.
- ``EstimateRelay`` also throttles the receiver's own REMBs (``REMB_INTERVAL_S``).
- ``receive_directly``: aioice's ``Connection.data_received`` puts every datagram in
  an ``asyncio.Queue`` (``_queue``) that the DTLS transport's task reads one at a
  time (``_recv_next`` awaiting ``ice.recv()``): a task wake-up per packet. An
  instance attribute of that name takes SRTP/SRTCP datagrams once the transport has
  its ``_rx_srtp`` and handles them at once, as ``_recv_next`` would (its counts
  ``__rx_bytes``/``__rx_packets``, ``_handle_rtp_data``/``_handle_rtcp_data``),
  stepping the handler's coroutine by hand: it finishes without suspending unless
  it sends through TURN, and then it goes on as a task, the datagrams behind it
  waiting their turn. DTLS records (and anything while the queue is not empty) go
  through the queue and the transport's task as before. It also takes the pair's
  ``StunProtocol.datagram_received`` (an instance attribute too), which tries to
  parse every datagram as STUN and hands it on when that fails (a raised
  ValueError, 5 µs): a datagram whose first byte says RTP or RTCP (128 to 191, RFC
  7983; STUN's is 0 to 3) goes to ``data_received`` without the try.
- ``gather_on``: aioice binds each peer connection's host candidates to port 0 on
  every address it finds (``Connection.get_component_candidates``, called by
  ``gather_candidates`` on the instance). With ``VIDEOASSIST_MEDIA_PORTS``,
  ``_ADDRESSES`` or ``_ANNOUNCED_ADDRESS`` set, an instance attribute of that name
  binds them instead through ``media.network`` (in the range, on the addresses
  chosen), and calls aioice's own method with no address for the relay and its
  ``server_reflexive_candidate`` for STUN; the gatherer's ``getLocalCandidates``,
  which aiortc writes the SDP's candidates from, is wrapped on the instance to
  announce the public address in place of the socket's.
- ``tap_receiver`` also gives the receiver a ``_FastReceive``, which
  ``receive_directly``'s datagrams reach for a known SSRC: the receiver's
  ``_handle_rtp_packet`` for the common packet, from the datagram, without
  ``RtpPacket.parse`` and two coroutines a packet. It reads the receiver's private
  state that handler uses (codecs, statistics, NACK generator, estimator, jitter
  buffer, timestamp mapper, decoder queue) and the router's tables; anything
  uncommon (RTX, CSRCs, two-byte header extensions) goes through aiortc's handler.
- ``PacketSender.send_now``: a forwarded frame may go out from the publication's
  fan-out while the sender's loop waits for its track, in the loop's own sequence
  (``media.forward``, ``media.slot``).

``media.slot`` reuses a viewer's transceivers without touching aiortc: it relies on a
sender, once started, reading its track until the track ends (``_run_rtp``) whatever
the transceiver's direction, and on nothing stopping a sender short of ``close()``.
tests/media/test_slot.py checks that through the real server.

``check_compatible()`` runs at start-up and in the tests: an aiortc upgrade that
moves any of these fails loudly there instead of silently re-encoding or dropping.
"""

from __future__ import annotations

import asyncio
import bisect
import fractions
import inspect
import ipaddress
import logging
import socket
import struct
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

import aioice
import aiortc
import pylibsrtp
from aioice import Connection as IceConnection
from aioice import ice as _ice_module
from aioice import turn as aioice_turn
from aioice.candidate import Candidate, candidate_foundation, candidate_priority
from aioice.ice import CandidatePair, StunProtocol
from aiortc import (
    RTCPeerConnection,
    RTCRtpReceiver,
    RTCRtpSender,
    RTCSessionDescription,
    clock,
    rtp,
)
from aiortc import rtcpeerconnection as _pc_module
from aiortc import rtcrtpreceiver as _receiver_module
from aiortc.codecs import depayload, get_encoder, is_rtx
from aiortc.codecs.vpx import vp8_depayload
from aiortc.exceptions import InvalidStateError
from aiortc.jitterbuffer import JitterBuffer, JitterFrame
from aiortc.mediastreams import MediaStreamError
from aiortc.rate import RateCounter, RemoteBitrateEstimator
from aiortc.rtcdtlstransport import RTCDtlsTransport, RtpRouter
from aiortc.rtcdtlstransport import State as DtlsState
from aiortc.rtcicetransport import RTCIceCandidate, RTCIceGatherer, RTCIceTransport
from aiortc.rtcpeerconnection import is_codec_compatible
from aiortc.rtcrtpparameters import (
    RTCRtpCodecCapability,
    RTCRtpCodecParameters,
    RTCRtpHeaderExtensionParameters,
)
from aiortc.rtcrtpreceiver import StreamStatistics
from aiortc.rtcrtptransceiver import RTCRtpTransceiver
from aiortc.rtp import (
    DYNAMIC_PAYLOAD_TYPES,
    RTCP_PSFB_APP,
    RTP_HISTORY_SIZE,
    HeaderExtensions,
    HeaderExtensionsMap,
    RtcpPsfbPacket,
    RtpPacket,
    pack_remb_fci,
    unpack_remb_fci,
)
from aiortc.sdp import SessionDescription
from aiortc.utils import random16, random32, uint16_add, uint16_gt
from av import AudioFrame
from av.frame import Frame

from videoassist.media.frames import renumber_vp8
from videoassist.media.network import MediaNetwork

logger = logging.getLogger(__name__)

SUPPORTED_AIORTC = ("1.16.",)
# aioice: Connection.data_received, _queue (receive_directly), _nominated and
# StunProtocol.send_data (PacketSender's UDP path), get_component_candidates and
# server_reflexive_candidate (gather_on); checked by check_compatible().
SUPPORTED_AIOICE = ("0.13.",)

_DECODER_QUEUE = "_RTCRtpReceiver__decoder_queue"
_JITTER_BUFFER = "_RTCRtpReceiver__jitter_buffer"
_RTCP_SSRC = "_RTCRtpReceiver__rtcp_ssrc"
_STARTED = "_RTCRtpReceiver__started"
_ESTIMATOR = "_RTCRtpReceiver__remote_bitrate_estimator"

FrameSink = Callable[[str, bytes, int], None]
"""Called on the event loop with (codec name, encoded frame data, RTP timestamp)."""
PayloadSink = Callable[[str, bytes, int, tuple[bytes, ...]], None]
"""As ``FrameSink``, and the RTP payloads the frame came in, as received."""
SkipSink = Callable[[int], None]
"""Called on the event loop with how many frames were given up on, before the next
frame goes to the ``FrameSink``."""

# How long a video frame may wait for a lost packet's retransmission. aiortc asks for
# one (NACK) as soon as a later packet shows the gap, once, and a publisher resends it
# from its history: it is here one round trip later, well within this on a fixed or
# 4G line (RTT 20-100 ms) with room for the publisher's pacer. A viewer cannot ask the
# server for what the server never got, so this is the only chance of a retransmission;
# past it, waiting costs more than the keyframe that replaces the frames.
RETRANSMISSION_WAIT_S = 0.15
# A packet this far behind the oldest one kept is a retransmission that came after
# its frame was given up on: dropped. aiortc's own buffer takes a packet over 100
# behind as the stream starting again and empties itself (losing the keyframe that
# was on its way); at 250 packets a second a retransmission on a 400 ms round trip is
# that late. Further back than this is still treated as a restart.
LATE_PACKETS = 500
# The shortest time between two REMBs to a publisher that do not lower its estimate
# (EstimateRelay), as libwebrtc's RembThrottler.
REMB_INTERVAL_S = 0.2


class IncompatibleAiortc(RuntimeError):
    """The installed aiortc does not have the internals the forwarding hooks use."""


def check_compatible() -> None:
    version = getattr(aiortc, "__version__", "unknown")
    if not version.startswith(SUPPORTED_AIORTC):
        raise IncompatibleAiortc(
            f"aiortc {version} is not a tested version ({', '.join(SUPPORTED_AIORTC)}x): "
            "review videoassist/media/aiortc_hooks.py before upgrading"
        )
    problems = []
    if not callable(getattr(_receiver_module, "decoder_worker", None)):
        problems.append("rtcrtpreceiver.decoder_worker is gone")
    for owner, name in [(RTCRtpReceiver, "_send_rtcp_pli"), (RTCRtpReceiver, "receive"),
                        (RTCRtpReceiver, "_send_rtcp"),
                        (RTCRtpSender, "_send_keyframe"),
                        (RTCRtpSender, "_handle_rtcp_packet")]:
        if not callable(getattr(owner, name, None)):
            problems.append(f"{owner.__name__}.{name} is gone")
    source = getattr(RTCRtpReceiver.__init__, "__code__", None)
    for attribute in (_DECODER_QUEUE, _JITTER_BUFFER, _RTCP_SSRC, _ESTIMATOR):
        if source is None or attribute not in source.co_names:
            problems.append(f"RTCRtpReceiver.__init__ no longer sets {attribute}")
    writer = getattr(_pc_module, "create_media_description_for_transceiver", None)
    names = getattr(getattr(writer, "__code__", None), "co_names", ())
    for attribute in ("_stream_id", "_track_id"):
        if attribute not in names:
            problems.append(f"the a=msid line no longer comes from RTCRtpSender.{attribute}")
    for name in ("add", "_remove_frame", "remove"):
        if not callable(getattr(JitterBuffer, name, None)):
            problems.append(f"JitterBuffer.{name} is gone")
    version = getattr(aioice, "__version__", "unknown")
    if not version.startswith(SUPPORTED_AIOICE):
        problems.append(f"aioice {version} is not a tested version "
                        f"({', '.join(SUPPORTED_AIOICE)}x)")
    problems += _sender_problems()
    problems += _receive_problems()
    problems += _rate_problems()
    problems += _gather_problems()
    problems += _fast_receive_problems()
    problems += _connect_problems()
    if problems:
        raise IncompatibleAiortc("aiortc internals changed: " + "; ".join(problems))


_CONNECT = "_RTCPeerConnection__connect"
_CLOSED = "_RTCPeerConnection__isClosed"


class PeerConnection(RTCPeerConnection):
    """aiortc's peer connection, whose connecting task ends quietly when the connection
    closes under it.

    ``setRemoteDescription`` starts ``__connect`` as a task nobody awaits. It looks
    whether the connection is closed only before it starts; one closed while it awaits
    ICE (a client that offers and vanishes at once) made ``RTCIceTransport.start`` raise
    InvalidStateError, logged by asyncio as "Task exception was never retrieved" (seen
    by test_sdp_fuzz on a busy machine). On a closed connection there is nothing left
    to connect; on an open one the error is aiortc's, raised as before."""

    async def _RTCPeerConnection__connect(self) -> None:
        try:
            await getattr(super(), _CONNECT)()
        except InvalidStateError:
            if getattr(self, _CLOSED) is None:
                raise


def _connect_problems() -> list[str]:
    connect = getattr(RTCPeerConnection, _CONNECT, None)
    if not callable(connect):
        return [f"RTCPeerConnection.{_CONNECT} is gone"]
    if _CLOSED not in _names(connect) and _CLOSED not in _names(RTCPeerConnection.close):
        return [f"RTCPeerConnection no longer keeps {_CLOSED}"]
    return []


def _names(function: Any) -> tuple[str, ...]:
    """The names a function's code uses (attributes, globals)."""
    names: tuple[str, ...] = getattr(getattr(function, "__code__", None), "co_names", ())
    return names


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


class _TapQueue:
    """Stands in for the receiver's decoder queue (see the module docstring)."""

    def __init__(self, sink: FrameSink | None, on_skip: SkipSink | None = None,
                 payload_sink: PayloadSink | None = None) -> None:
        self._sink = sink
        self._payload_sink = payload_sink
        self._on_skip = on_skip
        self._stopped = threading.Event()

    def put(self, item: Any) -> None:
        if item is None:  # the receiver is stopping: release the parked thread
            self._stopped.set()
            return
        codec, frame = item
        self._hand_over(codec.name, frame, frame.timestamp)
        for later in getattr(frame, "following", ()):
            # The receiver mapped the first frame's timestamp only: map the rest alike.
            self._hand_over(codec.name, later, frame.timestamp + (
                (later.rtp_timestamp - frame.rtp_timestamp) & 0xFFFFFFFF))

    def _hand_over(self, codec_name: str, frame: Any, timestamp: int) -> None:
        skipped = getattr(frame, "skipped", 0)
        if skipped and self._on_skip is not None:
            self._on_skip(skipped)
        if self._payload_sink is not None:
            self._payload_sink(codec_name, frame.data, timestamp, frame.payloads)
        elif self._sink is not None:
            self._sink(codec_name, frame.data, timestamp)

    def get(self) -> None:
        self._stopped.wait()


class PromptFrame(JitterFrame):
    """A frame as ``PromptJitterBuffer`` hands it over. The receiver maps only the
    returned frame's timestamp (to start at 0, unwrapped): the tap maps the others the
    same way, from ``rtp_timestamp``."""

    def __init__(self, data: bytes, timestamp: int, skipped: int = 0,
                 payloads: tuple[bytes, ...] = ()) -> None:
        super().__init__(data=data, timestamp=timestamp)
        self.rtp_timestamp = timestamp
        self.skipped = skipped  # frames given up on just before this one
        self.following: list[PromptFrame] = []  # complete too, handed over after it
        self.payloads = payloads  # the RTP payloads it came in, in order (no padding)


class PromptJitterBuffer(JitterBuffer):
    """aiortc's buffer (ordering, capacity, PLI on overflow), with frames handed over
    as soon as they are complete: a video frame at its marker bit, audio at once.

    A video frame that a gap (a lost packet) holds back for ``wait_s``, measured from
    the first packet after the gap, is given up on, with anything else incomplete up to
    the next frame start: a packet whose predecessor is here and ends a frame. The next
    frame handed over counts them in ``skipped``; it may not decode without them.

    ``add`` (inherited) stores the packet and asks ``_remove_frame`` for a frame; it
    drops packets itself when it overflows or meets a packet far out of order, which
    shows as the oldest packet moving without us (counted as one frame given up).
    """

    def __init__(self, capacity: int, prefetch: int = 0, is_video: bool = False,
                 wait_s: float = RETRANSMISSION_WAIT_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(capacity, prefetch, is_video)
        self._wait_s = wait_s
        self._clock = clock
        self._arrived = [0.0] * capacity  # when each stored packet came
        self._newest: int | None = None   # the highest sequence number stored
        self._expected_origin: int | None = None  # where our last call left _origin
        self._origin_is_start = True      # _origin is known to begin a frame
        self._skipped = 0                 # given up on, not yet told with a frame
        self._held_by_gap = False         # see _complete_frame

    def add(self, packet: RtpPacket) -> tuple[bool, JitterFrame | None]:
        origin = self._origin
        if origin is not None and 0 < uint16_add(origin, -packet.sequence_number) <= LATE_PACKETS:
            return False, None  # too late (see LATE_PACKETS)
        return super().add(packet)

    def _remove_frame(self, sequence_number: int) -> JitterFrame | None:
        origin = self._origin
        if origin is None:
            return None
        if not self._is_video:  # one Opus packet is one frame; a gap is not waited for
            packet = self._packets[sequence_number % self._capacity]
            if packet is None:
                return None
            self.remove(uint16_add(sequence_number, -origin) + 1)
            return PromptFrame(packet._data, packet.timestamp,  # type: ignore[attr-defined]
                               payloads=(packet.payload,))
        self._arrived[sequence_number % self._capacity] = self._clock()
        moved = self._expected_origin is not None and origin != self._expected_origin
        if moved:  # aiortc's add dropped packets: we cannot tell where a frame starts
            self._skipped += 1
            self._origin_is_start = False
        if moved or self._newest is None or uint16_gt(sequence_number, self._newest):
            self._newest = sequence_number
        frames: list[PromptFrame] = []
        while True:
            frame = self._complete_frame()
            if frame is None and not (self._held_by_gap and self._give_up()):
                break
            if frame is not None:
                frames.append(frame)
        self._expected_origin = self._origin
        if not frames:
            return None
        frames[0].following = frames[1:]
        return frames[0]

    def _slot(self, offset: int) -> Any:
        """The packet ``offset`` places after the oldest, or None."""
        assert self._origin is not None
        return self._packets[(self._origin + offset) % self._capacity]

    def _arrival(self, offset: int) -> float:
        assert self._origin is not None
        return self._arrived[(self._origin + offset) % self._capacity]

    def _ahead(self) -> int:
        """How many places from the oldest packet to the newest; -1 when empty."""
        assert self._origin is not None and self._newest is not None
        ahead = uint16_add(self._newest, -self._origin)
        return ahead if ahead < self._capacity else -1

    def _complete_frame(self) -> PromptFrame | None:
        """Take the oldest frame if it is all here (and known to start where it does).

        When not, ``_held_by_gap`` says whether ``_give_up`` has anything to look at:
        a missing packet with others after it, or no known frame start. Packets in
        order, the common case, never need it, and this runs for every packet."""
        self._held_by_gap = True
        if not self._origin_is_start:
            return None
        packets: list[Any] = []
        stored, capacity, origin = self._packets, self._capacity, self._origin
        assert origin is not None
        for offset in range(capacity):
            packet = stored[(origin + offset) % capacity]
            if packet is None:  # a gap, or the frame's end is not here yet
                self._held_by_gap = offset < self._ahead()
                return None
            if packets and packet.timestamp != packets[0].timestamp:
                break  # the next frame began: this one is complete though unmarked
            packets.append(packet)
            if packet.marker:
                break
        else:
            return None
        self.remove(len(packets))
        frame = PromptFrame(b"".join([p._data for p in packets]), packets[0].timestamp,
                            self._skipped, tuple([p.payload for p in packets if p.payload]))
        self._skipped = 0
        return frame

    def _give_up(self) -> bool:
        """Drop the oldest frame if a gap has held it back too long; True if dropped."""
        ahead = self._ahead()
        if ahead < 0:
            return False
        first = 1  # where a frame start may be, as an offset from the oldest packet
        if self._origin_is_start:
            gap = next((offset for offset in range(ahead) if self._slot(offset) is None),
                       None)
            if gap is None:  # no gap: the frame's end is still on its way
                return False
            revealed = next((offset for offset in range(gap + 1, ahead + 1)
                             if self._slot(offset) is not None), None)
            if revealed is None or self._clock() - self._arrival(revealed) < self._wait_s:
                return False
            first = gap + 1
        start = next((offset for offset in range(first, ahead + 1)
                      if self._starts_frame(offset)), None)
        if start is None:  # wait for a frame start to come
            return False
        timestamps = {packet.timestamp for packet in map(self._slot, range(start))
                      if packet is not None}
        self._skipped += max(1, len(timestamps))
        self.remove(start)
        self._origin_is_start = True
        return True

    def _starts_frame(self, offset: int) -> bool:
        packet, before = self._slot(offset), self._slot(offset - 1)
        return (packet is not None and before is not None
                and (bool(before.marker) or before.timestamp != packet.timestamp))


def tap_receiver(receiver: RTCRtpReceiver, sink: FrameSink | None,
                 on_skip: SkipSink | None = None, *,
                 payload_sink: PayloadSink | None = None) -> None:
    """Send this receiver's encoded frames to ``sink`` (or, with their RTP payloads, to
    ``payload_sink``) instead of its decoder, and the number of video frames given up
    on (a lost packet, see ``PromptJitterBuffer``) to ``on_skip`` before the frame that
    follows them."""
    if getattr(receiver, _STARTED, False):
        raise RuntimeError("tap_receiver must run before the receiver starts")
    for attribute in (_DECODER_QUEUE, _JITTER_BUFFER):
        if not hasattr(receiver, attribute):
            raise IncompatibleAiortc(f"RTCRtpReceiver has no {attribute}")
    old = getattr(receiver, _JITTER_BUFFER)
    setattr(receiver, _JITTER_BUFFER, PromptJitterBuffer(
        capacity=old.capacity, is_video=old._is_video))
    setattr(receiver, _DECODER_QUEUE, _TapQueue(sink, on_skip, payload_sink))
    estimator = getattr(receiver, _ESTIMATOR, None)
    if estimator is not None:
        counter = estimator.incoming_bitrate
        estimator.incoming_bitrate = _RateCounter(counter._window_size, counter._scale)
    receiver.__dict__[_FAST] = _FastReceive(receiver)


def _rate_problems() -> list[str]:
    """What ``_RateCounter`` stands in for."""
    problems = []
    if "incoming_bitrate" not in _names(RemoteBitrateEstimator.__init__):
        problems.append("RemoteBitrateEstimator.__init__ no longer sets incoming_bitrate")
    counter = RateCounter(1000, 8000)
    for name in ("_window_size", "_scale", "add", "rate", "reset"):
        if not hasattr(counter, name):
            problems.append(f"rate.RateCounter has no {name}")
    uses = set(_names(RemoteBitrateEstimator.add))
    if not {"incoming_bitrate", "rate", "add", "reset"} <= uses:
        problems.append("RemoteBitrateEstimator.add no longer counts with incoming_bitrate")
    return problems


class _RateCounter:
    """aiortc's ``rate.RateCounter`` (what came in, over a window of 1 ms buckets), to
    the same figures: the window's start (``_origin_ms``) moves on as aiortc's does,
    and what came before it is forgotten, but by the packets kept in arrival-time
    order rather than a step per millisecond (aiortc's ``_erase_old``: 4 to 30 a
    packet at these rates). A time before the window's start (arrival times are the
    wall clock's, and a packet can come in a few ms before the one that started the
    window) counts where aiortc's ring of buckets puts it: that far from the end of
    the window."""

    def __init__(self, window_size: int, scale: int = 8000) -> None:
        self._window_size = window_size
        self._scale = scale
        self.reset()

    def reset(self) -> None:
        self._times: list[int] = []  # arrival times, in order
        self._values: list[int] = []
        self._origin_ms: int | None = None
        self._count = 0
        self._value = 0

    def _erase_old(self, now_ms: int, origin_ms: int) -> None:
        new_origin_ms = now_ms - self._window_size + 1
        if origin_ms < new_origin_ms:
            self._origin_ms = new_origin_ms
            times = self._times
            if times and times[0] < new_origin_ms:
                old = bisect.bisect_left(times, new_origin_ms)
                self._count -= old
                self._value -= sum(self._values[:old])
                del times[:old], self._values[:old]

    def add(self, value: int, now_ms: int) -> None:
        if self._origin_ms is None:
            self._origin_ms = now_ms
        else:
            self._erase_old(now_ms, self._origin_ms)
            if now_ms < self._origin_ms:
                now_ms = self._origin_ms + (now_ms - self._origin_ms) % self._window_size
        times = self._times
        if not times or times[-1] <= now_ms:
            times.append(now_ms)
            self._values.append(value)
        else:
            at = bisect.bisect_right(times, now_ms)
            times.insert(at, now_ms)
            self._values.insert(at, value)
        self._count += 1
        self._value += value

    def rate(self, now_ms: int) -> int | None:
        if self._origin_ms is not None:
            self._erase_old(now_ms, self._origin_ms)
            active_window_size = now_ms - self._origin_ms + 1
            if self._count > 0 and active_window_size > 1:
                return round(self._scale * self._value / active_window_size)
        return None


async def request_keyframe(receiver: RTCRtpReceiver) -> bool:
    """Ask the publisher for a keyframe (RTCP PLI); False if no stream is known yet."""
    sources = receiver.getSynchronizationSources()
    if not sources:
        return False
    newest = max(sources, key=lambda s: s.timestamp)
    await receiver._send_rtcp_pli(newest.source)
    return True


class ClientNegotiation:
    """What one client chose in its offers: payload types and header extension ids.

    A client (Chromium: VP8 96, Opus 111) numbers its codecs differently from aiortc
    (Opus 96, VP8 97). The server keeps the client's numbers in its own re-offers, see
    ``create_offer_keeping_negotiation``.
    """

    def __init__(self) -> None:
        self.codecs: dict[int, RTCRtpCodecParameters] = {}  # payload type to codec
        self.extension_ids: dict[str, int] = {}  # URI to id

    def learn(self, sdp: str) -> None:
        """Remember the numbers of a client offer (the first meaning of each wins)."""
        for media in SessionDescription.parse(sdp).media:
            for codec in media.rtp.codecs:
                self.codecs.setdefault(_payload_type(codec), codec)
            for extension in media.rtp.headerExtensions:
                self.extension_ids.setdefault(extension.uri, extension.id)

    def offered(self, kind: str) -> list[RTCRtpCodecParameters]:
        """The client's codecs of a kind (no RTX), in the order it first offered them."""
        return [c for c in self.codecs.values()
                if c.mimeType.lower().startswith(kind + "/") and not is_rtx(c)]

    def supports(self, codec: RTCRtpCodecParameters) -> bool:
        """Whether the client offered this codec (for H.264: this profile and mode)."""
        return any(codecs_match(codec, theirs) for theirs in self.codecs.values())


def codecs_match(a: RTCRtpCodecParameters | RTCRtpCodecCapability,
                 b: RTCRtpCodecParameters | RTCRtpCodecCapability) -> bool:
    """Same codec, clock rate and, for H.264, profile and packetization mode."""
    return not is_rtx(a) and not is_rtx(b) and is_codec_compatible(a, b)  # type: ignore[arg-type]


def put_first(transceiver: RTCRtpTransceiver,
              wanted: Callable[[RTCRtpCodecParameters], bool]) -> RTCRtpCodecParameters | None:
    """Put the first codec ``wanted`` accepts at the head of the answer; return it.

    Between ``setRemoteDescription(offer)`` and ``createAnswer`` the transceiver's
    ``_codecs`` are what the answer will list, in order; the offerer sends the first.
    ``setCodecPreferences`` cannot do this: it must come before the transceiver exists.
    """
    chosen = next((c for c in transceiver._codecs if not is_rtx(c) and wanted(c)), None)
    if chosen is not None:
        transceiver._codecs.sort(key=lambda c: not codecs_match(c, chosen))
    return chosen


def _payload_type(codec: RTCRtpCodecParameters) -> int:
    if codec.payloadType is None:  # aiortc's own codecs and parsed SDP always have one
        raise ValueError(f"{codec.mimeType} has no payload type")
    return codec.payloadType


class _Numbering:
    """Gives aiortc's codecs the client's payload types, inventing none that collide."""

    def __init__(self, client: ClientNegotiation, taken: set[int]) -> None:
        self._client = client
        self._taken = set(client.codecs) | taken
        self._chosen: dict[int, int] = {}  # aiortc's payload type to the one we use

    def _pick(self, codec: RTCRtpCodecParameters, wanted: int | None) -> int:
        ours = _payload_type(codec)
        if ours in self._chosen:
            return self._chosen[ours]
        if wanted is None:
            free = [pt for pt in [ours, *DYNAMIC_PAYLOAD_TYPES] if pt not in self._taken]
            if not free:
                raise RuntimeError("no payload type left for " + codec.mimeType)
            wanted = free[0]
        self._taken.add(wanted)
        self._chosen[ours] = wanted
        return wanted

    def renumber(self, codecs: list[RTCRtpCodecParameters]) -> list[RTCRtpCodecParameters]:
        out: dict[int, RTCRtpCodecParameters] = {}  # by aiortc's payload type
        for codec in codecs:
            if is_rtx(codec):
                continue
            wanted = next((pt for pt, theirs in self._client.codecs.items()
                           if codecs_match(codec, theirs)), None)
            out[_payload_type(codec)] = replace(codec, payloadType=self._pick(codec, wanted))
        for codec in codecs:
            apt = codec.parameters.get("apt")
            base = out.get(apt) if is_rtx(codec) and isinstance(apt, int) else None
            if base is None:  # not RTX, or RTX for a codec we dropped
                continue
            wanted = next((pt for pt, theirs in self._client.codecs.items()
                           if is_rtx(theirs) and theirs.parameters.get("apt") == base.payloadType),
                          None)
            out[_payload_type(codec)] = replace(
                codec, payloadType=self._pick(codec, wanted),
                parameters={**codec.parameters, "apt": base.payloadType})
        return [out[pt] for pt in map(_payload_type, codecs) if pt in out]


async def create_offer_keeping_negotiation(
    pc: RTCPeerConnection, client: ClientNegotiation
) -> RTCSessionDescription:
    """A re-offer that keeps the payload types and header extension ids in use.

    aiortc's ``createOffer`` resets every transceiver's ``_codecs`` and
    ``_headerExtensions`` to aiortc's own numbering. Offered to Chromium, that renumbers
    the m-sections already negotiated: Chromium then sends VP8 as 97 to a receiver that
    started with 96 and drops it (pictures stop after the first re-offer), and refuses
    an offer that reassigns a header extension id on a live BUNDLE transport. So: give
    negotiated transceivers back what they had, number new ones the client's way (one
    meaning per payload type across the BUNDLE), and write the offer from those.
    """
    transceivers = [t for t in pc.getTransceivers() if not t.stopped]
    saved = {t: (list(t._codecs), list(t._headerExtensions))
             for t in transceivers if t.mid is not None}
    offer = await pc.createOffer()
    taken = {_payload_type(c) for codecs, _ in saved.values() for c in codecs}
    numbering = _Numbering(client, taken)
    for transceiver in transceivers:
        if transceiver in saved:
            transceiver._codecs, transceiver._headerExtensions = saved[transceiver]
            continue
        transceiver._codecs = numbering.renumber(transceiver._codecs)
        transceiver._headerExtensions = [
            RTCRtpHeaderExtensionParameters(id=client.extension_ids[e.uri], uri=e.uri)
            for e in transceiver._headerExtensions if e.uri in client.extension_ids]
    by_index = {t._get_mline_index(): t for t in transceivers}
    description = SessionDescription.parse(offer.sdp)
    for index, media in enumerate(description.media):
        owner = by_index.get(index)
        if owner is None or media.kind not in ("audio", "video"):
            continue
        media.rtp.codecs = owner._codecs
        media.fmt = [codec.payloadType for codec in owner._codecs]
        media.rtp.headerExtensions = owner._headerExtensions
    return RTCSessionDescription(sdp=str(description), type="offer")


def on_keyframe_request(sender: RTCRtpSender,
                        callback: Callable[[], None]) -> Callable[[], None]:
    """Call ``callback`` when the remote viewer asks this sender for a keyframe.

    Returns the sender's own handling (its encoder's next frame is a keyframe), for a
    callback that passes the request on when the sender encodes for itself.
    """
    own: Callable[[], None] = sender._send_keyframe
    sender._send_keyframe = callback  # type: ignore[method-assign]
    return own


def label_sender(sender: RTCRtpSender, stream_id: str, track_id: str) -> None:
    """Name the sender's media in the ``a=msid`` line of the next descriptions."""
    sender._stream_id = stream_id
    sender._track_id = track_id


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


# -- sending forwarded payloads ---------------------------------------------------------

_SENDER = "_RTCRtpSender__"
# What PacketSender reads and writes of an RTCRtpSender: set by its __init__.
_SENDER_ATTRIBUTES = ("rtp_started", "rtp_exited", "mid", "rtp_header_extensions_map",
                      "rtx_payload_type", "force_keyframe", "encoder", "ntp_timestamp",
                      "rtp_timestamp", "octet_count", "packet_count")
_RTP_HEADER = struct.Struct("!BBHLL")
UdpPath = tuple[Callable[[bytes], bytes], Callable[[bytes, Any], None], Any]
"""SRTP protect, the datagram transport's ``sendto`` and the remote address."""
_EXTENSION_HEADER = struct.Struct("!HH")


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


_SENDER_NTP = _SENDER + "ntp_timestamp"
_SENDER_RTP_TIMESTAMP = _SENDER + "rtp_timestamp"
_SENDER_OCTETS = _SENDER + "octet_count"
_SENDER_PACKETS = _SENDER + "packet_count"
_MAP_IDS = "_HeaderExtensionsMap__ids"  # the negotiated ids, a HeaderExtensions
_NTP_EPOCH_S = 2_208_988_800  # 1900-01-01 to 1970-01-01


def ntp_now() -> int:
    """The wall clock as a 64-bit NTP timestamp, as aiortc's ``clock.current_ntp_time()``
    gives it, without its two ``datetime`` objects."""
    now = time.time()
    seconds = int(now)
    return ((seconds + _NTP_EPOCH_S) << 32) | int((now - seconds) * (1 << 32))


def _serialize_extensions(extensions_map: Any, extensions: HeaderExtensions) -> bytes:
    """aiortc's serialization of header extensions, with the profile and length that
    precede them in a packet; empty when none is negotiated."""
    profile, value = extensions_map.set(extensions)
    if not value:
        return b""
    return bytes(_EXTENSION_HEADER.pack(profile, len(value) >> 2) + value)


def _with_send_time(template: tuple[bytes, int | None], abs_send_time: int) -> bytes:
    """A template of ``_extensions_template`` with this abs-send-time in it."""
    block, offset = template
    if offset is None:
        return block
    return block[:offset] + abs_send_time.to_bytes(3, "big") + block[offset + 3:]


def _extensions_template(extensions_map: Any, mid: str | None) -> tuple[bytes, int | None]:
    """The serialized mid and abs-send-time extensions and where the three bytes of
    the send time are in them (None: not negotiated; the block is then the same for
    every frame)."""
    low = _serialize_extensions(extensions_map, HeaderExtensions(mid=mid, abs_send_time=0))
    high = _serialize_extensions(extensions_map,
                                 HeaderExtensions(mid=mid, abs_send_time=0xFFFFFF))
    differ = [i for i, (a, b) in enumerate(zip(low, high, strict=False)) if a != b]
    if not differ and low == high:
        return low, None
    if len(low) != len(high) or differ != [differ[0], differ[0] + 1, differ[0] + 2]:
        raise IncompatibleAiortc("abs-send-time is not three bytes of its own in the "
                                 "serialized header extensions")
    return low, differ[0]


_DTLS_TX_BYTES = "_RTCDtlsTransport__tx_bytes"
_DTLS_TX_PACKETS = "_RTCDtlsTransport__tx_packets"


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


# -- a tapped receiver's packets, handled from the datagram ------------------------------

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


# -- receiving datagrams without the queue hop -------------------------------------------

_DTLS_RX_BYTES = "_RTCDtlsTransport__rx_bytes"
_DTLS_RX_PACKETS = "_RTCDtlsTransport__rx_packets"
_NTP_EPOCH_MS = 2_208_988_800_000  # 1900-01-01 to 1970-01-01


def _receive_problems() -> list[str]:
    """What ``receive_directly`` relies on in aiortc and aioice."""
    problems = []
    for owner, method, name in [
            (RTCDtlsTransport, "__init__", _DTLS_RX_BYTES),
            (RTCDtlsTransport, "__init__", _DTLS_RX_PACKETS),
            (RTCDtlsTransport, "_recv_next", "_recv"),
            (RTCDtlsTransport, "_recv_next", "_rx_srtp"),
            (RTCDtlsTransport, "_recv_next", "unprotect"),
            (RTCDtlsTransport, "_recv_next", "unprotect_rtcp"),
            (RTCDtlsTransport, "_recv_next", "_handle_rtp_data"),
            (RTCDtlsTransport, "_recv_next", "_handle_rtcp_data"),
            (RTCIceTransport, "__init__", "_connection"),
            (IceConnection, "data_received", "_queue"),
            (IceConnection, "recvfrom", "_queue"),
            (StunProtocol, "datagram_received", "data_received"),
            (StunProtocol, "datagram_received", "parse_message"),
            (StunProtocol, "datagram_received", "local_candidate")]:
        if name not in _names(getattr(owner, method, None)):
            problems.append(f"{owner.__name__}.{method} no longer uses {name}")
    return problems


class _Resumed:
    """The rest of a coroutine stepped by hand that suspended on ``yielded``, to await
    in a task (which then waits for what the coroutine waits for, as ``await`` would)."""

    def __init__(self, coro: Any, yielded: Any) -> None:
        self._coro = coro
        self._yielded = yielded

    def __await__(self) -> Any:
        coro, value = self._coro, self._yielded
        while True:
            try:
                sent = yield value
            except BaseException as exc:  # passed on to the coroutine
                try:
                    value = coro.throw(exc)
                except StopIteration as stop:
                    return stop.value
            else:
                try:
                    value = coro.send(sent)
                except StopIteration as stop:
                    return stop.value


class _DirectReceiver:
    """Takes the place of aioice's ``Connection.data_received`` (see the module
    docstring, ``receive_directly``)."""

    def __init__(self, dtls: Any, connection: Any) -> None:
        self._dtls = dtls
        self._queue: asyncio.Queue[Any] = connection._queue
        self._queued: Callable[[bytes, int], None] = connection.data_received
        # While a handler is suspended (it went on as a task), the datagrams behind it.
        self._pending: list[bytes] | None = None
        self._task: asyncio.Task[None] | None = None
        self.direct = 0  # datagrams handled here (tests)
        self.at_once = 0  # RTP packets a tapped receiver's _FastReceive took (tests)
        self.demux: _Demux | None = None

    def __call__(self, data: bytes, component: int) -> None:
        dtls = self._dtls
        if (not data or not 127 < data[0] < 192 or dtls._rx_srtp is None
                or dtls._state != DtlsState.CONNECTED):
            self._queued(data, component)
        elif self._pending is not None:
            self._pending.append(data)
        elif not self._queue.empty():  # what came earlier goes first
            self._queued(data, component)
        else:
            self.direct += 1
            if rtp.is_rtcp(data):
                self._step(self._handle(data))
            else:
                self._rtp(data)

    def _step(self, coro: Any) -> None:
        """Run a handler's coroutine here; if it suspends, it goes on as a task and the
        datagrams behind it wait their turn."""
        try:
            yielded = coro.send(None)
        except StopIteration:
            return
        except Exception:
            logger.exception("handling a datagram failed")
            return
        self._pending = []
        self._task = asyncio.get_running_loop().create_task(self._finish(coro, yielded))

    def _count(self, data: bytes) -> int:
        """Count a datagram as ``_recv_next`` does; its arrival time as
        ``clock.current_ms()`` gives it (ms since 1900), without its datetimes."""
        dtls = self._dtls
        setattr(dtls, _DTLS_RX_BYTES, getattr(dtls, _DTLS_RX_BYTES) + len(data))
        setattr(dtls, _DTLS_RX_PACKETS, getattr(dtls, _DTLS_RX_PACKETS) + 1)
        return int(time.time() * 1000) + _NTP_EPOCH_MS

    def _rtp(self, data: bytes) -> None:
        """An SRTP datagram: a tapped receiver's common packet at once
        (``_FastReceive``), anything else through the transport's ``_handle_rtp_data``."""
        dtls = self._dtls
        arrival_time_ms = self._count(data)
        try:
            plain = dtls._rx_srtp.unprotect(data)
        except pylibsrtp.Error as exc:
            logger.debug("SRTP unprotect failed: %s", exc)
            return
        try:
            if self._at_once(plain, arrival_time_ms):
                return
        except Exception:
            logger.exception("handling an RTP packet failed")
            return
        self._step(dtls._handle_rtp_data(plain, arrival_time_ms=arrival_time_ms))

    def _at_once(self, plain: bytes, arrival_time_ms: int) -> bool:
        if len(plain) < 12 or plain[0] >> 6 != 2:
            return False
        ssrc = int.from_bytes(plain[8:12], "big")
        dtls = self._dtls
        router = dtls._rtp_router
        receiver = router.ssrc_table.get(ssrc)  # as RtpRouter.route_rtp, known SSRCs
        if receiver is None:
            return False
        handler = receiver.__dict__.get(_FAST)
        if (handler is None
                or receiver not in router.payload_type_table.get(plain[1] & 0x7F, ())):
            return False
        ids = getattr(dtls._rtp_header_extensions_map, _MAP_IDS)
        handled: bool = handler(plain, arrival_time_ms, ssrc, ids.abs_send_time)
        if handled:
            self.at_once += 1
        return handled

    async def _handle(self, data: bytes) -> None:
        """``RTCDtlsTransport._recv_next`` for one SRTP or SRTCP datagram."""
        dtls = self._dtls
        arrival_time_ms = self._count(data)
        try:
            if rtp.is_rtcp(data):
                await dtls._handle_rtcp_data(dtls._rx_srtp.unprotect_rtcp(data))
            else:
                await dtls._handle_rtp_data(dtls._rx_srtp.unprotect(data),
                                            arrival_time_ms=arrival_time_ms)
        except pylibsrtp.Error as exc:
            logger.debug("SRTP unprotect failed: %s", exc)

    async def _finish(self, coro: Any, yielded: Any) -> None:
        try:
            try:
                await _Resumed(coro, yielded)
            except Exception:
                logger.exception("handling a datagram failed")
            while self._pending:
                data = self._pending.pop(0)
                self.direct += 1
                try:
                    await self._handle(data)
                except Exception:
                    logger.exception("handling a datagram failed")
        finally:
            self._pending = None
            self._task = None


class _Demux:
    """Takes the place of the ICE pair's ``StunProtocol.datagram_received`` (see the
    module docstring, ``receive_directly``)."""

    def __init__(self, protocol: Any, connection: Any) -> None:
        self._stun: Callable[[bytes, Any], None] = protocol.datagram_received
        self._connection = connection
        self._component: int = protocol.local_candidate.component
        self.media = 0  # datagrams handed on without the STUN parse (tests)

    def __call__(self, data: bytes, addr: Any) -> None:
        if data and 127 < data[0] < 192:
            self.media += 1
            self._connection.data_received(data, self._component)
        else:
            self._stun(data, addr)


def receive_directly(dtls: RTCDtlsTransport) -> _DirectReceiver | None:
    """Hand this connected DTLS transport its SRTP and SRTCP datagrams straight from
    aioice's protocol, without the queue and its task (see the module docstring).
    Only over a plain UDP ICE pair (through TURN, handling a packet may wait on the
    relay: the queue as before); None then. Call again: the same receiver."""
    connection: Any = dtls.transport._connection
    installed = connection.__dict__.get("data_received")
    if isinstance(installed, _DirectReceiver):
        return installed
    if _udp_path(dtls) is None:
        return None
    receiver = _DirectReceiver(dtls, connection)
    connection.data_received = receiver
    protocol = connection._nominated[1].protocol
    receiver.demux = protocol.datagram_received = _Demux(protocol, connection)
    return receiver


# -- where the server's media sockets are ------------------------------------------------


def _deep_names(function: Any) -> set[str]:
    """The names a function's code uses, its comprehensions' and lambdas' included."""
    names: set[str] = set()
    codes = [getattr(function, "__code__", None)]
    while codes:
        code = codes.pop()
        if code is not None:
            names.update(code.co_names)
            codes += [c for c in code.co_consts if hasattr(c, "co_names")]
    return names


def _gather_problems() -> list[str]:
    """What ``gather_on`` relies on in aiortc and aioice."""
    problems = []
    for owner, method, name in [
            (RTCIceGatherer, "__init__", "_connection"),
            (RTCIceGatherer, "gather", "gather_candidates"),
            (IceConnection, "gather_candidates", "get_component_candidates"),
            (IceConnection, "get_component_candidates", "turn_server"),
            (IceConnection, "get_component_candidates", "_protocols"),
            (IceConnection, "get_component_candidates", "stun_server")]:
        if name not in _deep_names(getattr(owner, method, None)):
            problems.append(f"{owner.__name__}.{method} no longer uses {name}")
    if "getLocalCandidates" not in _names(getattr(_pc_module, "add_transport_description",
                                                  None)):
        problems.append("aiortc's add_transport_description no longer writes the SDP's "
                        "candidates from RTCIceGatherer.getLocalCandidates")
    for where, name, expected in [
            (IceConnection, "get_component_candidates",
             ["self", "component", "addresses", "timeout"]),
            (_ice_module, "server_reflexive_candidate", ["protocol", "stun_server"])]:
        try:
            parameters = list(inspect.signature(getattr(where, name)).parameters)
        except (AttributeError, TypeError, ValueError):
            parameters = []
        if parameters[:len(expected)] != expected:
            problems.append(f"aioice's {name} is gone or no longer takes "
                            f"({', '.join(expected)})")
    for cls, fields in [(RTCIceCandidate, ("ip", "type")),
                        (Candidate, ("host", "port", "type", "component"))]:
        missing = [f for f in fields if f not in getattr(cls, "__dataclass_fields__", ())
                   and f not in inspect.signature(cls).parameters]
        if missing:
            problems.append(f"{cls.__name__} has no {', '.join(missing)}")
    if not isinstance(getattr(aioice_turn, "UDP_SOCKET_BUFFER_SIZE", None), int):
        problems.append("aioice.turn.UDP_SOCKET_BUFFER_SIZE is gone")
    return problems


def _gatherers(pc: RTCPeerConnection) -> set[RTCIceGatherer]:
    """The ICE gatherers of a peer connection's transports (every transceiver's, after
    bundling the same one, and the SCTP transport's)."""
    transports = [t.receiver.transport for t in pc.getTransceivers()]
    if pc.sctp is not None:
        transports.append(pc.sctp.transport)
    return {t.transport.iceGatherer for t in transports if t is not None}


def gather_on(pc: RTCPeerConnection, network: MediaNetwork) -> None:
    """Before each ``setLocalDescription``: the peer connection's ICE agents that have
    not gathered yet take their host sockets from ``network`` and announce its address.

    aioice's ``Connection.gather_candidates`` lists the machine's addresses and has
    ``self.get_component_candidates(component, addresses)`` bind each to port 0 (its
    host candidates), ask the STUN server for the server-reflexive ones and the TURN
    server for a relay. An instance attribute of that name (``_HostCandidates``) binds
    the host sockets through ``network.bind`` on ``network.addresses`` (aioice's list
    when unset) and hands the rest to aioice's own method with no address (the relay)
    and to its ``server_reflexive_candidate``. The ``announced`` address replaces the
    host candidates' address (of its IP version) in the gatherer's
    ``getLocalCandidates``, which is where aiortc writes the SDP's candidates from:
    aioice's own candidates, and the sockets, keep the real address."""
    if network.is_default:
        return
    for gatherer in _gatherers(pc):
        connection = gatherer._connection
        if gatherer.state != "new" or "get_component_candidates" in vars(connection):
            continue
        connection.get_component_candidates = (  # type: ignore[method-assign]
            _HostCandidates(connection, network))
        if network.announced is not None:
            gatherer.getLocalCandidates = _Announced(  # type: ignore[method-assign]
                gatherer.getLocalCandidates, network.announced)


class _HostCandidates:
    """Takes the place of a Connection's ``get_component_candidates`` (``gather_on``)."""

    def __init__(self, connection: IceConnection, network: MediaNetwork) -> None:
        self._connection = connection
        self._network = network
        self._aioice = connection.get_component_candidates

    async def __call__(self, component: int, addresses: list[str],
                       timeout: int = 5) -> list[Candidate]:  # noqa: ASYNC109 (aioice's)
        connection = self._connection
        if self._network.addresses is not None:
            addresses = list(self._network.addresses)
        loop = asyncio.get_running_loop()
        protocols: list[StunProtocol] = []
        try:
            for address in addresses:
                sock = self._network.bind(address)  # raises when the range is full
                if sock is None:
                    continue
                try:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF,
                                    aioice_turn.UDP_SOCKET_BUFFER_SIZE)
                    _, protocol = await loop.create_datagram_endpoint(
                        lambda: StunProtocol(connection), sock=sock)
                except BaseException:
                    sock.close()
                    raise
                host, port = sock.getsockname()[:2]
                protocol.local_candidate = Candidate(
                    foundation=candidate_foundation("host", "udp", host),
                    component=component, transport="udp",
                    priority=candidate_priority(component, "host"),
                    host=host, port=port, type="host")
                protocols.append(protocol)
        except BaseException:
            for protocol in protocols:
                if protocol.transport is not None:
                    protocol.transport.close()
            raise
        connection._protocols += protocols
        candidates = [protocol.local_candidate for protocol in protocols]
        reflexive = []
        if connection.stun_server is not None:
            reflexive = [
                asyncio.ensure_future(_ice_module.server_reflexive_candidate(
                    protocol, connection.stun_server))
                for protocol in protocols
                if ipaddress.ip_address(protocol.local_candidate.host).version == 4]
        try:
            candidates += await self._aioice(component, [], timeout)  # the relay, if any
        except BaseException:
            for task in reflexive:
                task.cancel()
            raise
        if reflexive:  # as aioice's: those that answered in time
            done, pending = await asyncio.wait(reflexive, timeout=timeout)
            for task in pending:
                task.cancel()
            candidates += [task.result()[0] for task in done if task.exception() is None]
        return candidates


class _Announced:
    """Takes the place of a gatherer's ``getLocalCandidates`` (``gather_on``)."""

    def __init__(self, own: Callable[[], list[RTCIceCandidate]], announced: str) -> None:
        self._own = own
        self._announced = announced
        self._version = ipaddress.ip_address(announced).version

    def __call__(self) -> list[RTCIceCandidate]:
        return [replace(c, ip=self._announced)
                if c.type == "host" and ipaddress.ip_address(c.ip).version == self._version
                else c for c in self._own()]
