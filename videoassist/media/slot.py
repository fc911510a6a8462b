"""A viewer's sendonly transceivers, reused from one publication to the next.

The server sends each viewer the others' tracks over sendonly transceivers of the
viewer's peer connection. An m-section, once negotiated, stays in every later
description (aiortc 1.16 neither rejects nor recycles one: ``transceiver.stop()``
only stops its sender and receiver), so one transceiver per publication would grow
the viewer's connection by an audio and a video m-section every time someone rejoins:
a phone that drops and reconnects does so on every network change. Instead each
transceiver is a ``SenderSlot`` that carries one publication at a time, and a new
publication takes a slot that no longer carries one, if its codec fits. A viewer's
connection thus holds, per kind and codec, as many slots as it ever received
publications at once: one audio and one video per other publisher in a plain call,
however often people come and go.

Restarting: aiortc's sender reads its track in a loop (``RTCRtpSender._run_rtp``) that
starts once, when the connection is up, and ends for good when the track's ``recv()``
raises ``MediaStreamError``. So the sender of a slot reads one ``SlotTrack`` for the
slot's whole life, and that track passes on the frames of the current publication's
track (a ``ForwardTrack`` or ``TranscodeTrack``, the source), waiting between
publications. No restart and no ``replaceTrack`` are needed, and the sender's SSRC,
sequence numbers and VP8 picture ids simply go on (its RTP loop is
``aiortc_hooks.PacketSender``'s, which numbers a forwarded frame's packets and picture
id as its own).

Timestamps: aiortc sends a frame with the RTP timestamp ``origin + pts`` (``origin``
random per sender), and a forwarded frame's pts is the publisher's own RTP
timestamp, which starts anywhere. On a reused slot that would be a random jump. Tried
with Chromium 156: a jump that does not match the time that passed (forwards by
600 s, or by 2**31, which reads as backwards) costs the viewer a second of video
(30 frames dropped after the keyframe) however long the gap, while timestamps that
go on with the wall-clock time since the last frame lose nothing. So a slot shifts
each new source's timestamps to carry on from its last frame plus the time since,
capped at an hour so that a jump stays far from the half-range of RTP's 32 bits.

Naming: the viewer learns whose media a slot carries from the ``a=msid`` line, whose
stream id is ``p<participant>`` and track id the publication id (docs/protocol.md,
"Media"). Chromium 156 fires ``track`` again when an m-section goes from inactive to
sendonly, with ``event.streams`` from the new msid, but the track object, and its id,
are the first publication's: a client must read the stream id, never the track id.
A slot is made sendonly for a new publication only once the viewer has answered the
offer that made it inactive: the viewer always sees the old publication end (its
track muted) before the new one begins, and no frames reach an m-section the viewer
still holds inactive.
"""

from __future__ import annotations

import asyncio
import fractions
import functools
import logging
import time
from collections.abc import Callable
from typing import Any

from aiortc import RTCPeerConnection, RTCRtpSender
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtcrtptransceiver import RTCRtpTransceiver

from videoassist.media import aiortc_hooks
from videoassist.media.forward import ForwardTrack
from videoassist.media.publication import Publication
from videoassist.media.transcode import TranscodeTrack

logger = logging.getLogger(__name__)

Source = ForwardTrack | TranscodeTrack

# The longest pause a slot's timestamps say passed between two publications (see
# the module docstring): an hour is 324 million ticks at 90 kHz, an eighth of 2**32.
MAX_GAP_S = 3600.0


