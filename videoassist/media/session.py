"""One participant's RTCPeerConnection with the server, and its negotiation.

The client offers first, with the tracks it publishes. Afterwards the server sends
it the other participants' tracks over sendonly transceivers, reused from one
publication to the next (``media.slot``), and sends its own offers (``sdp.offer``
from the server; the client answers with ``sdp.answer``).
One offer is in flight at a time; changes meanwhile are folded into the next.
The server is the impolite peer: a client offer while the server's is out is
refused with a conflict, and the client answers the server's offer first.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any, Protocol

from aiortc import RTCConfiguration, RTCSessionDescription
from aiortc.mediastreams import MediaStreamTrack
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtcrtptransceiver import RTCRtpTransceiver
from aiortc.sdp import SessionDescription, candidate_from_sdp

from videoassist.errors import BadRequest, Conflict
from videoassist.media import aiortc_hooks
from videoassist.media.candidates import CandidatePolicy, RemoteCandidates
from videoassist.media.counters import MediaCounters
from videoassist.media.network import MediaNetwork, MediaPortsExhausted
from videoassist.media.outgoing import Outgoing
from videoassist.media.publication import Publication
from videoassist.media.transcode import DecodedFeed

logger = logging.getLogger(__name__)

Send = Callable[[dict[str, Any]], bool]


class Room(Protocol):
    """What a session needs of its call (``router.MediaRoom``): the call's other
    sessions, and the publications it hands them."""

    call_id: int
    sessions: dict[int, MediaSession]

    def publication_id(self, participant_id: int, kind: str) -> str: ...
    def publish(self, publication: Publication) -> None: ...
    def announce(self, publisher: MediaSession) -> None: ...
    def unpublish(self, publication: Publication) -> None: ...
    def subscribe_to_others(self, session: MediaSession) -> None: ...
    def feed(self, publication: Publication) -> DecodedFeed: ...


class Plane(Protocol):
    """What a session needs of the media plane it is part of (``router.MediaRouter``):
    its settings, sockets and counters, and its hand in a session's end."""

    candidates: CandidatePolicy
    max_m_lines: int
    transcode: str
    network: MediaNetwork
    counters: MediaCounters

    def keep(self, task: asyncio.Task[None]) -> None: ...
    async def leave(self, participant_id: int, session: MediaSession | None = None
                    ) -> None: ...
    async def refuse(self, session: MediaSession, exc: MediaPortsExhausted) -> None: ...
    def count_transcode(self, viewer: str, publication: Publication,
                        target: RTCRtpCodecParameters) -> None: ...

# A peer connection that is not connected this long after the first offer is closed
# (aiortc only calls ICE failed after its own long checks; a client may just vanish).
CONNECT_TIMEOUT_S = 20.0


