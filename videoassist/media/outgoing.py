"""The others' tracks sent to one client: its sendonly transceivers (``slot.SenderSlot``,
one per m-section for the peer connection's life, reused from one publication to the
next) and the publication each carries, forwarded as received or re-encoded for a
client that cannot take its codec. Its session (``session.MediaSession``) offers again
whenever what they carry changes."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Protocol

from aiortc import RTCPeerConnection, RTCRtpSender
from aiortc.rtcrtpparameters import RTCRtpCodecParameters

from videoassist.media import aiortc_hooks
from videoassist.media.decoding import DECODERS
from videoassist.media.forward import ForwardTrack
from videoassist.media.publication import Publication
from videoassist.media.slot import SenderSlot
from videoassist.media.transcode import DecodedFeed, TranscodeTrack

logger = logging.getLogger(__name__)


class Feeds(Protocol):
    """The call's decoded pictures of a publication, shared by the viewers that
    re-encode it (``router.MediaRoom``)."""

    def feed(self, publication: Publication) -> DecodedFeed: ...


class Transcoding(Protocol):
    """When the media plane re-encodes (``router.MediaRouter``), and its count."""

    transcode: str

    def count_transcode(self, viewer: str, publication: Publication,
                        target: RTCRtpCodecParameters) -> None: ...


class Outgoing:
    def __init__(self, pc: RTCPeerConnection, numbering: aiortc_hooks.ClientNegotiation,
                 feeds: Feeds, transcoding: Transcoding, schedule_offer: Callable[[], None],
                 log_prefix: str) -> None:
        self._pc = pc
        self._numbering = numbering  # what the client offered, and how it numbers it
        self._feeds = feeds
        self._transcoding = transcoding
        self._schedule_offer = schedule_offer
        self._log_prefix = log_prefix
        self.slots: list[SenderSlot] = []  # never shrinks: transceivers stay
        self.subscriptions: dict[str, SenderSlot] = {}  # by publication id
        self.closed = False

    def subscribe(self, publication: Publication) -> None:
        """Send a publication to this client, over a sendonly transceiver (a slot) that
        no longer carries another, or a new one: forwarded as received, or
        re-encoded if the client cannot take its codec."""
        if self.closed or publication.id in self.subscriptions:
            return
        codec = publication.codec_parameters
        target = self._transcode_target(publication)
        source: ForwardTrack | TranscodeTrack
        if target is None:
            source = ForwardTrack(publication, publication.id)
        else:
            source = TranscodeTrack(self._feeds.feed(publication), publication.id)
            self._transcoding.count_transcode(self._log_prefix, publication, target)
            codec = target
        slot = self._slot_for(publication.kind, codec)
        slot.carry(publication, source)
        if isinstance(source, ForwardTrack):
            publication.subscribe(source, catch_up=False)  # it catches up once sending
        self.subscriptions[publication.id] = slot
        self._schedule_offer()

    def _slot_for(self, kind: str, codec: RTCRtpCodecParameters | None) -> SenderSlot:
        """A slot free for this kind and codec (one the client already knows to be
        inactive first), else a new one."""
        fitting = [slot for slot in self.slots if slot.fits(kind, codec)]
        fitting.sort(key=lambda slot: slot.releasing)
        if fitting:
            return fitting[0]
        slot = SenderSlot(self._pc, kind, codec, self._log_prefix)
        self.slots.append(slot)
        logger.info("%s has %d sending transceivers", self._log_prefix, len(self.slots))
        return slot

    def _transcode_target(self, publication: Publication) -> RTCRtpCodecParameters | None:
        """The codec to re-encode this publication to for this client; None: forward."""
        codec = publication.codec_parameters
        offered = self._numbering.offered(publication.kind)
        if publication.kind != "video" or codec is None or not offered:
            return None  # audio is Opus for everyone; a client that offered nothing: try
        if self._transcoding.transcode == "when-needed" and self._numbering.supports(codec):
            return None
        encodable = RTCRtpSender.getCapabilities("video").codecs
        return next((c for c in offered
                     if c.name in DECODERS and any(aiortc_hooks.codecs_match(c, e)
                                                   for e in encodable)), None)

    def hand_over(self, previous: Publication, publication: Publication) -> bool:
        """Send a publication over the slot that carried ``previous``, the one it
        replaces (its publisher's, from a session on a new peer connection): the
        m-section stays, its frames flow at once from the new publication's next
        keyframe, and the next offer names it (``a=msid``). False, and nothing done, if
        that slot cannot carry it as it is (then ``subscribe``)."""
        slot = self.subscriptions.get(previous.id)
        if (slot is None or self.closed or publication.id in self.subscriptions
                or not isinstance(slot.source, ForwardTrack)
                or self._transcode_target(publication) is not None
                or not slot.takes(publication.kind, publication.codec_parameters)):
            return False
        del self.subscriptions[previous.id]
        source = ForwardTrack(publication, publication.id)
        slot.hand_over(publication, source)
        publication.subscribe(source, catch_up=False)  # it catches up once sending
        self.subscriptions[publication.id] = slot
        logger.info("%s receives %s in place of %s", self._log_prefix, publication.id,
                    previous.id)
        self._schedule_offer()
        return True

    def unsubscribe(self, publication: Publication) -> None:
        slot = self.subscriptions.pop(publication.id, None)
        if slot is None or self.closed:
            return
        slot.release()
        self._schedule_offer()

    def rtp_timestamp(self, publication: Publication, timestamp: int) -> int | None:
        """The RTP timestamp this client sees on the publication's frame of this
        timestamp (``slot.SenderSlot.rtp_timestamp``); None if it is not sent here."""
        slot = self.subscriptions.get(publication.id)
        return None if slot is None else slot.rtp_timestamp(publication, timestamp)

    def publication_timestamp(self, publication: Publication, rtp_timestamp: int,
                              near: int) -> int | None:
        """The publication's timestamp of the frame this client saw with that RTP
        timestamp (``slot.SenderSlot.publication_timestamp``)."""
        slot = self.subscriptions.get(publication.id)
        return (None if slot is None
                else slot.publication_timestamp(publication, rtp_timestamp, near))

    def negotiated(self) -> bool:
        """A negotiation completed: slots start sending, or take their next
        publication; whether any changed what it carries (then offer again)."""
        return any([slot.negotiated() for slot in self.slots])  # a list: every slot hears

    def close(self) -> None:
        """Stop sending anything: every slot closed."""
        self.closed = True
        for slot in self.slots:
            slot.close()
        self.subscriptions.clear()