class SlotTrack(MediaStreamTrack):
    """What a slot's aiortc sender reads: the current source's frames, timestamps
    shifted to follow on from the previous source's, and a wait when there is none."""

    def __init__(self, kind: str, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.kind = kind
        self._clock = clock
        self._source: Source | None = None
        self._wake: asyncio.Future[None] | None = None
        self._shift: int | None = None  # added to the source's pts; None: not known yet
        self._last: tuple[int, fractions.Fraction, float] | None = None  # pts, base, when
        # The slot's sender, which a forwarded frame may go to directly (``_deliver``).
        self.packets: aiortc_hooks.PacketSender | None = None

    @property
    def source(self) -> Source | None:
        return self._source

    def feed(self, source: Source | None) -> None:
        """Pass on this source's frames from now on (None: none)."""
        if isinstance(self._source, ForwardTrack):
            self._source.direct = None
        self._source = source
        self._shift = None
        if isinstance(source, ForwardTrack) and self.packets is not None:
            source.direct = functools.partial(self._deliver, source)
        self._poke()

    def _deliver(self, source: ForwardTrack, item: aiortc_hooks.ForwardedFrame) -> bool:
        """A frame the source hands over directly (``media.forward``): sent at once if
        the sender is waiting for one on a plain UDP path, else False, and the source
        queues it for ``recv`` as before."""
        if self._source is not source or self.readyState != "live" or self.packets is None:
            return False
        udp = self.packets.ready_now()
        if udp is None:
            return False
        try:
            self.packets.send_now(self._shifted(item), udp)
        except Exception:  # the publisher's receive path must go on; the frame is lost
            logger.exception("sending a forwarded frame at once failed")
        return True

    def _poke(self) -> None:
        if self._wake is not None and not self._wake.done():
            self._wake.set_result(None)

    async def recv(self) -> Any:
        while True:
            if self.readyState != "live":
                raise MediaStreamError
            source = self._source
            if source is None:
                self._wake = asyncio.get_running_loop().create_future()
                await self._wake
                continue
            try:
                item = await source.recv()
            except MediaStreamError:  # the source ended: wait for the next one
                if self._source is source:
                    self._source = None
                continue
            if self._source is source:  # else it was replaced while we waited
                return self._shifted(item)

    def _shifted(self, item: Any) -> Any:
        """Move the item's pts (a packet's or a picture's) onto this track's clock."""
        now = self._clock()
        base = item.time_base
        if self._shift is None:
            if self._last is None:
                self._shift = 0
            else:
                pts, last_base, at = self._last
                gap = min(max(now - at, 0.0), MAX_GAP_S)
                follows = pts * last_base / base + max(1, round(gap / base))
                self._shift = round(follows) - item.pts
        if self._shift:  # the item is this viewer's own (see transcode.DecodedFeed)
            item.pts += self._shift
        self._last = (item.pts, base, now)
        return item

    def shift(self, source: Source) -> int | None:
        """What this track adds to the pts of ``source``'s frames, once it has sent
        one (None before, or for another source)."""
        return self._shift if source is self._source else None

    def stop(self) -> None:
        super().stop()
        self._poke()


class SenderSlot:
    """One sendonly transceiver of a viewer's connection, for the connection's life,
    and the publication it carries now, if any."""

    def __init__(self, pc: RTCPeerConnection, kind: str,
                 codec: RTCRtpCodecParameters | None, log_prefix: str) -> None:
        self.kind = kind
        self.codec = codec  # what the transceiver was negotiated for; None: aiortc's
        self.log_prefix = log_prefix
        self.track = SlotTrack(kind)
        self.transceiver: RTCRtpTransceiver = pc.addTransceiver(self.track,
                                                                direction="sendonly")
        if codec is not None:
            capabilities = RTCRtpSender.getCapabilities(kind).codecs
            chosen = [c for c in capabilities if aiortc_hooks.codecs_match(c, codec)][:1]
            rtx = [c for c in capabilities if c.mimeType.lower() == f"{kind}/rtx"]
            self.transceiver.setCodecPreferences(chosen + rtx[:1])
        sender = self.transceiver.sender
        # Forwarded frames go out in the RTP payloads they came in, not packetized anew.
        self.packets = self.track.packets = aiortc_hooks.send_packets(sender)
        self._own_keyframe = aiortc_hooks.on_keyframe_request(sender, self._keyframe_request)
        aiortc_hooks.on_bitrate_estimate(sender, self._bitrate_estimate)
        self.publication: Publication | None = None
        self.source: Source | None = None
        # Made inactive, and the viewer has not answered an offer saying so yet.
        self.releasing = False

    def rtp_timestamp(self, publication: Publication, timestamp: int) -> int | None:
        """The RTP timestamp the viewer sees on the frame of ``publication`` with this
        timestamp (its own, ``EncodedFrame.timestamp``); None while the slot does not
        carry it as forwarded, or has sent none of it yet."""
        if self.publication is not publication or not isinstance(self.source, ForwardTrack):
            return None
        shift = self.track.shift(self.source)
        if shift is None or self.packets is None:
            return None
        return self.packets.rtp_timestamp(timestamp + shift)

    def publication_timestamp(self, publication: Publication, rtp_timestamp: int,
                              near: int) -> int | None:
        """The inverse of ``rtp_timestamp``: the publication's own timestamp of the frame
        the viewer saw with this RTP timestamp, the one nearest ``near`` (a recent
        frame's: RTP's 32 bits wrap every 13 hours at 90 kHz)."""
        at_near = self.rtp_timestamp(publication, near)
        if at_near is None:
            return None
        ticks = (rtp_timestamp - at_near) & 0xFFFFFFFF
        return near + (ticks - 2**32 if ticks >= 2**31 else ticks)

    def fits(self, kind: str, codec: RTCRtpCodecParameters | None) -> bool:
        """Whether a publication of this kind and codec can take this slot now."""
        return self.source is None and self.takes(kind, codec)

    def takes(self, kind: str, codec: RTCRtpCodecParameters | None) -> bool:
        """Whether this slot can carry a publication of this kind and codec."""
        if kind != self.kind:
            return False
        if self.track.readyState != "live":  # its sender's loop ended on an error
            return False
        if codec is None or self.codec is None:
            return codec is None and self.codec is None
        return aiortc_hooks.codecs_match(codec, self.codec)

    def carry(self, publication: Publication, source: Source) -> None:
        """Take a publication; it is sent once the viewer has answered for it."""
        self.publication = publication
        self.source = source
        if not self.releasing:
            self._open()

    def _open(self) -> None:
        assert self.publication is not None
        participant = f"p{self.publication.participant_id}"
        logger.debug("%s %s transceiver %s carries %s", self.log_prefix, self.kind,
                     self.transceiver.mid, self.publication.id)
        aiortc_hooks.label_sender(self.transceiver.sender, participant, self.publication.id)
        self.transceiver.direction = "sendonly"

    def hand_over(self, publication: Publication, source: Source) -> None:
        """Carry another publication in place of the current one, with no inactive
        offer between them: what the sender sends switches at once (the track's
        timestamps go on), and the next offer names the new one."""
        previous = self.source
        self.publication = publication
        self.source = source
        if previous is not None:
            previous.stop()
        if self.releasing:  # it opens once the viewer answered the inactive offer
            return
        aiortc_hooks.label_sender(self.transceiver.sender,
                                  f"p{publication.participant_id}", publication.id)
        if previous is not None and self.track.source is previous:
            self.track.feed(source)

    def release(self) -> None:
        """The publication is gone or unsubscribed: stop sending, go inactive."""
        if self.source is not None:
            self.source.stop()
        self.track.feed(None)
        self.publication = None
        self.source = None
        self.transceiver.direction = "inactive"
        self.releasing = True

    def negotiated(self) -> bool:
        """A negotiation completed: start sending, or carry a waiting publication.
        True if that needs another offer."""
        current = self.transceiver.currentDirection
        if self.releasing:  # an answer to an offer from before the release changes nothing
            if current != "inactive":
                return False
            self.releasing = False
            if self.source is None:
                return False
            self._open()
            return True
        if (self.source is not None and current == "sendonly"
                and self.track.source is not self.source):
            self.track.feed(self.source)
        return False

    def _keyframe_request(self) -> None:
        """The viewer asked for a keyframe: the publisher makes them, unless the
        sender re-encodes (then its encoder does)."""
        if isinstance(self.source, ForwardTrack):
            self.source.publication.want_keyframe()
        elif isinstance(self.source, TranscodeTrack):
            self._own_keyframe()

    def _bitrate_estimate(self, bits_per_second: int) -> None:
        if isinstance(self.source, ForwardTrack):
            self.source.publication.viewer_estimate(self.source, bits_per_second)

    def close(self) -> None:
        if self.source is not None:
            self.source.stop()
        self.source = None
        self.publication = None
        self.track.stop()
