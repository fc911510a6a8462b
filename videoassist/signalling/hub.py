"""Calls in progress: who is connected to which job's call, and fan-out to them.

A job's call starts when its first participant joins and ends when its last one
leaves; both are told to a ``CallEvents`` (the webhooks), in order. A participant whose
connection is lost (not ended on purpose: ``leave``, a removal, the call's end...) is
*away* for ``away_s``: it keeps its place, media session and shapes, and the same person
joining again (the same staff user, or the same join link) takes its place; when the
window passes it leaves as anyone does. Each member has a bounded outbox drained by
its connection's writer, so a slow client never holds up a broadcast: when its outbox
is full, superseded messages (pointer moves...) are dropped from it
(``videoassist.signalling.outbox``), and if it is still full it is closed.

While the server drains (see ``videoassist.serving``) no new call starts on it: a join
to a job with no call in progress is refused, a join to a call it holds is let in
(someone coming back, or someone new: the call goes on, and could go on nowhere else).

Each hub is one node's (``videoassist.cluster``): it holds the calls the database
places on its node, and only those. A join whose call is held by another node raises
``Elsewhere``, and the connection is carried there. The watcher acts on this node's
calls only: every other node watches its own.

The watcher (``watch.Watch``) looks at the database every ``poll_s``, and at once when
it notifies a change; while what it last read stands for the database (``watch.current``)
a connection checks its messages against the member's state without reading it.
Who may join, and whose place a join takes, is ``joins``.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable
from typing import Protocol

from aiohttp import web

from videoassist.errors import Draining
from videoassist.signalling import revocations
from videoassist.signalling.admission import Admission
from videoassist.signalling.events import CallEvents
from videoassist.signalling.joins import JoinGate, JoinLimits, returning
from videoassist.signalling.members import (
    CLOSE_GOING_AWAY,
    CLOSE_NORMAL,
    CLOSE_UNAUTHORIZED,
    SIGNED_OUT,
    Member,
    Room,
)
from videoassist.signalling.outbox import OUTBOX_MAX, Outbox
from videoassist.signalling.watch import Watch
from videoassist.storage import Store
from videoassist.storage.records import Job, Placement

logger = logging.getLogger(__name__)


# A call placed on this node that nobody has joined after this long is ended (the
# participant it was placed for never arrived).
UNCLAIMED_S = 30.0
# Why the server closed a connection whose participant is then away rather than gone:
# none (the socket was lost, or the client closed it without ``leave``), or a client
# too slow to read (its link, not a decision about it: it reconnects).
LOST = (None, "too_slow")


class ThisNode(Protocol):
    """What the hub needs of its node (``videoassist.cluster.node.ThisNode``)."""

    @property
    def id(self) -> int: ...

    def heard_after(self) -> float: ...


class Elsewhere(Exception):
    """The job's call is held by another node: carry the connection there."""

    def __init__(self, placement: Placement) -> None:
        super().__init__(f"call {placement.call_id} is held by node {placement.node_id}")
        self.placement = placement


