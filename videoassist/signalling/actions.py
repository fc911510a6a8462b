"""What a participant does in a call, besides media and pictures: chat (stored once,
resends included), notes on the job's record, ending the call for everyone, and removing
someone who came by a join link. The ``/ws`` endpoint (``api/ws/``) hands each its
checked message; errors are raised for the endpoint to answer."""

from __future__ import annotations

import logging

from videoassist.domain import invitations
from videoassist.errors import Forbidden, NotFound
from videoassist.signalling.hub import Hub
from videoassist.signalling.members import Member, Room
from videoassist.storage import Store

logger = logging.getLogger(__name__)


async def chat(store: Store, member: Member, room: Room, text: str,
               client_id: str | None) -> None:
    """Store a chat line and send it to everyone. One the sender already sent with
    this ``client_id`` (a resend after a reconnection) is stored once: the sender
    alone gets it again, as stored."""
    if client_id is None:
        stored = await store.calls.add_message(
            member.job.id, room.call_id, member.id, member.participant.display_name,
            member.participant.role, text)
        room.broadcast({"type": "chat.message", "message": stored.public()})
        return
    key = (member.actor, client_id)
    async with room.sent_chat.lock:  # a resend racing its original is stored once
        known = room.sent_chat.get(key)
        if known is None:
            stored = await store.calls.add_message(
                member.job.id, room.call_id, member.id, member.participant.display_name,
                member.participant.role, text)
            known = {"type": "chat.message", "client_id": client_id,
                     "message": stored.public()}
            room.sent_chat.remember(key, known)
            room.broadcast(known)
            return
    logger.info("%s resent chat message %s: stored once", member.log_prefix,
                known["message"]["id"])
    member.send(known)

async def add_note(store: Store, member: Member, room: Room, text: str) -> None:
    """Anyone but a customer adds a note to the job's record; notes are staff-side,
    so customers are not told."""
    if member.participant.role == "customer":
        raise Forbidden("Customers cannot add notes to the job.")
    note = await store.jobs.add_note(member.job.id, member.user_id,
                                          member.participant.display_name, text)
    room.broadcast({"type": "note.added", "note": note.public()}, customers=False)

async def end_call(store: Store, hub: Hub, member: Member, room: Room) -> None:
    """Staff end the call for everyone in it, themselves included."""
    if member.user_id is None:
        raise Forbidden("Only staff can end the call for everyone.")
    closed = await hub.end_call(member.job.id, "call_ended",
                                     "The call has been ended.")
    await store.audit.record(member.actor, "call.ended",
                                  f"job:{member.job.id}", call=room.call_id,
                                  participant=member.id, connections=closed)
    logger.info("%s ended call %d for %d connections", member.log_prefix, room.call_id,
                closed)

async def remove_participant(store: Store, hub: Hub, member: Member, room: Room,
                             target_id: int) -> None:
    """Staff remove someone who came by a join link: the link is withdrawn, each of its
    connections is closed as removed and its participants away leave at once."""
    if member.user_id is None:
        raise Forbidden("Only staff can remove a participant.")
    target = room.members.get(target_id)
    if target is None or target is member:
        raise NotFound("'target' is not another participant of this call.")
    if target.invite_id is None:
        raise Forbidden("Only a participant who came by a join link can be removed "
                        "(staff accounts are disabled by an admin).")
    invite_id = target.invite_id
    # The same token on other sockets too. Marked before the link is withdrawn:
    # this node's watcher may see the withdrawal first, and closes them as removed.
    targets = [other for other in hub.members()
               if other.invite_id == invite_id and not other.closing]
    for other in targets:
        other.removing = True
    try:
        await invitations.remove_participant(store, invite_id, target.id,
                                             member.job.id, member.actor)
    except BaseException:
        for other in targets:
            other.removing = False
        raise
    for other in targets:
        if not other.closing:
            other.removed()
    # Its participants away (their connection lost) leave at once.
    await hub.remove_link_participants({invite_id})
