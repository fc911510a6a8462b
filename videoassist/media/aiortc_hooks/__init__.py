"""Every touch of aiortc's internals, in one place, and why.

aiortc 1.16 decodes every received track in a thread per receiver and re-encodes
for every sender (about 13 ms a 720p VP8 frame here). videoassist forwards encoded
frames instead, which aiortc half supports: a sender packetizes an ``av.Packet``
from its track without encoding, but a receiver has no public way to hand over its
encoded frames, and a sender swallows keyframe requests (PLI/FIR) for packets.

The hooks in this package close those two gaps, with the smallest reach we could
find:

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

One module a concern; this one checks the versions and re-exports what the rest of the
server uses, so that callers write ``aiortc_hooks.tap_receiver``:

- ``connection``: ``PeerConnection``.
- ``receiver``: ``tap_receiver``, ``request_keyframe``, ``_RateCounter``;
  ``jitter_buffer``: ``PromptJitterBuffer``.
- ``negotiation``: ``create_offer_keeping_negotiation``, ``put_first``, ``label_sender``.
- ``feedback``: ``on_keyframe_request``, ``on_bitrate_estimate``, ``EstimateRelay``.
- ``sender``: ``send_packets``, ``PacketSender``; ``extensions``: its header extensions.
- ``fast_receive``: ``_FastReceive``; ``direct``: ``receive_directly``.
- ``gathering``: ``gather_on``.
- ``internals``: what several of them share, and ``IncompatibleAiortc``.
"""

from __future__ import annotations

import aioice
import aiortc
from aiortc import RTCRtpReceiver, RTCRtpSender
from aiortc import rtcpeerconnection as _pc_module
from aiortc import rtcrtpreceiver as _receiver_module
from aiortc.jitterbuffer import JitterBuffer
from aiortc.rtcdtlstransport import State as DtlsState

from videoassist.media.aiortc_hooks.connection import PeerConnection, _connect_problems
from videoassist.media.aiortc_hooks.direct import (
    _DirectReceiver,
    _receive_problems,
    receive_directly,
)
from videoassist.media.aiortc_hooks.extensions import (
    _extensions_template,
    _serialize_extensions,
    _with_send_time,
    ntp_now,
)
from videoassist.media.aiortc_hooks.fast_receive import (
    _FAST,
    ACTIVE_SSRC_INTERVAL_S,
    _fast_receive_problems,
)
from videoassist.media.aiortc_hooks.feedback import (
    REMB_INTERVAL_S,
    EstimateRelay,
    on_bitrate_estimate,
    on_keyframe_request,
)
from videoassist.media.aiortc_hooks.gathering import _gather_problems, gather_on
from videoassist.media.aiortc_hooks.internals import (
    _DECODER_QUEUE,
    _ESTIMATOR,
    _JITTER_BUFFER,
    _RTCP_SSRC,
    IncompatibleAiortc,
)
from videoassist.media.aiortc_hooks.jitter_buffer import (
    LATE_PACKETS,
    RETRANSMISSION_WAIT_S,
    PromptFrame,
    PromptJitterBuffer,
)
from videoassist.media.aiortc_hooks.negotiation import (
    ClientNegotiation,
    codecs_match,
    create_offer_keeping_negotiation,
    label_sender,
    put_first,
)
from videoassist.media.aiortc_hooks.receiver import (
    FrameSink,
    PayloadSink,
    SkipSink,
    _rate_problems,
    _RateCounter,
    _TapQueue,
    request_keyframe,
    tap_receiver,
)
from videoassist.media.aiortc_hooks.sender import (
    ForwardedFrame,
    PacketSender,
    UdpPath,
    _sender_problems,
    _udp_path,
    send_packets,
)

# What the rest of the server, the tests and the scripts use as aiortc_hooks.NAME, the
# private names the tests reach included.
__all__ = [
    "ACTIVE_SSRC_INTERVAL_S",
    "LATE_PACKETS",
    "REMB_INTERVAL_S",
    "RETRANSMISSION_WAIT_S",
    "SUPPORTED_AIOICE",
    "SUPPORTED_AIORTC",
    "_FAST",
    "ClientNegotiation",
    "DtlsState",
    "EstimateRelay",
    "ForwardedFrame",
    "FrameSink",
    "IncompatibleAiortc",
    "PacketSender",
    "PayloadSink",
    "PeerConnection",
    "PromptFrame",
    "PromptJitterBuffer",
    "SkipSink",
    "UdpPath",
    "_DirectReceiver",
    "_RateCounter",
    "_TapQueue",
    "_extensions_template",
    "_serialize_extensions",
    "_udp_path",
    "_with_send_time",
    "check_compatible",
    "codecs_match",
    "create_offer_keeping_negotiation",
    "gather_on",
    "label_sender",
    "ntp_now",
    "on_bitrate_estimate",
    "on_keyframe_request",
    "put_first",
    "receive_directly",
    "request_keyframe",
    "send_packets",
    "tap_receiver",
]

SUPPORTED_AIORTC = ("1.16.",)
# aioice: Connection.data_received, _queue (receive_directly), _nominated and
# StunProtocol.send_data (PacketSender's UDP path), get_component_candidates and
# server_reflexive_candidate (gather_on); checked by check_compatible().
SUPPORTED_AIOICE = ("0.13.",)


def check_compatible() -> None:
    version = getattr(aiortc, "__version__", "unknown")
    if not version.startswith(SUPPORTED_AIORTC):
        raise IncompatibleAiortc(
            f"aiortc {version} is not a tested version ({', '.join(SUPPORTED_AIORTC)}x): "
            "review videoassist/media/aiortc_hooks/ before upgrading"
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
