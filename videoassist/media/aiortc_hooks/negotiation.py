"""SDP negotiation: what the server offers and answers keeps what a client chose.

``create_offer_keeping_negotiation``: re-offers keep the client's payload types and
header extension ids (see its docstring; found with Chromium), which aiortc's
``createOffer`` resets to its own numbering in every transceiver's ``_codecs`` and
``_headerExtensions``; ``put_first`` orders an answer's codecs through the same
``_codecs``. ``label_sender``: aiortc writes each m-section's ``a=msid`` from the
sender's ``_stream_id`` (the same for every sender of a peer connection) and
``_track_id`` (the id of the track it was made with). A sender that carries one
publication after another (``media.slot``) is renamed for each, and each publisher
gets a stream id of its own, which is what a browser reports as ``event.streams``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from aiortc import RTCPeerConnection, RTCRtpSender, RTCSessionDescription
from aiortc.codecs import is_rtx
from aiortc.rtcpeerconnection import is_codec_compatible
from aiortc.rtcrtpparameters import (
    RTCRtpCodecCapability,
    RTCRtpCodecParameters,
    RTCRtpHeaderExtensionParameters,
)
from aiortc.rtcrtptransceiver import RTCRtpTransceiver
from aiortc.rtp import DYNAMIC_PAYLOAD_TYPES
from aiortc.sdp import SessionDescription


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


def label_sender(sender: RTCRtpSender, stream_id: str, track_id: str) -> None:
    """Name the sender's media in the ``a=msid`` line of the next descriptions."""
    sender._stream_id = stream_id
    sender._track_id = track_id
