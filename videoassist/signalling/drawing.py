"""Drawing on a participant's video: each shape relayed to the others and kept for
those who join later (``Room.shapes``), and a shape drawn ``pinned`` followed on the
video by the media plane (``media.pinning``), which tells everyone where it is in each
picture (``annotation.track``). Re-drawing a shape unpinned, removing it or clearing the
video unpins it. A pin the media plane cannot take (the participant sends no video, or
the call has as many pinned shapes as it may) leaves the shape where it was drawn:
everyone is told it is ``off``, and the drawer why."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from videoassist.errors import NotFound, TooManyRequests
from videoassist.signalling.media import MediaPlane
from videoassist.signalling.members import Member, Room

logger = logging.getLogger(__name__)


def annotate(media: MediaPlane, member: Member, room: Room, message: dict[str, Any]) -> None:
    """A checked ``annotation.*`` message from ``member``: relayed, kept, and pinned or
    unpinned."""
    kind, target = message["type"], message["target"]
    if target not in room.members:
        raise NotFound("'target' is not a participant of this call.")
    relayed = {"type": kind, "from": member.id,
               **{k: v for k, v in message.items() if k != "type"}}
    if kind == "annotation.pointer":
        room.broadcast(relayed, exclude=member)
        return
    room.shapes.apply(relayed)
    room.broadcast(relayed, exclude=member)
    if kind == "annotation.add":
        shape = message["shape"]
        if shape.get("pinned"):
            _pin(media, member, room, target, shape)
        else:
            media.unpin(target, shape["id"])
    elif kind == "annotation.remove":
        media.unpin(target, message["id"])
    else:  # annotation.clear
        media.unpin(target, None)


def _everyone(room: Room) -> Callable[[Callable[[int], dict[str, Any]]], None]:
    """Sends each member of the call the message made for it."""
    def deliver(message_for: Callable[[int], dict[str, Any]]) -> None:
        for member in list(room.members.values()):
            member.send(message_for(member.id))
    return deliver


def _pin(media: MediaPlane, member: Member, room: Room, target: int,
         shape: dict[str, Any]) -> None:
    try:
        media.pin(target, shape, member.id, shape.get("at"), _everyone(room))
    except (NotFound, TooManyRequests) as exc:
        logger.info("%s shape %s stays unpinned: %s", member.log_prefix, shape["id"],
                    exc.code)
        room.broadcast({"type": "annotation.track", "target": target, "rtp_timestamp": None,
                        "shapes": [{"id": shape["id"], "state": "off", "matrix": None}]})
        raise