class Hub:
    def __init__(self, store: Store, poll_s: float, clock: Callable[[], float],
                 node: ThisNode, events: CallEvents | None = None,
                 limits: JoinLimits | None = None, outbox_max: int = OUTBOX_MAX,
                 away_s: float = 0.0) -> None:
        """``outbox_max``: how many messages wait for one client at most; ``away_s``:
        how long a participant whose connection was lost stays in the call, away (0:
        it leaves at once)."""
        self._store = store
        self._away_s = away_s
        self._gate = JoinGate(store, limits or JoinLimits())
        self._outbox_max = outbox_max
        self._node = node
        self._clock = clock
        self._events = events
        self._rooms: dict[int, Room] = {}
        self._lock = asyncio.Lock()
        # When the watcher looks, and whether what it read stands for the database.
        self.watch = Watch(poll_s, clock)
        self._idle = asyncio.Event()
        self._idle.set()
        self.calls_started = 0              # since the server started
        self.joined: dict[str, int] = {}    # joins since the server started, by role

    @property
    def rooms(self) -> dict[int, Room]:
        return self._rooms

    def members(self) -> list[Member]:
        return [m for room in self._rooms.values() for m in room.members.values()]

    def participants_by_role(self) -> dict[str, int]:
        """Connections in calls now, by role (participants away have none)."""
        return dict(Counter(m.participant.role for m in self.members() if not m.away))

    async def wait_idle(self) -> None:
        """Return when no call is in progress."""
        await self._idle.wait()

    async def join(self, who: Admission, ws: web.WebSocketResponse, *,
                   draining: bool = False, spread: bool = False, resume: int | None = None
                   ) -> tuple[Member, Room]:
        """Add a connection to the call of the job ``who`` may join, starting the call
        if it is the first. ``draining``: no new call (``Draining``); a call in progress
        takes anyone who may join it. A call held by another node raises ``Elsewhere``;
        a new call goes on the least loaded node (``spread``: a client's own connection)
        or on this one (a connection another node carried here: never carried twice).

        ``resume``: the participant this person was in the call (``joined``'s ``you``):
        if it is still in the call, joined by the same person (the same staff user, or
        the same join link), this connection takes its place, with its id, and the
        connection it had is closed (``replaced``). Without it, or naming another, the
        person's participant that is away (the most recently away) takes this
        connection; otherwise a new participant joins."""
        job = who.job
        async with self._lock:
            room = self._rooms.get(job.id)
            new = room is None
            if room is None:
                room = await self._place(job, draining, spread)
            previous = returning(room, who.user_id, who.invite_id, who.session_version,
                                 resume)
            if previous is not None:
                return await self._resume(room, previous, who.expires_at, ws,
                                          who.session_version)
            try:
                await self._gate.check(room, who.user_id, who.invite_id)
                if new and self._events is not None:
                    await self._events.call_started(job, await self._store.calls.get(
                        room.call_id))
                participant = await self._store.calls.join(
                    room.call_id, who.role, who.name, who.user_id, who.invite_id)
            except BaseException:
                if not room.members:  # a call nobody got into: end it, or a drain waits
                    await self._forget_empty(room)
                raise
            member = Member(participant, job, who.user_id, who.invite_id, who.expires_at,
                            ws, who.session_version, Outbox(self._outbox_max))
            room.broadcast({"type": "participant.joined", "participant": participant.public()})
            room.members[member.id] = member
            self.joined[who.role] = self.joined.get(who.role, 0) + 1
        await self._store.audit.record(member.actor, "call.joined", f"job:{job.id}",
                                       call=room.call_id, participant=participant.id)
        logger.info("%s joined as %s", member.log_prefix, who.role)
        return member, room

    async def _resume(self, room: Room, previous: Member, expires_at: float,
                      ws: web.WebSocketResponse, session_version: int) -> tuple[Member, Room]:
        """Put a new connection in the place of ``previous`` (under the lock): the same
        participant goes on, so nobody is told it left or joined (only, if it was away,
        that it is back). Its connection counts against no limit (it replaces one), its
        join against the join rate."""
        self._gate.take(previous.user_id, previous.invite_id)
        member = Member(previous.participant, previous.job, previous.user_id,
                        previous.invite_id, expires_at, ws, session_version,
                        Outbox(self._outbox_max), resumed=True)
        room.members[member.id] = member
        if previous.away:
            previous.replaced = True  # its connection is gone already
            room.broadcast({"type": "participant.back",
                            "participant": member.participant.public()}, exclude=member)
            logger.info("%s back after %.1f s away", member.log_prefix,
                        self._clock() - (previous.away_since or 0.0))
        else:
            previous.replace()
            logger.info("%s resumed on a new connection", member.log_prefix)
        return member, room

    async def _place(self, job: Job, draining: bool, spread: bool) -> Room:
        """The room of the job's call, placed on this node; ``Elsewhere`` if another
        node holds it. Called under the lock, with no room for the job here."""
        if draining and await self._store.calls.in_progress(job.id) is None:
            raise Draining()  # no new call while draining; one in progress goes on
        # Draining, a call that must start again (its node died) goes on another node.
        placement = await self._store.calls.place(job.id, self._node.id,
                                                  self._node.heard_after(),
                                                  spread=spread or draining)
        if placement.ended is not None:
            logger.warning("[job %d] call %d was held by a node not heard from: ended",
                           job.id, placement.ended)
            await self._call_ended(job, placement.ended)
        if placement.node_id != self._node.id:
            raise Elsewhere(placement)
        started_at = (await self._store.calls.get(placement.call_id)).started_at
        room = self._rooms[job.id] = Room(job, placement.call_id, started_at)
        self._idle.clear()
        self.calls_started += 1
        logger.info("[job %d] call %d started", job.id, placement.call_id)
        return room

    async def _call_ended(self, job: Job, call_id: int) -> None:
        if self._events is not None:
            await self._events.call_ended(job, await self._store.calls.get(call_id))

    async def _forget_empty(self, room: Room) -> None:
        """A call that started but that nobody joined (the join failed): end it."""
        del self._rooms[room.job.id]
        if not self._rooms:
            self._idle.set()
        await self._store.calls.end(room.call_id)

    async def gone(self, member: Member) -> None:
        """The member's connection has ended. One ended on purpose (``leave``, a
        removal, the call's end, a sign-out...), with no window, or whose participant
        could not stay, leaves the call at once; one lost stays in it, away, for the
        window (``participant.away`` to the others); one replaced goes on elsewhere."""
        if member.replaced:
            return
        if self._away_s > 0 and member.close_reason in LOST and await self._away(member):
            return
        await self.end(member)

    async def _away(self, member: Member) -> bool:
        """Make a member whose connection was lost away; whether it is (it may have
        left, or be leaving, meanwhile)."""
        async with self._lock:
            room = self._rooms.get(member.job.id)
            if room is None or room.members.get(member.id) is not member or member.ending:
                return False
            member.closing = True  # nothing more is sent on its connection
            member.outbox.clear()
            now = self._clock()
            member.away_since, member.away_until = now, now + self._away_s
            room.broadcast({"type": "participant.away",
                            "participant": member.participant.public(),
                            "away_since": member.away_since,
                            "away_until": member.away_until}, exclude=member)
        self.watch.wake()  # the watcher's waits end by the window's end from now on
        logger.info("%s connection lost: away for %g s", member.log_prefix, self._away_s)
        return True

    async def end(self, member: Member) -> None:
        """The member leaves the call for good: its media withdrawn (nothing forwarded
        from or to it, nobody given its tracks), the others told
        (``participant.left``), its shapes forgotten, the call ended if it was the last;
        then its media session closed, whatever happened before. In that order:
        closing a peer connection (aiortc's, its DTLS and ICE transports) can take
        seconds on a busy machine, and the others should not see someone who left
        still there meanwhile. Once only."""
        if member.ending:
            return
        member.ending = True
        media = not member.replaced and member.end_media is not None
        if media and member.withdraw_media is not None:
            member.withdraw_media()
        try:
            await self._leave(member)
        finally:
            if media:
                assert member.end_media is not None
                try:
                    await member.end_media()
                except Exception:
                    logger.exception("%s media clean-up failed", member.log_prefix)

    async def _leave(self, member: Member) -> None:
        async with self._lock:
            room = self._rooms.get(member.job.id)
            if room is None or room.members.get(member.id) is not member:
                return
            del room.members[member.id]
            room.shapes.forget(member.id)
            room.modes.pop(member.id, None)
            room.stills.forget(member.id)
            if room.frozen is not None and member.id in (room.frozen.camera, room.frozen.by):
                room.broadcast(room.frozen.ended(None))
                room.frozen = None
            await self._store.calls.leave(member.id)
            room.broadcast({"type": "participant.left", "participant": member.participant.public()
                            | {"left_at": self._clock()}})
            if not room.members:
                await self._store.calls.end(room.call_id)
                del self._rooms[member.job.id]
                logger.info("[job %d] call %d ended", member.job.id, room.call_id)
                if self._events is not None:
                    await self._events.call_ended(room.job,
                                                  await self._store.calls.get(room.call_id))
                if not self._rooms:
                    self._idle.set()
        await self._store.audit.record(member.actor, "call.left", f"job:{member.job.id}",
                                       call=room.call_id, participant=member.id)
        logger.info("%s left", member.log_prefix)

    async def end_call(self, job_id: int, reason: str, message: str) -> int:
        """Close every connection in the job's call (the job was closed, or staff ended
        the call) with 1000 and ``reason``, after an ``error`` saying so; return how many.
        Each leaves as usual, and the call ends when the last one has."""
        room = self._rooms.get(job_id)
        members = [] if room is None else list(room.members.values())
        return await self.close_or_end(
            members, lambda m: m.close(CLOSE_NORMAL, reason, message))

    async def close_or_end(self, members: list[Member],
                            close: Callable[[Member], None]) -> int:
        """Close each member's connection with ``close``, and end at once those away
        (no window is waited out for someone who may not come back); return how many,
        of either."""
        done = 0
        for member in members:
            if member.away:
                if not member.ending:
                    done += 1
                    await self.end(member)
            elif not member.closing:
                done += 1
                close(member)
        return done

    async def disconnect_user(self, user_id: int, reason: str) -> int:
        """Close every connection of a user (disabled: ``account_disabled``; role changed
        or password reset: ``signed_out``); return how many."""
        return await self.close_or_end(
            [m for m in self.members() if m.user_id == user_id],
            lambda m: m.close(CLOSE_UNAUTHORIZED, reason, SIGNED_OUT))

    async def remove_link_participants(self, invite_ids: set[int]) -> int:
        """Close the participants who came by these join links (withdrawn:
        ``link_revoked``); return how many."""
        return await self.close_or_end(
            [m for m in self.members() if m.invite_id in invite_ids],
            Member.link_withdrawn)

    async def watch_revocations(self) -> None:
        """Look at the database (when: ``watch.Watch.run``) and close the calls of jobs
        closed, the connections of users disabled or signed out, and the participants
        of links withdrawn, anywhere (the CLI, another node, included): the bound on how
        late such a change made elsewhere takes effect here. Only this node's calls:
        each node watches its own. Also: the calls of this node that the database says
        have ended (a node that took this one for dead ended them) are closed (1011
        ``call_lost``), and the calls placed here that nobody joined are ended. The
        participants away whose window has passed leave."""
        await self.watch.run(self)

    def next_away_end(self) -> float | None:
        return min((m.away_until for m in self.members() if m.away_until is not None),
                   default=None)

    async def look(self) -> None:
        await self.end_away_past()
        await self.check_revocations()

    async def end_away_past(self) -> None:
        """The participants away whose window has passed leave the call."""
        now = self._clock()
        for member in self.members():
            if member.away_until is not None and member.away_until <= now and not member.ending:
                logger.info("%s away for %g s without coming back: left",
                            member.log_prefix, self._away_s)
                await self.end(member)

    async def check_revocations(self) -> None:
        """One look at the database for this node's calls (``revocations.look``)."""
        await revocations.look(self, self._store)

    async def end_unclaimed(self) -> None:
        """End the calls placed on this node that nobody joined in ``UNCLAIMED_S``."""
        async with self._lock:
            held = await self._store.calls.held_by(self._node.id, self._clock() - UNCLAIMED_S)
            ours = {room.call_id for room in self._rooms.values()}
            for call_id in held:
                if call_id not in ours:
                    logger.info("call %d was placed here but nobody joined it: ended",
                                call_id)
                    await self._store.calls.end(call_id)

    async def close_all(
        self, code: int = CLOSE_GOING_AWAY, reason: str = "server_shutdown"
    ) -> None:
        members = self.members()
        await self.close_or_end(
            members, lambda m: m.close(code, reason, "The server is shutting down."))
        closers = [m.closer for m in members if m.closer is not None]
        if closers:
            await asyncio.gather(*closers, return_exceptions=True)