class MediaSession:
    def __init__(self, room: Room, plane: Plane, participant_id: int,
                 configuration: RTCConfiguration, send: Send,
                 predecessor: MediaSession | None = None) -> None:
        self.room = room
        self.plane = plane
        # The session this one replaces while it negotiates (``MediaRouter._replace``):
        # its publications are handed over to this one's (``replaced``).
        self.predecessor = predecessor
        self._handed_over: set[str] = set()
        self.participant_id = participant_id
        self.pc = aiortc_hooks.PeerConnection(configuration)
        self._send = send
        self._lock = asyncio.Lock()
        self._offer_task: asyncio.Task[None] | None = None
        self._connect_deadline: asyncio.TimerHandle | None = None
        self.offer_in_flight = False
        self.needs_offer = False
        self.negotiated = False
        self.closed = False  # withdrawn: nothing forwarded from or to it any more
        self._closing = False  # its peer connection closed, or being closed
        self.publications: dict[str, tuple[Publication, RTCRtpTransceiver]] = {}
        self.client_numbering = aiortc_hooks.ClientNegotiation()
        self.muted: dict[str, bool] = {"audio": False, "video": False}
        # The others' tracks sent to this client.
        self.outgoing = Outgoing(self.pc, self.client_numbering, room, plane,
                                 self.schedule_offer, self.log_prefix)
        # The remote candidates handed to aiortc, screened by the candidate policy.
        self.remote = RemoteCandidates(plane.candidates, plane.counters, self.log_prefix)
        self.broken = False  # a failure left the peer connection unusable: close it
        self.pc.on("track", self._on_track)
        self.pc.on("connectionstatechange", self._on_connection_state)

    @property
    def log_prefix(self) -> str:
        return f"[call {self.room.call_id} participant {self.participant_id}]"

    # -- the client's tracks -----------------------------------------------------

    def _on_track(self, track: MediaStreamTrack) -> None:
        """During setRemoteDescription, before the receiver starts: tap it."""
        transceiver = next(t for t in self.pc.getTransceivers() if t.receiver.track is track)
        publication_id = self.room.publication_id(self.participant_id, track.kind)
        receiver = transceiver.receiver
        relay = aiortc_hooks.EstimateRelay(receiver) if track.kind == "video" else None
        publication = Publication(
            publication_id, self.participant_id, track.kind,
            lambda: aiortc_hooks.request_keyframe(receiver),
            send_estimate=None if relay is None else relay.set_viewers,
            counters=self.plane.counters,
        )
        publication.set_muted(self.muted.get(track.kind, False))
        aiortc_hooks.tap_receiver(receiver, None, publication.frames_skipped,
                                  payload_sink=publication.push)
        self.publications[publication_id] = (publication, transceiver)
        logger.info("%s publishes %s", self.log_prefix, publication_id)

    def beyond_repair(self, sdp: str) -> bool:
        """Whether this session cannot take the offer: it failed, or the offer comes
        from another peer connection than the one negotiated (its DTLS fingerprint or
        ICE credentials differ: aiortc has no ICE restart, and answers a new peer
        connection's offer on an old one with ``ValueError``)."""
        if self.broken or self.pc.connectionState in ("failed", "closed"):
            return True
        remote = self.pc.remoteDescription
        return (self.negotiated and remote is not None
                and _peer_identity(sdp) != _peer_identity(remote.sdp))

    def replaced(self, kind: str) -> Publication | None:
        """The live publication of this kind of the session this one replaces, which a
        new publication of ours takes over (each once), if any."""
        if self.predecessor is None:
            return None
        for publication, _ in reversed(list(self.predecessor.publications.values())):
            if (publication.kind == kind and not publication.closed
                    and publication.id not in self._handed_over):
                self._handed_over.add(publication.id)
                return publication
        return None

    async def handle_offer(self, sdp: str) -> str:
        async with self._lock:
            if self.closed:
                raise Conflict("The media session has ended.")
            if self.offer_in_flight:
                raise Conflict("Answer the server's offer first.")
            known = set(self.publications)
            sdp = self._screen(sdp, "offer")
            await self._set_remote(sdp, "offer")
            self.client_numbering.learn(sdp)
            try:
                for publication_id, (publication, transceiver) in self.publications.items():
                    if publication_id not in known and publication.kind == "video":
                        self._prefer_shared_codec(transceiver)
                answer = await self.pc.createAnswer()
                aiortc_hooks.gather_on(self.pc, self.plane.network)
                await self.pc.setLocalDescription(answer)
            except MediaPortsExhausted:
                raise
            except Exception as exc:  # an offer aiortc parsed but cannot answer
                self.broken = True  # aiortc cannot negotiate again after this
                logger.info("%s cannot answer the offer: %s: %s", self.log_prefix,
                            type(exc).__name__, exc)
                raise BadRequest("The offer could not be answered "
                                 f"({type(exc).__name__}); the media session is closed: "
                                 "offer again from a new peer connection.") from None
            self._note_codecs()
            self._negotiated()
            first = not self.negotiated
            self.negotiated = True
            local_sdp = self.pc.localDescription.sdp
        for publication_id, (publication, _) in self.publications.items():
            if publication_id not in known:
                self.room.publish(publication)
        if first:
            self.room.subscribe_to_others(self)
            self._connect_deadline = asyncio.get_running_loop().call_later(
                CONNECT_TIMEOUT_S, self._check_connected)
        return str(local_sdp)

    def _check_connected(self) -> None:
        self._connect_deadline = None
        if not self.closed and self.pc.connectionState != "connected":
            self.plane.counters.connect_timeouts += 1
            logger.info("%s not connected after %.0f s: closing its media", self.log_prefix,
                        CONNECT_TIMEOUT_S)
            task = asyncio.ensure_future(self.plane.leave(self.participant_id, self))
            self.plane.keep(task)

    def _prefer_shared_codec(self, transceiver: RTCRtpTransceiver) -> None:
        """Answer with the client's first video codec every other participant takes,
        so the call forwards without re-encoding; if none, the client's first."""
        others = [s.client_numbering for s in self.room.sessions.values()
                  if s is not self and s.negotiated and s.client_numbering.offered("video")]
        aiortc_hooks.put_first(
            transceiver, lambda codec: all(other.supports(codec) for other in others))

    def _note_codecs(self) -> None:
        """Record the codec each publication was negotiated with (from our answer)."""
        description = SessionDescription.parse(self.pc.localDescription.sdp)
        by_mid = {media.rtp.muxId: media for media in description.media}
        for publication, transceiver in self.publications.values():
            media = by_mid.get(transceiver.mid or "")
            if media is not None and media.rtp.codecs:
                publication.codec = media.rtp.codecs[0].name
                publication.codec_parameters = media.rtp.codecs[0]

    def _screen(self, sdp: str, kind: str) -> str:
        """The SDP without the candidates the server must not send to (``remote``),
        within the limits on m-lines and candidates; BadRequest beyond them."""
        lines = sdp.splitlines()  # as aiortc splits it
        if kind == "offer":
            sections = sum(1 for line in lines if line.startswith("m="))
            allowed = len(self.outgoing.slots) + self.plane.max_m_lines
            if sections > allowed:
                raise BadRequest(f"An offer may hold at most {allowed} m-lines here "
                                 f"(VIDEOASSIST_SDP_MAX_M_LINES beyond the server's own); "
                                 f"this one has {sections}.")
        return self.remote.screen(lines)

    async def _set_remote(self, sdp: str, kind: str) -> None:
        try:
            await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type=kind))
        except Exception as exc:  # aiortc raises many types on malformed SDP
            logger.info("%s refused a malformed %s: %s: %s", self.log_prefix, kind,
                        type(exc).__name__, exc)
            raise BadRequest(f"The {kind} could not be used ({type(exc).__name__}).") from None

    async def handle_answer(self, sdp: str) -> None:
        async with self._lock:
            if not self.offer_in_flight:
                raise Conflict("There is no offer from the server to answer.")
            sdp = self._screen(sdp, "answer")
            await self._set_remote(sdp, "answer")
            self.offer_in_flight = False
            self._negotiated()
        if self.needs_offer:
            self.schedule_offer()

    async def add_candidate(self, candidate: str, sdp_mid: str | None,
                            sdp_mline_index: int | None) -> None:
        if not candidate:  # end of candidates
            return
        try:
            parsed = candidate_from_sdp(candidate.removeprefix("candidate:"))
        except Exception:  # aiortc's parser raises whatever the bad text leads it to
            raise BadRequest("The ICE candidate is malformed.") from None
        if sdp_mid is None and sdp_mline_index is None:
            raise BadRequest("An ICE candidate needs sdpMid or sdpMLineIndex.")
        parsed.sdpMid = sdp_mid
        parsed.sdpMLineIndex = sdp_mline_index
        key = (str(parsed.ip).lower(), str(parsed.port))
        if self.remote.refused(*key):
            return
        if key not in self.remote.seen:
            self.remote.take({key})
        try:
            await self.pc.addIceCandidate(parsed)
        except Exception as exc:  # e.g. sdpMid and sdpMLineIndex name no media
            raise BadRequest("The ICE candidate cannot be used: "
                             f"{type(exc).__name__}: {str(exc)[:200]}") from None

    def set_muted(self, kind: str, muted: bool) -> None:
        self.muted[kind] = muted
        for publication, _ in self.publications.values():
            if publication.kind == kind:
                publication.set_muted(muted)
        self.room.announce(self)

    def tracks_message(self) -> dict[str, Any]:
        """``media.tracks``: what this participant publishes now, and its mute state."""
        return {"type": "media.tracks", "participant": self.participant_id,
                "tracks": [{"id": p.id, "kind": p.kind, "muted": p.muted}
                           for p, _ in self.publications.values() if not p.closed]}

    def send(self, message: dict[str, Any]) -> None:
        if not self.closed:
            self._send(message)

    def retire(self) -> None:
        """A new session replaces this one: nothing of it reaches the client any more
        (an offer it was making would be answered by the new peer connection)."""
        self._send = _discard

    def rebind(self, send: Send) -> None:
        """Send to another connection of the participant from now on (a resume); an
        offer of ours still awaiting its answer is sent again there (the lost
        connection may never have delivered it)."""
        self._send = send
        local = self.pc.localDescription
        if self.offer_in_flight and not self.closed and local is not None:
            send({"type": "sdp.offer", "sdp": local.sdp})

    def _negotiated(self) -> None:
        """A negotiation completed: slots start sending, or take their next publication."""
        if self.outgoing.negotiated():
            self.schedule_offer()  # runs once the lock held now is released

    def schedule_offer(self) -> None:
        self.needs_offer = True
        if self.negotiated and (self._offer_task is None or self._offer_task.done()):
            self._offer_task = asyncio.create_task(self._offer())

    async def _offer(self) -> None:
        async with self._lock:
            if (self.closed or not self.needs_offer or self.offer_in_flight
                    or self.pc.signalingState != "stable"):
                return
            self.needs_offer = False
            offer = await aiortc_hooks.create_offer_keeping_negotiation(
                self.pc, self.client_numbering)
            aiortc_hooks.gather_on(self.pc, self.plane.network)
            try:
                await self.pc.setLocalDescription(offer)
            except MediaPortsExhausted as exc:  # a transport of a new kind found no port
                self.plane.keep(asyncio.ensure_future(self.plane.refuse(self, exc)))
                return
            self.offer_in_flight = True
            self._send({"type": "sdp.offer", "sdp": self.pc.localDescription.sdp})

    # -- the end -------------------------------------------------------------------

    async def _on_connection_state(self) -> None:
        state = self.pc.connectionState
        logger.info("%s connection %s", self.log_prefix, state)
        if state == "connected":
            # Each SRTP datagram handled as it comes, without aioice's queue and the
            # DTLS transport's task (over TURN, through them as before).
            for transport in {t.receiver.transport for t in self.pc.getTransceivers()
                              if t.receiver.transport is not None}:
                aiortc_hooks.receive_directly(transport)
        if state in ("failed", "closed") and not self.closed:
            await self.plane.leave(self.participant_id, self)

    def withdraw(self) -> None:
        """Stop, at once and without waiting for anything, all forwarding from and to
        this session: its tracks unpublished (its viewers lose them), its slots closed,
        no more offers. ``close`` then closes the peer connection, which may take a
        moment."""
        if self.closed:
            return
        self.closed = True
        if self._connect_deadline is not None:
            self._connect_deadline.cancel()
        if self._offer_task is not None:
            self._offer_task.cancel()
        for publication, _ in self.publications.values():
            self.room.unpublish(publication)
        self.outgoing.close()

    async def close(self) -> None:
        if self._closing:
            return
        self._closing = True
        self.withdraw()
        if self._offer_task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._offer_task
        try:
            await self.pc.close()
        except Exception as exc:  # aiortc's close fails on a transceiver left without a
            # transport by an offer it could not answer: stop the transports it has
            logger.info("%s closing the peer connection failed (%s: %s): stopping its "
                        "transports", self.log_prefix, type(exc).__name__, exc)
            for transceiver in self.pc.getTransceivers():
                dtls = transceiver.receiver.transport
                if dtls is not None:
                    with contextlib.suppress(Exception):
                        await dtls.stop()
                    with contextlib.suppress(Exception):
                        await dtls.transport.stop()


def _peer_identity(sdp: str) -> set[str]:
    """What tells one peer connection's descriptions from another's: the DTLS
    fingerprints and ICE credentials."""
    return {line.strip() for line in sdp.splitlines()
            if line.startswith(("a=fingerprint:", "a=ice-ufrag:", "a=ice-pwd:"))}


def _discard(message: dict[str, Any]) -> bool:
    return False
