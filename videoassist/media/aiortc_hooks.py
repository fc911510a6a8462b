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
- ``request_keyframe``: the receiver's private ``_send_rtcp_pli(media_ssrc)``.
- ``on_keyframe_request``: the sender calls ``self._send_keyframe()`` for a PLI or
  FIR; an instance attribute of that name takes the call.
- ``on_bitrate_estimate``: the sender handles REMB in ``_handle_rtcp_packet``; we
  wrap it on the instance to read the estimate. Not wired yet: carrying viewers'
  estimates back to the publisher is still to do (issue "Media plane").
- ``create_offer_keeping_extensions``: see its docstring (Chromium re-offers).

``check_compatible()`` runs at start-up and in the tests: an aiortc upgrade that
moves any of these fails loudly there instead of silently re-encoding or dropping.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import aiortc
from aiortc import RTCPeerConnection, RTCRtpReceiver, RTCRtpSender, RTCSessionDescription
from aiortc import rtcrtpreceiver as _receiver_module
from aiortc.rtp import RTCP_PSFB_APP, RtcpPsfbPacket, unpack_remb_fci

SUPPORTED_AIORTC = ("1.16.",)

_DECODER_QUEUE = "_RTCRtpReceiver__decoder_queue"
_STARTED = "_RTCRtpReceiver__started"

FrameSink = Callable[[str, bytes, int], None]
"""Called on the event loop with (codec name, encoded frame data, RTP timestamp)."""


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
                        (RTCRtpSender, "_send_keyframe"),
                        (RTCRtpSender, "_handle_rtcp_packet")]:
        if not callable(getattr(owner, name, None)):
            problems.append(f"{owner.__name__}.{name} is gone")
    source = getattr(RTCRtpReceiver.__init__, "__code__", None)
    if source is None or _DECODER_QUEUE not in source.co_names:
        problems.append(f"RTCRtpReceiver.__init__ no longer sets {_DECODER_QUEUE}")
    if problems:
        raise IncompatibleAiortc("aiortc internals changed: " + "; ".join(problems))


class _TapQueue:
    """Stands in for the receiver's decoder queue (see the module docstring)."""

    def __init__(self, sink: FrameSink) -> None:
        self._sink = sink
        self._stopped = threading.Event()

    def put(self, item: Any) -> None:
        if item is None:  # the receiver is stopping: release the parked thread
            self._stopped.set()
            return
        codec, frame = item
        self._sink(codec.name, frame.data, frame.timestamp)

    def get(self) -> None:
        self._stopped.wait()


def tap_receiver(receiver: RTCRtpReceiver, sink: FrameSink) -> None:
    """Send this receiver's encoded frames to ``sink`` instead of its decoder."""
    if getattr(receiver, _STARTED, False):
        raise RuntimeError("tap_receiver must run before the receiver starts")
    if not hasattr(receiver, _DECODER_QUEUE):
        raise IncompatibleAiortc(f"RTCRtpReceiver has no {_DECODER_QUEUE}")
    setattr(receiver, _DECODER_QUEUE, _TapQueue(sink))


async def request_keyframe(receiver: RTCRtpReceiver) -> bool:
    """Ask the publisher for a keyframe (RTCP PLI); False if no stream is known yet."""
    sources = receiver.getSynchronizationSources()
    if not sources:
        return False
    newest = max(sources, key=lambda s: s.timestamp)
    await receiver._send_rtcp_pli(newest.source)
    return True


async def create_offer_keeping_extensions(
    pc: RTCPeerConnection, negotiated_ids: dict[str, int]
) -> RTCSessionDescription:
    """A re-offer that keeps the RTP header extension ids already in use.

    aiortc's ``createOffer`` resets every transceiver's ``_headerExtensions`` to its own
    default ids. Chromium refuses an offer that reassigns an id on a live BUNDLE
    transport, and a receiver that starts after the reset parses the client's packets
    with the wrong ids (seen as ``struct.error`` on ssrc-audio-level). So: restore each
    transceiver's negotiated list, and rewrite the offer's ``a=extmap`` lines to the
    ids the client chose (``negotiated_ids``: URI to id), dropping URIs it never offered.
    """
    saved = {t: list(t._headerExtensions) for t in pc.getTransceivers()
             if t._headerExtensions}
    offer = await pc.createOffer()
    for transceiver, extensions in saved.items():
        transceiver._headerExtensions = extensions
    return RTCSessionDescription(sdp=rewrite_extmap(offer.sdp, negotiated_ids), type="offer")


def negotiated_extension_ids(sdp: str) -> dict[str, int]:
    """URI to id of every ``a=extmap`` line of a description."""
    ids: dict[str, int] = {}
    for line in sdp.splitlines():
        if line.startswith("a=extmap:"):
            number, _, uri = line[len("a=extmap:"):].partition(" ")
            number = number.split("/")[0]
            if number.isdigit():
                ids.setdefault(uri.strip().split(" ")[0], int(number))
    return ids


def rewrite_extmap(sdp: str, ids: dict[str, int]) -> str:
    lines = []
    for line in sdp.split("\r\n"):
        if line.startswith("a=extmap:"):
            _, _, rest = line.partition(" ")
            uri = rest.strip().split(" ")[0]
            if uri not in ids:
                continue
            line = f"a=extmap:{ids[uri]} {rest}"
        lines.append(line)
    return "\r\n".join(lines)


def on_keyframe_request(sender: RTCRtpSender, callback: Callable[[], None]) -> None:
    """Call ``callback`` when the remote viewer asks this sender for a keyframe."""
    sender._send_keyframe = callback  # type: ignore[method-assign]


def on_bitrate_estimate(sender: RTCRtpSender, callback: Callable[[int], None]) -> None:
    """Call ``callback(bits_per_second)`` on each REMB the viewer sends this sender."""
    original = sender._handle_rtcp_packet

    async def handle(packet: Any) -> None:
        if isinstance(packet, RtcpPsfbPacket) and packet.fmt == RTCP_PSFB_APP:
            try:
                bitrate, _ = unpack_remb_fci(packet.fci)
            except ValueError:
                pass
            else:
                callback(bitrate)
        await original(packet)

    sender._handle_rtcp_packet = handle  # type: ignore[method-assign]
