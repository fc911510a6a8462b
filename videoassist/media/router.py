"""The media plane of every call: sessions, publications, who receives what.

Knows nothing of HTTP or SQL: signalling calls ``offer``/``answer``/``candidate``/
``leave`` with participant ids and a ``send`` callback for server-initiated
messages.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Callable
from typing import Any

from aiortc import RTCConfiguration, RTCIceServer
from aiortc.rtcrtpparameters import RTCRtpCodecParameters

from videoassist.errors import Conflict, NotFound, VideoassistError
from videoassist.media.candidates import CandidatePolicy
from videoassist.media.capture import Capture, capture
from videoassist.media.counters import MediaCounters
from videoassist.media.network import MediaNetwork, MediaPortsExhausted
from videoassist.media.pinning import Deliver, Pins
from videoassist.media.publication import Publication
from videoassist.media.session import MediaSession, Send
from videoassist.media.transcode import DecodedFeed

logger = logging.getLogger(__name__)


class MediaRoom:
    def __init__(self, call_id: int) -> None:
        self.call_id = call_id
        self.sessions: dict[int, MediaSession] = {}
        self.publications: dict[str, Publication] = {}
        self._numbered: dict[int, int] = {}  # publications ever made, by participant
        # Held by their viewers' tracks and the publication: gone with the last viewer.
        self.feeds: weakref.WeakValueDictionary[str, DecodedFeed] = (
            weakref.WeakValueDictionary())
        # The shapes pinned on the call's videos, followed (issue 23).
        self.pins = Pins(call_id, self.sessions)

    def publication_id(self, participant_id: int, kind: str) -> str:
        """A new publication's id, never given before in this call (a participant's
        sessions follow one another)."""
        number = self._numbered.get(participant_id, 0)
        self._numbered[participant_id] = number + 1
        return f"p{participant_id}-{kind}-{number}"

    def feed(self, publication: Publication) -> DecodedFeed:
        """The publication's decoded pictures, shared by the viewers that re-encode."""
        feed = self.feeds.get(publication.id)
        if feed is None or feed.closed:
            feed = self.feeds[publication.id] = DecodedFeed(publication)
        return feed

    def publish(self, publication: Publication) -> None:
        """Send a new publication to everyone else; one that replaces its publisher's
        publication of the same kind from a previous session goes over the transceivers
        that carried that one."""
        self.publications[publication.id] = publication
        publisher = self.sessions.get(publication.participant_id)
        previous = None if publisher is None else publisher.replaced(publication.kind)
        for session in self.sessions.values():
            if session.participant_id == publication.participant_id or not session.negotiated:
                continue
            if previous is None or not session.outgoing.hand_over(previous, publication):
                session.outgoing.subscribe(publication)
        if publisher is not None:
            self.announce(publisher)
        self.pins.published(publication, previous)

    def announce(self, publisher: MediaSession) -> None:
        """Tell everyone else what the publisher's tracks are now (media.tracks)."""
        message = publisher.tracks_message()
        for session in self.sessions.values():
            if session is not publisher and session.negotiated:
                session.send(message)

    def unpublish(self, publication: Publication) -> None:
        self.publications.pop(publication.id, None)
        for session in self.sessions.values():
            session.outgoing.unsubscribe(publication)
        publication.close()
        publisher = self.sessions.get(publication.participant_id)
        if publisher is not None and not publisher.closed:
            self.announce(publisher)
        feed = self.feeds.pop(publication.id, None)
        if feed is not None:
            feed.close()
        self.pins.ended(publication)

    def subscribe_to_others(self, session: MediaSession) -> None:
        for publication in list(self.publications.values()):
            if publication.participant_id != session.participant_id:
                session.outgoing.subscribe(publication)
        for other in self.sessions.values():
            if other is not session and other.publications:
                session.send(other.tracks_message())


