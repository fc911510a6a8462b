"""Who may join a call, and whose place a join takes: the limits on connections and
on how often one person joins (``JoinGate``), and the participant a person coming back
takes over (``returning``). The hub asks both under its lock, so joins in this process
are counted one at a time."""

from __future__ import annotations

import time
from dataclasses import dataclass

from videoassist.actors import Actor
from videoassist.auth.ratelimit import TokenBucket
from videoassist.errors import CallFull, TooManyConnections, TooManyRequests
from videoassist.signalling.members import Member, Room, actor
from videoassist.storage import Store

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


class JoinGate:
    def __init__(self, store: Store, limits: JoinLimits) -> None:
        self._store = store
        self._limits = limits
        # Joins each person (``actor``) may still make; pruned of those idle a while.
        self._joins: dict[Actor, TokenBucket] = {}

    def take(self, user_id: int | None, invite_id: int | None) -> None:
        """Count a join by this person against the join rate (``TooManyRequests`` past
        it)."""
        if len(self._joins) > JOIN_BUCKETS_MAX:  # forget those that have refilled
            self._joins = {k: b for k, b in self._joins.items() if not b.full()}
        per_min = self._limits.joins_per_min
        bucket = self._joins.setdefault(actor(user_id, invite_id),
                                        TokenBucket(per_min / 60, per_min, time.monotonic))
        if not bucket.take():
            raise TooManyRequests("You joined too often; wait a minute and try again.")

    async def check(self, room: Room, user_id: int | None, invite_id: int | None) -> None:
        """Refuse a new participant past the limits, and count its join."""
        members = room.members.values()
        if invite_id is not None and sum(
                m.invite_id == invite_id for m in members) >= self._limits.per_link:
            raise TooManyConnections()
        if user_id is not None and await self._store.calls.connections_of(
                user_id=user_id) >= self._limits.per_user:
            raise TooManyConnections()
        if len(room.members) >= self._limits.per_call:
            raise CallFull()
        self.take(user_id, invite_id)


def returning(room: Room, user_id: int | None, invite_id: int | None,
              session_version: int, resume: int | None) -> Member | None:
    """The participant whose place a join by this person takes: the one ``resume``
    names if it is theirs, else the one of theirs most recently away; None: a new
    participant. Theirs: joined by the same staff user (in the same session version:
    one signed out since is on its way out) or the same join link, and not leaving or
    replaced already."""
    def theirs(m: Member) -> bool:
        return (m.user_id == user_id and m.invite_id == invite_id
                and m.session_version == session_version
                and not m.replaced and not m.ending)

    named = None if resume is None else room.members.get(resume)
    if named is not None and theirs(named):
        return named
    away = [m for m in room.members.values() if m.away and theirs(m)]
    return max(away, key=lambda m: m.away_since or 0.0, default=None)
