"""One look at the database for who may no longer be in this node's calls, whoever
changed it (the API, the CLI, another node): the calls of jobs closed end, the
connections of users disabled or signed out close, the participants of links withdrawn
are removed, and the calls another node ended (taking this one for dead) close here.
The hub's watcher looks (``watch.Watch``); each node looks at its own calls only."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Protocol

from videoassist.domain import jobs
from videoassist.signalling.members import CALL_LOST, CLOSE_CALL_LOST, Member, Room
from videoassist.storage import Store

logger = logging.getLogger(__name__)


class Calls(Protocol):
    """What a look acts on: this node's calls (the hub)."""

    @property
    def rooms(self) -> dict[int, Room]: ...

    def members(self) -> list[Member]: ...

    async def end(self, member: Member) -> None: ...

    async def end_call(self, job_id: int, reason: str, message: str) -> int: ...

    async def close_or_end(self, members: list[Member],
                           close: Callable[[Member], None]) -> int: ...

    async def remove_link_participants(self, invite_ids: set[int]) -> int: ...


async def look(calls: Calls, store: Store) -> None:
    for job_id in await store.jobs.closed_among(set(calls.rooms)):
        await jobs.end_call(calls, job_id)
    await _disconnect_signed_out(calls, store)
    await _remove_withdrawn_links(calls, store)
    await _close_ended_elsewhere(calls, store)


async def _disconnect_signed_out(calls: Calls, store: Store) -> None:
    """Close the connections of users disabled, or signed out by a role change or a
    password reset, since they joined; those away leave at once."""
    staff = [m for m in calls.members() if m.user_id is not None
             and (m.away or not m.closing) and not m.ending]
    if not staff:
        return
    versions = await store.users.session_versions({m.user_id for m in staff
                                                  if m.user_id is not None})
    for member in staff:
        if not member.away:
            member.sign_out_if_stale(versions.get(member.user_id or 0))
        elif versions.get(member.user_id or 0) != member.session_version:
            await calls.end(member)


async def _remove_withdrawn_links(calls: Calls, store: Store) -> None:
    """Close the participants whose join link was withdrawn since they joined."""
    invite_ids = {m.invite_id for m in calls.members()
                  if m.invite_id is not None and (m.away or not m.closing)
                  and not m.ending}
    if invite_ids:
        await calls.remove_link_participants(await store.invites.withdrawn_among(invite_ids))


async def _close_ended_elsewhere(calls: Calls, store: Store) -> None:
    rooms = {room.call_id: room for room in calls.rooms.values()}
    for call_id in await store.calls.ended_among(set(rooms)):
        room = rooms[call_id]
        logger.warning("[job %d] call %d was ended by another node: closing it here",
                       room.job.id, call_id)
        await calls.close_or_end(list(room.members.values()),
                                 lambda m: m.close(CLOSE_CALL_LOST, "call_lost", CALL_LOST))