class MediaRouter:
    def __init__(self, ice_servers: Callable[[], list[RTCIceServer]],
                 transcode: str = "when-needed", network: MediaNetwork | None = None,
                 candidates: CandidatePolicy | None = None, max_m_lines: int = 16) -> None:
        self._ice_servers = ice_servers
        # The remote candidates the server's ICE agent may send to (Settings.ice_*).
        self.candidates = candidates or CandidatePolicy()
        self.max_m_lines = max_m_lines  # Settings.sdp_max_m_lines
        self.transcode = transcode  # Settings.media_transcode
        # Where the peer connections' sockets are (Settings.media_*); default: aioice's.
        self.network = network or MediaNetwork(None, None, None)
        self._rooms: dict[int, MediaRoom] = {}
        self._sessions: dict[int, MediaSession] = {}
        # Sessions taken out of their calls whose peer connections are not closed yet.
        self._withdrawn: dict[int, MediaSession] = {}
        self.counters = MediaCounters()
        self._tasks: set[asyncio.Task[None]] = set()

    def keep(self, task: asyncio.Task[None]) -> None:
        """Hold a background task until it ends (asyncio keeps only weak references)."""
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def count_transcode(self, viewer: str, publication: Publication,
                        target: RTCRtpCodecParameters) -> None:
        """A viewer (its log prefix) is given re-encoded video."""
        self.counters.transcoded_streams += 1
        level = logging.INFO if self.transcode == "always" else logging.WARNING
        logger.log(level, "%s re-encodes %s (%s) to %s for this viewer (%d so far)",
                   viewer, publication.id, publication.codec, target.name,
                   self.transcoded_streams)

    @property
    def transcoded_streams(self) -> int:
        """Viewers ever given re-encoded video."""
        return self.counters.transcoded_streams

    def connection_states(self) -> dict[str, int]:
        """How many peer connections are in each state (new, connecting, connected...)."""
        states: dict[str, int] = {}
        for session in self._sessions.values():
            state = session.pc.connectionState
            states[state] = states.get(state, 0) + 1
        return states

    @property
    def sessions(self) -> dict[int, MediaSession]:
        return self._sessions

    def connected(self, participant_id: int) -> bool:
        session = self._sessions.get(participant_id)
        return session is not None and session.pc.connectionState == "connected"

    @property
    def rooms(self) -> dict[int, MediaRoom]:
        return self._rooms

    def publication(self, participant_id: int, kind: str = "video") -> Publication:
        """The participant's newest live publication of that kind."""
        session = self._sessions.get(participant_id)
        if session is not None:
            for publication, _ in reversed(list(session.publications.values())):
                if publication.kind == kind and not publication.closed:
                    return publication
        raise NotFound(f"Participant {participant_id} publishes no {kind}.")

    def pin(self, target: int, shape: dict[str, Any], drawer: int,
            rtp_timestamp: int | None, deliver: Deliver) -> None:
        """Pin a shape drawn by ``drawer`` on ``target``'s video, on the frame the
        drawer received with that RTP timestamp, if given (``pinning.Pins``)."""
        publication = self.publication(target, "video")
        room = self._rooms[self._sessions[target].room.call_id]
        room.pins.pin(publication, shape["id"], shape, drawer, rtp_timestamp, deliver)

    def unpin(self, target: int, key: str | None = None) -> None:
        """Unpin a shape (None: all) on ``target``'s video."""
        session = self._sessions.get(target)
        if session is not None:
            self._rooms[session.room.call_id].pins.unpin(target, key)

    async def capture(self, participant_id: int) -> Capture:
        """The newest picture of a participant's camera (for snapshots)."""
        return await capture(self.publication(participant_id, "video"))

    async def placed(self, participant_id: int, shapes: list[dict[str, Any]], timestamp: int
                     ) -> list[dict[str, Any]]:
        """``shapes`` as they are on the participant's frame of that timestamp (a
        capture's): pinned ones where the tracking put them (``pinning.Pins.placed``)."""
        session = self._sessions.get(participant_id)
        if session is None or not any(s.get("pinned") for s in shapes):
            return shapes
        publication = self.publication(participant_id, "video")
        return await self._rooms[session.room.call_id].pins.placed(publication, shapes,
                                                                    timestamp)

    async def offer(self, call_id: int, participant_id: int, sdp: str, send: Send, *,
                    restart: bool = False) -> str:
        """Apply a client's offer to its media session (a new one for its first offer);
        return the server's answer. A session that cannot be repaired is replaced by a
        new one (``_replace``): when the client says the offer is from a new peer
        connection (``restart``), when it is (other DTLS fingerprint or ICE credentials:
        aiortc restarts neither), and when aiortc cannot answer a re-offer."""
        session = self._sessions.get(participant_id)
        if session is not None and session.room.call_id != call_id:
            raise Conflict("This participant's media belongs to another call.")
        if session is not None and (restart or session.beyond_repair(sdp)):
            return await self._replace(session, sdp, send)
        if session is None:
            session = self._open(call_id, participant_id, send)
        try:
            return await session.handle_offer(sdp)
        except MediaPortsExhausted as exc:
            await self.refuse(session, exc)
            raise
        except VideoassistError:
            if session.broken and session.negotiated:  # aiortc cannot take it: start afresh
                return await self._replace(session, sdp, send)
            if not session.negotiated or session.broken:  # no empty session left behind
                await self.leave(participant_id)
            raise

    def _open(self, call_id: int, participant_id: int, send: Send,
              predecessor: MediaSession | None = None) -> MediaSession:
        """A new media session for the participant, in place of any it had."""
        room = self._rooms.get(call_id)
        if room is None:
            room = self._rooms[call_id] = MediaRoom(call_id)
        # aiortc falls back to a public STUN server when given no list: always give one.
        configuration = RTCConfiguration(iceServers=self._ice_servers())
        session = MediaSession(room, self, participant_id, configuration, send, predecessor)
        self.counters.peer_connections += 1
        room.sessions[participant_id] = session
        self._sessions[participant_id] = session
        return session

    async def _replace(self, old: MediaSession, sdp: str, send: Send) -> str:
        """Answer the offer from a new peer connection, which takes the place of the
        participant's session: its new tracks go to the viewers over the transceivers
        that carried its old ones (``MediaSession.hand_over``), and the old session is
        closed (its ports with it) right after."""
        self.counters.media_restarts += 1
        logger.info("%s media starts again on a new peer connection", old.log_prefix)
        old.retire()
        session = self._open(old.room.call_id, old.participant_id, send, predecessor=old)
        try:
            return await session.handle_offer(sdp)
        except MediaPortsExhausted as exc:
            await self.refuse(session, exc)
            raise
        except VideoassistError:
            await self.leave(old.participant_id)
            raise
        finally:
            session.predecessor = None
            # Closed once the answer is on its way: the new session's own offer must
            # not overtake it.
            self.keep(asyncio.ensure_future(old.close()))

    async def refuse(self, session: MediaSession, exc: MediaPortsExhausted) -> None:
        """A peer connection that found no free port: logged and closed (aiortc cannot
        negotiate again after a failed setLocalDescription; a new offer starts afresh)."""
        self.counters.ports_refused += 1
        logger.warning("%s media refused: %s (VIDEOASSIST_MEDIA_PORTS)", session.log_prefix,
                       exc.detail)
        await self.leave(session.participant_id)

    def rebind(self, participant_id: int, send: Send) -> None:
        session = self._sessions.get(participant_id)
        if session is not None:
            session.rebind(send)

    async def answer(self, participant_id: int, sdp: str) -> None:
        await self._session(participant_id).handle_answer(sdp)

    async def mute(self, participant_id: int, kind: str, muted: bool) -> None:
        self._session(participant_id).set_muted(kind, muted)

    def muted(self, participant_id: int, kind: str) -> bool:
        session = self._sessions.get(participant_id)
        return session is not None and session.muted.get(kind, False)

    async def candidate(self, participant_id: int, fields: dict[str, Any]) -> None:
        await self._session(participant_id).add_candidate(
            fields["candidate"], fields.get("sdpMid"), fields.get("sdpMLineIndex"))

    def _session(self, participant_id: int) -> MediaSession:
        session = self._sessions.get(participant_id)
        if session is None:
            raise Conflict("Send an sdp.offer first.")
        return session

    def withdraw(self, participant_id: int) -> None:
        """Take the participant's media session out of its call at once: nothing is
        forwarded from or to it from now on, nobody is given its tracks; ``leave``
        closes its peer connection."""
        session = self._sessions.pop(participant_id, None)
        if session is None:
            return
        self._withdrawn[participant_id] = session
        room = session.room
        room.sessions.pop(participant_id, None)
        session.withdraw()
        if not room.sessions:
            self._rooms[room.call_id].pins.close()
            self._rooms.pop(room.call_id, None)

    async def leave(self, participant_id: int, session: MediaSession | None = None) -> None:
        """Close the participant's media session, withdrawn first if it is not yet
        (``session``: only if it is that one: one another has replaced is merely
        closed)."""
        if session is not None and self._sessions.get(participant_id) is not session \
                and self._withdrawn.get(participant_id) is not session:
            await session.close()
            return
        self.withdraw(participant_id)
        session = self._withdrawn.pop(participant_id, None)
        if session is None:
            return
        await session.close()
        logger.info("[call %d participant %d] media closed", session.room.call_id,
                    participant_id)

    async def close(self) -> None:
        for participant_id in [*self._sessions, *self._withdrawn]:
            await self.leave(participant_id)
