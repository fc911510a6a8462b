"""Calls in progress: who is connected to which job's call, and fan-out to them.

A job's call starts when its first participant joins and ends when its last one
leaves; both are told to a ``CallEvents`` (the webhooks), in order. A participant whose
connection is lost (not ended on purpose: ``leave``, a removal, the call's end...) is
*away* for ``away_s``: it keeps its place, media session and shapes, and the same person
joining again (the same staff user, or the same join link) takes its place; when the
window passes it leaves as anyone does. Each member has a
bounded outbox drained by its connection's writer, so a slow client never holds up a
broadcast: when its outbox is full, superseded messages (pointer moves...) are dropped
from it (``videoassist.signalling.outbox``), and if it is still full it is closed.

While the server drains (see ``videoassist.serving``) no new call starts on it: a join
to a job with no call in progress is refused, a join to a call it holds is let in
(someone coming back, or someone new: the call goes on, and could go on nowhere else).

Each hub is one node's (``videoassist.cluster``): it holds the calls the database
places on its node, and only those. A join whose call is held by another node raises
``Elsewhere``, and the connection is carried there. The watcher acts on this node's
calls only: every other node watches its own.

The watcher looks at the database every ``poll_s``, and at once when the database
notifies a change (PostgreSQL, ``videoassist.cluster.changes``); while the
notifications do not come, at least every ``UNHEARD_POLL_S``. While notifications
come, what it last read is current enough to stand for the database: ``notified`` says
so. Without them (SQLite; the notifications lost), what it read in a look begun within
``TRUSTED_LOOK_S`` stands for the database too: ``current`` says whether either holds.
A connection checks its messages against the member's state while the hub is current,
and reads the database for them only while it is not (the watcher late or failing):
under load, a read per message queued the call's signalling behind the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from aiohttp import web

from videoassist.actors import Actor
from videoassist.auth.ratelimit import TokenBucket
from videoassist.domain import jobs
from videoassist.errors import CallFull, Draining, TooManyConnections, TooManyRequests
from videoassist.signalling.events import CallEvents
from videoassist.signalling.members import (
    CALL_LOST,
    CLOSE_CALL_LOST,
    CLOSE_GOING_AWAY,
    CLOSE_NORMAL,
    CLOSE_UNAUTHORIZED,
    SIGNED_OUT,
    Member,
    Room,
    actor,
)
from videoassist.signalling.outbox import OUTBOX_MAX, Outbox
from videoassist.storage import Store
from videoassist.storage.records import Job, Placement

logger = logging.getLogger(__name__)


# A call placed on this node that nobody has joined after this long is ended (the
# participant it was placed for never arrived).
UNCLAIMED_S = 30.0
UNCLAIMED_CHECK_S = 5.0
# How often the watcher looks at most while the database's notifications do not come
# (lost, or not yet there), however long ``poll_s`` is: the poll is then what bounds
# how late a change made elsewhere takes effect.
UNHEARD_POLL_S = 0.25
# How often the watcher looks at most while someone is away, whatever the window: the
# wall clock its windows are counted on may jump (tests move it).
AWAY_CHECK_S = 1.0
# How old the watcher's last whole look at the database may be (counted from when it
# began) for a signalling message to be checked against what it read rather than read
# from the database again: the bound on how long after a change made elsewhere (another process,
# the CLI) a message of whom it concerns may still be acted upon, without notifications.
TRUSTED_LOOK_S = 1.0
# Why the server closed a connection whose participant is then away rather than gone:
# none (the socket was lost, or the client closed it without ``leave``), or a client
# too slow to read (its link, not a decision about it: it reconnects).
LOST = (None, "too_slow")


# People whose join rate is remembered before those with a full bucket are forgotten.
JOIN_BUCKETS_MAX = 1000


@dataclass(frozen=True)
class JoinLimits:
    """How many connections to calls one join link's token (``per_link``), and one
    staff user (``per_user``, over every call, counted in the database) may hold at
    once, how many participants one call holds (``per_call``), and how often one link's
    token or one staff user joins (``joins_per_min``, in this process). A participant
    away holds its place in each count: dropping and joining again takes it back, and
    makes no room for another."""

    per_link: int = 3
    per_user: int = 4
    per_call: int = 16
    joins_per_min: int = 30  # joins by one token or staff user, a minute's worth at once


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
                 limits: JoinLimits = JoinLimits(), outbox_max: int = OUTBOX_MAX,
                 away_s: float = 0.0) -> None:
        """``outbox_max``: how many messages wait for one client at most; ``away_s``:
        how long a participant whose connection was lost stays in the call, away (0:
        it leaves at once)."""
        self._store = store
        self._away_s = away_s
        self._limits = limits
        self._outbox_max = outbox_max
        self._node = node
        self._poll_s = poll_s
        self._clock = clock
        self._events = events
        self._rooms: dict[int, Room] = {}
        # Joins each person (``actor``) may still make; pruned of those idle a while.
        self._joins: dict[Actor, TokenBucket] = {}
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._listening = False  # the database's notifications come
        self._listen_epoch = 0   # times they started coming
        self._checked_epoch = -1  # the epoch at the start of the last whole check
        self._changes = 0  # changes notified
        self._checked_changes = 0  # changes notified before the last whole check began
        self._looked_at = -float("inf")  # when the last look that ended well began
        self._idle = asyncio.Event()
        self._idle.set()
        self.calls_started = 0              # since the server started
        self.joined: dict[str, int] = {}    # joins since the server started, by role

    @property
    def rooms(self) -> dict[int, Room]:
        return self._rooms

    @property
    def notified(self) -> bool:
        """Whether every change to who may stay in a call reaches this hub as a
        notification, and the watcher has looked at the calls since they began to and
        since the last one came: then a member not closed may still be there, without
        asking the database."""
        return (self._listening and self._checked_epoch == self._listen_epoch
                and self._checked_changes == self._changes)

    @property
    def current(self) -> bool:
        """Whether what the watcher last read stands for the database: it is notified
        (``notified``), or its last whole look began at most ``TRUSTED_LOOK_S`` ago and
        no change notified since is waiting for the next."""
        if self.notified:
            return True
        return (self._checked_changes == self._changes
                and asyncio.get_running_loop().time() - self._looked_at <= TRUSTED_LOOK_S)

    def changed(self, table: str, row: int) -> None:
        """The database notified a change (a user, job, link, API key or call): look at
        the calls now."""
        self._changes += 1
        self._wake.set()

    def notifications(self, up: bool) -> None:
        """The database's notifications started coming (again: look at the calls now,
        for what changed while they did not), or stopped."""
        self._listening = up
        if up:
            self._listen_epoch += 1
        self._wake.set()  # up: look now; down: poll often from now on

    def members(self) -> list[Member]:
        return [m for room in self._rooms.values() for m in room.members.values()]

    def participants_by_role(self) -> dict[str, int]:
        """Connections in calls now, by role (participants away have none)."""
        roles: dict[str, int] = {}
        for member in self.members():
            if member.away:
                continue
            roles[member.participant.role] = roles.get(member.participant.role, 0) + 1
        return roles

    async def wait_idle(self) -> None:
        """Return when no call is in progress."""
        await self._idle.wait()

    async def join(
        self,
        job: Job,
        role: str,
        display_name: str,
        user_id: int | None,
        invite_id: int | None,
        expires_at: float,
        ws: web.WebSocketResponse,
        session_version: int = 0,
        *,
        draining: bool = False,
        spread: bool = False,
        resume: int | None = None,
    ) -> tuple[Member, Room]:
        """Add a connection to the job's call, starting the call if it is the first.
        ``draining``: no new call (``Draining``); a call in progress takes anyone who
        may join it. A call held by another node
        raises ``Elsewhere``; a new call goes on the least loaded node (``spread``: a
        client's own connection) or on this one (a connection another node carried
        here, so that it is never carried twice).

        ``resume``: the participant this person was in the call (``joined``'s ``you``):
        if it is still in the call, joined by the same person (the same staff user, or
        the same join link), this connection takes its place, with its id, and the
        connection it had is closed (``replaced``). Without it, or naming another, the
        person's participant that is away (the most recently away) takes this
        connection; otherwise a new participant joins."""
        async with self._lock:
            room = self._rooms.get(job.id)
            new = room is None
            if room is None:
                room = await self._place(job, draining, spread)
            previous = self._returning(room, user_id, invite_id, session_version, resume)
            if previous is not None:
                return await self._resume(room, previous, expires_at, ws, session_version)
            try:
                await self._check_limits(room, user_id, invite_id)
                if new and self._events is not None:
                    await self._events.call_started(job, await self._store.calls.get(
                        room.call_id))
                participant = await self._store.calls.join(
                    room.call_id, role, display_name, user_id, invite_id
                )
            except BaseException:
                if not room.members:  # a call nobody got into: end it, or a drain waits
                    await self._forget_empty(room)
                raise
            member = Member(participant, job, user_id, invite_id, expires_at, ws,
                            session_version, Outbox(self._outbox_max))
            room.broadcast({"type": "participant.joined", "participant": participant.public()})
            room.members[member.id] = member
            self.joined[role] = self.joined.get(role, 0) + 1
        await self._store.audit.record(member.actor, "call.joined", f"job:{job.id}",
                                       call=room.call_id, participant=participant.id)
        logger.info("%s joined as %s", member.log_prefix, role)
        return member, room

    @staticmethod
    def _returning(room: Room, user_id: int | None, invite_id: int | None,
                   session_version: int, resume: int | None) -> Member | None:
        """The participant whose place a join by this person takes (under the lock):
        the one ``resume`` names if it is theirs, else the one of theirs most recently
        away; None: a new participant. Theirs: joined by the same staff user (in the
        same session version: one signed out since is on its way out) or the same join
        link, and not leaving or replaced already."""
        def theirs(m: Member) -> bool:
            return (m.user_id == user_id and m.invite_id == invite_id
                    and m.session_version == session_version
                    and not m.replaced and not m.ending)

        named = None if resume is None else room.members.get(resume)
        if named is not None and theirs(named):
            return named
        away = [m for m in room.members.values() if m.away and theirs(m)]
        return max(away, key=lambda m: m.away_since or 0.0, default=None)

    async def _resume(self, room: Room, previous: Member, expires_at: float,
                      ws: web.WebSocketResponse, session_version: int) -> tuple[Member, Room]:
        """Put a new connection in the place of ``previous`` (under the lock): the same
        participant goes on, so nobody is told it left or joined (only, if it was away,
        that it is back). Its connection counts against no limit (it replaces one), its
        join against the join rate."""
        self._take_join(previous.user_id, previous.invite_id)
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

    def _take_join(self, user_id: int | None, invite_id: int | None) -> None:
        if len(self._joins) > JOIN_BUCKETS_MAX:  # forget those that have refilled
            self._joins = {k: b for k, b in self._joins.items() if not b.full()}
        per_min = self._limits.joins_per_min
        bucket = self._joins.setdefault(actor(user_id, invite_id),
                                        TokenBucket(per_min / 60, per_min, time.monotonic))
        if not bucket.take():
            raise TooManyRequests("You joined too often; wait a minute and try again.")

    async def _check_limits(self, room: Room, user_id: int | None, invite_id: int | None
                            ) -> None:
        """Refuse a join past the limits (called under the lock, so joins in this
        process are counted one at a time)."""
        members = room.members.values()
        if invite_id is not None and sum(
                m.invite_id == invite_id for m in members) >= self._limits.per_link:
            raise TooManyConnections()
        if user_id is not None and await self._store.calls.connections_of(
                user_id=user_id) >= self._limits.per_user:
            raise TooManyConnections()
        if len(room.members) >= self._limits.per_call:
            raise CallFull()
        self._take_join(user_id, invite_id)

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
        self._wake.set()  # the watcher's waits end by the window's end from now on
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
        return await self._close_or_end(
            members, lambda m: m.close(CLOSE_NORMAL, reason, message))

    async def _close_or_end(self, members: list[Member],
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
        return await self._close_or_end(
            [m for m in self.members() if m.user_id == user_id],
            lambda m: m.close(CLOSE_UNAUTHORIZED, reason, SIGNED_OUT))

    async def remove_link_participants(self, invite_ids: set[int]) -> int:
        """Close the participants who came by these join links (withdrawn:
        ``link_revoked``); return how many."""
        return await self._close_or_end(
            [m for m in self.members() if m.invite_id in invite_ids],
            Member.link_withdrawn)

    async def watch_revocations(self) -> None:
        """Every ``poll_s`` (while the database's notifications do not come, at least
        every ``UNHEARD_POLL_S``), and at once when it notifies a change: close the
        calls of jobs closed, the connections of users disabled or signed out, and the
        participants of links withdrawn, anywhere (the CLI, another node, included): the
        bound on how late such a change made elsewhere takes effect here. Only this
        node's calls: each node watches its own. Also: the calls of this node that the
        database says have ended (a node that took this one for dead ended them) are
        closed (1011 ``call_lost``), and every ``UNCLAIMED_CHECK_S`` the calls placed
        here that nobody joined are ended. The participants away whose window has
        passed leave, looked at by the window's end, and at least every
        ``AWAY_CHECK_S`` while anyone is away."""
        loop = asyncio.get_running_loop()
        unclaimed_at = loop.time()
        self._wake.set()  # the first look at once: until it ends, messages read
        while True:
            unclaimed_in = unclaimed_at + UNCLAIMED_CHECK_S - loop.time()
            poll_s = self._poll_s if self._listening else min(self._poll_s, UNHEARD_POLL_S)
            away = [m.away_until for m in self.members() if m.away_until is not None]
            if away:
                poll_s = min(poll_s, AWAY_CHECK_S, min(away) - self._clock())
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(0.0, min(poll_s, unclaimed_in))):
                    await self._wake.wait()
            self._wake.clear()  # a change notified from here on wakes the next round
            epoch, changes = self._listen_epoch, self._changes
            began = loop.time()
            try:
                await self.end_away_past()
                await self.check_revocations()
                self._checked_epoch, self._checked_changes = epoch, changes
                self._looked_at = began
                if loop.time() - unclaimed_at >= UNCLAIMED_CHECK_S:
                    unclaimed_at = loop.time()
                    await self._end_unclaimed()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("revocation check failed; retrying")

    async def end_away_past(self) -> None:
        """The participants away whose window has passed leave the call."""
        now = self._clock()
        for member in self.members():
            if member.away_until is not None and member.away_until <= now and not member.ending:
                logger.info("%s away for %g s without coming back: left",
                            member.log_prefix, self._away_s)
                await self.end(member)

    async def check_revocations(self) -> None:
        """One look at the database for this node's calls (see ``watch_revocations``)."""
        for job_id in await self._store.jobs.closed_among(set(self._rooms)):
            await jobs.end_call(self, job_id)
        await self._disconnect_signed_out()
        await self._remove_withdrawn_links()
        await self._close_ended_elsewhere()

    async def _close_ended_elsewhere(self) -> None:
        rooms = {room.call_id: room for room in self._rooms.values()}
        for call_id in await self._store.calls.ended_among(set(rooms)):
            room = rooms[call_id]
            logger.warning("[job %d] call %d was ended by another node: closing it here",
                           room.job.id, call_id)
            await self._close_or_end(list(room.members.values()),
                                     lambda m: m.close(CLOSE_CALL_LOST, "call_lost", CALL_LOST))

    async def _end_unclaimed(self) -> None:
        """End the calls placed on this node that nobody joined in ``UNCLAIMED_S``."""
        async with self._lock:
            held = await self._store.calls.held_by(self._node.id, self._clock() - UNCLAIMED_S)
            ours = {room.call_id for room in self._rooms.values()}
            for call_id in held:
                if call_id not in ours:
                    logger.info("call %d was placed here but nobody joined it: ended",
                                call_id)
                    await self._store.calls.end(call_id)

    async def _disconnect_signed_out(self) -> None:
        """Close the connections of users disabled, or signed out by a role change or a
        password reset, since they joined."""
        staff = [m for m in self.members() if m.user_id is not None
                 and (m.away or not m.closing) and not m.ending]
        if not staff:
            return
        versions = await self._store.users.session_versions({m.user_id for m in staff
                                                            if m.user_id is not None})
        for member in staff:
            if not member.away:
                member.sign_out_if_stale(versions.get(member.user_id or 0))
            elif versions.get(member.user_id or 0) != member.session_version:
                await self.end(member)

    async def _remove_withdrawn_links(self) -> None:
        """Close the participants whose join link was withdrawn since they joined."""
        invite_ids = {m.invite_id for m in self.members()
                      if m.invite_id is not None and (m.away or not m.closing)
                      and not m.ending}
        if invite_ids:
            await self.remove_link_participants(
                await self._store.invites.withdrawn_among(invite_ids))

    async def close_all(
        self, code: int = CLOSE_GOING_AWAY, reason: str = "server_shutdown"
    ) -> None:
        members = self.members()
        await self._close_or_end(
            members, lambda m: m.close(code, reason, "The server is shutting down."))
        closers = [m.closer for m in members if m.closer is not None]
        if closers:
            await asyncio.gather(*closers, return_exceptions=True)
