"""Degrading, in a call (docs/protocol.md, Degrading and Stills): each publisher's media
mode as it says it (``media.mode``), and the stills a publisher in stills mode sends
instead of video, kept as its newest and relayed to everyone else. Those who join or
come back are told both."""

from __future__ import annotations

import logging
import math
import time
from typing import Any

from videoassist.errors import Conflict, TooManyRequests
from videoassist.signalling import stills
from videoassist.signalling.members import Member, Room

logger = logging.getLogger(__name__)


def relay_still(room: Room, member: Member, sent: stills.Sent, interval: float, *,
                camera_muted: bool, at: float) -> None:
    """A checked still (``stills.read``): kept as the sender's newest, relayed to
    everyone else, and acknowledged (``still.relayed``) to the sender, whose next still
    waits for it and then ``next_in_s``: how long until the sender may send one more
    (``stills.Latest``; 0 while it has one of its STILLS_AT_ONCE left, counted from
    before the acknowledgement leaves: a client that waits that long after it arrives
    is never refused). Conflict for a muted camera, TooManyRequests for one too soon;
    ``at``: the wall clock's time, which the still is stamped with."""
    if camera_muted:
        raise Conflict("Your camera is muted: unmute it before sending stills.")
    now = time.monotonic()
    wait = room.stills.wait_s(member.id, now, interval)
    if wait > 0:
        raise TooManyRequests(f"Stills come at most {stills.STILLS_AT_ONCE} at once "
                              f"and one every {interval:g} s on average; wait "
                              f"{wait:.2f} s.", retry_after=wait)
    still = stills.Still(member.id, sent.seq, sent.width, sent.height, at, sent.jpeg)
    room.stills.keep(still, now, interval)
    relayed = {"type": "still", "from": member.id, "frame": still.frame()}
    viewers = 0
    for other in list(room.members.values()):
        if other is not member and other.send(relayed):
            viewers += 1
    member.send({"type": "still.relayed", "seq": sent.seq, "viewers": viewers,
                 # in ms, rounded up: waiting that long is never too soon
                 "next_in_s": math.ceil(
                     room.stills.wait_s(member.id, now, interval) * 1000) / 1000})


def set_mode(member: Member, room: Room, message: dict[str, Any], at: float) -> None:
    """A publisher says which media mode it is in, and why: kept for those who join
    later, relayed to everyone else; ``since`` is ``at`` unless the mode is the same as
    before, for a new reason."""
    relayed = {"type": "media.mode", "participant": member.id,
               **{k: v for k, v in message.items() if k != "type"},
               "since": at}
    previous = room.modes.get(member.id)
    if previous is not None and previous["mode"] == relayed["mode"]:
        relayed["since"] = previous["since"]  # the same mode, for a new reason
    room.modes[member.id] = relayed
    logger.info("%s media mode %s (%s, %s kbit/s, loss %s)", member.log_prefix,
                relayed["mode"], relayed["reason"], relayed["kbps"], relayed["loss"])
    room.broadcast(relayed, exclude=member)


def tell(member: Member, room: Room) -> None:
    """To one who joins or comes back: each other publisher's media mode, and the
    newest still of those in stills mode."""
    for participant_id, mode in list(room.modes.items()):
        if participant_id == member.id:
            continue
        member.send(mode)
        still = room.stills.get(participant_id)
        if mode["mode"] == "stills" and still is not None:
            member.send({"type": "still", "from": participant_id, "frame": still.frame()})
