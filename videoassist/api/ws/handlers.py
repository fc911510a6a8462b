"""What each client message does once checked: one handler per type (``HANDLERS``), the
same types as ``protocol.CLIENT_TYPES``, whose checks a message has passed before its
handler sees it (tests/api/test_ws.py holds the two tables to the same types). The
rules are in ``videoassist.signalling`` (actions, modes, pictures) and the media plane;
a handler reads the message and calls them. What each does is tested through the real
server, in tests/signalling."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from videoassist.api.ws.replies import Replies
from videoassist.auth.ratelimit import TokenBucket
from videoassist.errors import BadRequest, Forbidden, NotFound, TooManyRequests, VideoassistError
from videoassist.signalling import actions, drawing, modes
from videoassist.signalling.hub import Hub
from videoassist.signalling.media import MediaPlane
from videoassist.signalling.members import CLOSE_NORMAL, Member, Room
from videoassist.signalling.pictures import Pictures
from videoassist.storage import Store


class Context(Protocol):
    """What a handler uses of the connection the message came on
    (``connection.Connection``)."""

    store: Store
    hub: Hub
    media: MediaPlane
    clock: Callable[[], float]
    offers: TokenBucket  # offers cost the event loop far more: a bucket of their own
    pictures: Pictures
    replies: Replies


Handler = Callable[[Context, Member, Room, dict[str, Any]], Awaitable[None]]


async def on_auth(c: Context, member: Member, room: Room, message: dict[str, Any]) -> None:
    raise BadRequest("Already authenticated.")


async def on_ping(c: Context, member: Member, room: Room, message: dict[str, Any]) -> None:
    member.send({"type": "pong"})


async def on_leave(c: Context, member: Member, room: Room, message: dict[str, Any]) -> None:
    member.close(CLOSE_NORMAL, "left")


async def on_call_end(c: Context, member: Member, room: Room, message: dict[str, Any]
                      ) -> None:
    await actions.end_call(c.store, c.hub, member, room)


async def on_chat(c: Context, member: Member, room: Room, message: dict[str, Any]) -> None:
    await actions.chat(c.store, member, room, message["text"], message["client_id"])


async def on_note(c: Context, member: Member, room: Room, message: dict[str, Any]) -> None:
    await actions.add_note(c.store, member, room, message["text"])


async def on_annotation(c: Context, member: Member, room: Room, message: dict[str, Any]
                        ) -> None:
    drawing.annotate(c.media, member, room, message)


async def on_offer(c: Context, member: Member, room: Room, message: dict[str, Any]) -> None:
    if not c.offers.take():
        wait = c.offers.wait_s()
        raise TooManyRequests(f"Too many offers; wait {wait:g} s.", retry_after=wait)
    answer = await c.media.offer(room.call_id, member.id, message["sdp"], member.send,
                                 restart=message["restart"])
    member.send({"type": "sdp.answer", "sdp": answer})


async def on_answer(c: Context, member: Member, room: Room, message: dict[str, Any]) -> None:
    await c.media.answer(member.id, message["sdp"])


async def on_candidate(c: Context, member: Member, room: Room, message: dict[str, Any]
                       ) -> None:
    await c.media.candidate(member.id, message)


async def on_remove(c: Context, member: Member, room: Room, message: dict[str, Any]) -> None:
    await actions.remove_participant(c.store, c.hub, member, room, message["target"])


async def on_mute(c: Context, member: Member, room: Room, message: dict[str, Any]) -> None:
    await c.media.mute(member.id, message["kind"], message["muted"])


async def on_mode(c: Context, member: Member, room: Room, message: dict[str, Any]) -> None:
    modes.set_mode(member, room, message, c.clock())


async def on_camera_control(c: Context, member: Member, room: Room, message: dict[str, Any]
                            ) -> None:
    if member.participant.role == "customer":
        raise Forbidden("Customers cannot control another participant's camera.")
    target = room.members.get(message["target"])
    if target is None or target is member:
        raise NotFound("'target' is not another participant of this call.")
    target.send({"type": message["type"], "from": member.id, "action": message["action"],
                 "value": message["value"]})


async def on_camera_state(c: Context, member: Member, room: Room, message: dict[str, Any]
                          ) -> None:
    relayed = {k: v for k, v in message.items() if k != "type"}
    room.broadcast({"type": message["type"], "from": member.id, **relayed}, exclude=member)


async def on_freeze(c: Context, member: Member, room: Room, message: dict[str, Any]) -> None:
    c.pictures.request_freeze(member, room, message["camera"])


async def on_freeze_end(c: Context, member: Member, room: Room, message: dict[str, Any]
                        ) -> None:
    await c.pictures.end_freeze(member, room)


async def on_snapshot(c: Context, member: Member, room: Room, message: dict[str, Any]
                      ) -> None:
    try:
        c.pictures.request_snapshot(member, room, message)
    except VideoassistError as exc:
        member.send(c.replies.snapshot_error(exc, message["request"]))


HANDLERS: dict[str, Handler] = {
    "auth": on_auth,
    "ping": on_ping,
    "leave": on_leave,
    "call.end": on_call_end,
    "chat.message": on_chat,
    "note.add": on_note,
    "sdp.offer": on_offer,
    "sdp.answer": on_answer,
    "ice.candidate": on_candidate,
    "annotation.add": on_annotation,
    "annotation.remove": on_annotation,
    "annotation.clear": on_annotation,
    "annotation.pointer": on_annotation,
    "media.mute": on_mute,
    "media.mode": on_mode,
    "camera.control": on_camera_control,
    "camera.state": on_camera_state,
    "snapshot.request": on_snapshot,
    "participant.remove": on_remove,
    "freeze": on_freeze,
    "freeze.end": on_freeze_end,
}
