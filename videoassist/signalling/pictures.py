"""One connection's pictures (docs/protocol.md, Snapshots and Freeze): the snapshots it
asks for and the shared freeze, each taken off the message loop, at most one of each at
a time; and, in stills mode, a camera's newest still as its picture. The ``/ws``
endpoint (``api/ws/``) hands it the messages; what goes wrong is answered through the
endpoint's own error messages (``error``, ``snapshot_error``), the one place signalling
errors become messages."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

from videoassist.auth.ratelimit import TokenBucket
from videoassist.errors import (
    Conflict,
    Forbidden,
    NotFound,
    TooManyRequests,
    VideoassistError,
)
from videoassist.metrics import Metrics
from videoassist.signalling.freeze import Frozen
from videoassist.signalling.media import MediaPlane
from videoassist.signalling.members import Member, Room
from videoassist.snapshots.service import Picture, SnapshotService, Still

logger = logging.getLogger(__name__)

# Freezes a person may ask for at once, then how many a second (docs/protocol.md, Freeze).
FREEZE_BURST = 3
FREEZE_RATE_PER_S = 0.5

ErrorMessage = Callable[[VideoassistError, Any], dict[str, Any]]


class Pictures:
    """A connection's snapshots and freezes; ``settle`` once its socket has closed."""

    def __init__(self, snapshots: SnapshotService, media: MediaPlane, metrics: Metrics,
                 error: ErrorMessage, snapshot_error: ErrorMessage) -> None:
        self.snapshots = snapshots
        self.media = media
        self.metrics = metrics
        self._error = error
        self._snapshot_error = snapshot_error
        # At most one snapshot in flight per connection; it finishes even if the
        # requester leaves (the company keeps what was asked for), unless it had to
        # queue behind others' drawing and the requester left before its turn.
        self.snapshot_task: asyncio.Task[None] | None = None
        self.freeze_task: asyncio.Task[None] | None = None  # one freeze taken at a time
        self.gone = False  # the socket has closed: snapshot work still queued is dropped

    async def settle(self) -> None:
        """The socket closed: what is still being taken finishes (a freeze finds its
        asker gone, and shows nothing)."""
        self.gone = True
        for task in (self.freeze_task, self.snapshot_task):
            if task is not None:
                with contextlib.suppress(Exception):
                    await task

    def request_snapshot(self, member: Member, room: Room, message: dict[str, Any]) -> None:
        if member.participant.role == "customer":
            raise Forbidden("Customers cannot take snapshots.")
        camera = room.members.get(message["camera"])
        if camera is None:
            raise NotFound("'camera' is not a participant of this call.")
        if self.snapshot_task is not None and not self.snapshot_task.done():
            raise Conflict("A snapshot is already being taken; wait for it.")
        self.snapshot_task = asyncio.create_task(
            self._take_snapshot(member, room, camera, message["shapes"], message["request"]))

    async def _take_snapshot(self, member: Member, room: Room, camera: Member,
                             shapes: list[dict[str, Any]], request: str | None) -> None:
        started = time.monotonic()
        # Frozen, the camera's picture is the frame everyone is looking at; in stills
        # mode, its newest still.
        frozen = room.frozen
        picture: Still | Picture | None = (
            frozen.picture if frozen is not None and frozen.camera == camera.id
            else self.stills_picture(room, camera))
        try:
            snapshot = await self.snapshots.take(
                member.job.id, room.call_id, member.author(), camera.author(), shapes,
                member.actor, wanted=lambda: not self.gone, still=picture)
        except VideoassistError as exc:
            member.send(self._snapshot_error(exc, request))
            return
        except Exception:
            logger.exception("%s snapshot of participant %d failed", member.log_prefix,
                             camera.id)
            self.metrics.unhandled_errors.labels("snapshot").inc()
            member.send(self._snapshot_error(VideoassistError(), request))
            return
        self.metrics.snapshot_seconds.observe(time.monotonic() - started)
        echo = {} if request is None else {"request": request}
        room.broadcast({"type": "snapshot.saved", **echo, "snapshot": {
            "id": snapshot.id, "version": snapshot.version, "camera": camera.id,
            "author": member.id, "captured_at": snapshot.captured_at,
            "width": snapshot.width, "height": snapshot.height, "shapes": len(shapes),
            "sha256": snapshot.sha256}})

    def stills_picture(self, room: Room, camera: Member) -> Still | None:
        """In stills mode the video is stale: the camera's newest still is its picture
        (a muted camera is refused as ever, by the capture)."""
        mode, still = room.modes.get(camera.id), room.stills.get(camera.id)
        if (mode is not None and mode["mode"] == "stills" and still is not None
                and not self.media.muted(camera.id, "video")):
            return Still(still.jpeg, still.at)
        return None

    def request_freeze(self, member: Member, room: Room, camera_id: int) -> None:
        """Start taking the camera's picture for everyone (``_freeze``). Each costs a
        decode and a JPEG, and the JPEG goes to everyone in the call: a person gets
        ``FREEZE_BURST`` at once, then one each ``1 / FREEZE_RATE_PER_S`` seconds, on
        all their connections together."""
        if member.participant.role == "customer":
            raise Forbidden("Customers cannot freeze the picture.")
        camera = room.members.get(camera_id)
        if camera is None:
            raise NotFound("'camera' is not a participant of this call.")
        if self.freeze_task is not None and not self.freeze_task.done():
            raise Conflict("The picture is being frozen already; wait for it.")
        bucket = room.budgets.setdefault(
            (member.actor, "freeze"), TokenBucket(FREEZE_RATE_PER_S, FREEZE_BURST,
                                                  time.monotonic))
        if not bucket.take():
            wait = bucket.wait_s()
            raise TooManyRequests(f"Too many freezes; wait {wait:g} s.", retry_after=wait)
        room.freezes += 1
        self.freeze_task = asyncio.create_task(
            self._freeze(member, room, camera.id, room.freezes))

    async def _freeze(self, member: Member, room: Room, camera_id: int, ask: int) -> None:
        """Take the camera's picture once and show it to everyone, unless it is no
        longer wanted by then: asked again or resumed meanwhile (``room.freezes`` moved
        on from ``ask``), the camera's owner gone, or the asker's connection closed."""
        camera = room.members.get(camera_id)
        try:
            if camera is None:
                raise NotFound("That camera left the call.")
            picture = await self.snapshots.picture(camera_id,
                                                   self.stills_picture(room, camera))
        except VideoassistError as exc:
            member.send(self._error(exc, "freeze"))
            return
        except Exception:
            logger.exception("%s freezing participant %d's camera failed", member.log_prefix,
                             camera_id)
            self.metrics.unhandled_errors.labels("freeze").inc()
            member.send(self._error(VideoassistError(), "freeze"))
            return
        if room.freezes != ask or self.gone:
            return  # a later freeze, or a resume, or nobody left to have asked
        if camera_id not in room.members:  # by id: a phone that came back is the same
            member.send(self._error(NotFound("That camera left the call."), "freeze"))
            return
        room.frozen = Frozen(camera_id, member.id, picture)
        logger.info("%s froze participant %d's camera (%dx%d, %d bytes)", member.log_prefix,
                    camera_id, picture.width, picture.height, len(picture.jpeg))
        room.broadcast(room.frozen.message())

    async def end_freeze(self, member: Member, room: Room) -> None:
        """Resume the live picture for everyone; a freeze still being taken, by anyone,
        will show nothing. One of this connection's own is waited for, so that what
        its client sent next is answered after it."""
        if member.participant.role == "customer":
            raise Forbidden("Customers cannot resume the picture.")
        room.freezes += 1
        if self.freeze_task is not None and not self.freeze_task.done():
            with contextlib.suppress(Exception):
                await asyncio.shield(self.freeze_task)
        if room.frozen is None:
            return  # resumed already, by someone else: nothing to say
        message = room.frozen.ended(member.id)
        room.frozen = None
        room.broadcast(message)
