"""One signalling connection once upgraded: its way in (``handshake.Handshake``), then
its messages. Every message is rate limited, size checked, parsed, and checked against
the sender's right to be in the call (``signalling.admission.may_stay``) before its
handler (``handlers.HANDLERS``) acts. Errors in a message are answered with an
``error`` message (``replies``); the connection lives on."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from aiohttp import WSMsgType, web

from videoassist.api.ws.handlers import HANDLERS
from videoassist.api.ws.handshake import Handshake
from videoassist.api.ws.replies import Replies
from videoassist.appkeys import CLOCK, HUB, MEDIA, METRICS, SETTINGS, SNAPSHOTS, STORE
from videoassist.auth.ratelimit import TokenBucket
from videoassist.errors import TooManyRequests, VideoassistError
from videoassist.signalling import modes, protocol, stills
from videoassist.signalling.admission import may_stay
from videoassist.signalling.members import Member, Room
from videoassist.signalling.pictures import Pictures

logger = logging.getLogger(__name__)


class Connection:
    def __init__(self, app: web.Application, request: web.Request, ws: web.WebSocketResponse,
                 client: str, *, carried: bool = False) -> None:
        """``carried``: another node carries this client's connection here."""
        self.transport = request.transport
        self.ws = ws
        self.settings = app[SETTINGS]
        self.store = app[STORE]
        self.hub = app[HUB]
        self.media = app[MEDIA]
        self.clock = app[CLOCK]
        self.metrics = app[METRICS]
        self.replies = Replies(self.metrics)
        self.bucket = TokenBucket(
            self.settings.ws_rate_per_s, self.settings.ws_rate_burst, time.monotonic
        )
        self.last_limit_notice = 0.0
        # Offers cost the event loop far more than other messages: a bucket of their own.
        self.offers = TokenBucket(
            self.settings.sdp_offer_rate_per_s, self.settings.sdp_offer_burst, time.monotonic
        )
        self.handshake = Handshake(app, ws, client, self.bucket, self.replies,
                                   carried=carried)
        self.member: Member | None = None
        self.room: Room | None = None
        # Snapshots and freezes, taken off the message loop.
        self.pictures = Pictures(app[SNAPSHOTS], self.media, self.metrics,
                                 self.replies.error, self.replies.snapshot_error)
        self.failed = False  # an error it did not handle ended it

    @property
    def close_reason(self) -> str:
        """Why the connection ended: the reason the server gave, or "client"."""
        if self.handshake.refused is not None:
            return self.handshake.refused
        if self.failed:
            return "internal"
        if self.member is not None and self.member.close_reason is not None:
            return self.member.close_reason
        return "client"

    async def run(self) -> None:
        joined = await self.handshake.run()
        if joined is None:
            return
        member, room = self.member, self.room = joined.member, joined.room
        member.writer = asyncio.create_task(member.write_loop())
        member.abort = self._abort
        member.withdraw_media = lambda: self.media.withdraw(member.id)
        member.end_media = lambda: self.media.leave(member.id)
        modes.tell(member, room)
        if room.frozen is not None:
            member.send(room.frozen.message())
        try:
            async for msg in self.ws:
                if msg.type == WSMsgType.TEXT:
                    await self._on_text(member, room, msg.data)
                elif msg.type == WSMsgType.BINARY and self._within_rate(member):
                    await self._on_still(member, room, msg.data)
                if member.closing:
                    break
            if self.ws.exception() is not None:
                logger.info("%s socket error: %s", member.log_prefix, self.ws.exception())
        finally:
            self.pictures.gone = True  # before the hub hears of it: queued work is dropped
            # The participant leaves, or (its connection lost) is away for a while, or
            # (replaced) goes on with another connection: see ``Hub.gone``.
            await self.hub.gone(member)
            await self.pictures.settle()
            if member.closer is None:  # else the closer stops the writer
                member.closing = True
                member.writer.cancel()
            if member.closer is not None:
                with contextlib.suppress(Exception):
                    await member.closer
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await member.writer

    def _abort(self) -> None:
        if self.transport is not None:
            self.transport.close()

    # -- the checks every message passes ---------------------------------------

    def _within_rate(self, member: Member) -> bool:
        if self.bucket.take():
            return True
        self._notice(member, TooManyRequests("Too many messages; slow down."))
        return False

    def _within_budget(self, member: Member, room: Room, kind: str, size: int) -> bool:
        """Take ``size`` bytes from the sender's budget of chat or annotation bytes (a
        minute's worth at most, refilled evenly); past it the message is dropped, with
        one notice a second."""
        per_min = {"chat": self.settings.chat_bytes_per_min,
                   "annotation": self.settings.annotation_bytes_per_min}[kind]
        bucket = room.budgets.setdefault(
            (member.actor, kind), TokenBucket(per_min / 60, per_min, time.monotonic))
        if bucket.take(size):
            return True
        self._notice(member, TooManyRequests(
            f"Too much {kind} from you in the last minute; wait a moment."),
            "chat.message" if kind == "chat" else None)
        return False

    def _notice(self, member: Member, exc: VideoassistError, ref: str | None = None) -> None:
        """Tell the sender it is over a limit: one notice a second, not one a message."""
        now = time.monotonic()
        if now - self.last_limit_notice >= 1.0:
            self.last_limit_notice = now
            member.send(self.replies.error(exc, ref))

    async def _may_stay(self, member: Member) -> bool:
        return await may_stay(member, self.store, watched=self.hub.watch.current, now=self.clock())

    # -- messages --------------------------------------------------------------

    async def _on_text(self, member: Member, room: Room, raw: str) -> None:
        if not self._within_rate(member):
            return
        ref: object = None
        try:
            message = protocol.decode(raw, self.settings.ws_max_message_bytes)
            ref = message["type"]
            if not await self._may_stay(member):
                return
            kind = ("chat" if ref == "chat.message"
                    else "annotation" if message["type"].startswith("annotation.") else None)
            if kind is not None and not self._within_budget(member, room, kind,
                                                            len(raw.encode())):
                return
            await HANDLERS[message["type"]](self, member, room, message)
        except VideoassistError as exc:
            if ref is None and isinstance(exc, protocol.BadMessage):
                ref = exc.ref
            member.send(self.replies.error(exc, ref))
        except Exception:
            logger.exception("%s failed to handle a %s message", member.log_prefix, ref)
            self.metrics.unhandled_errors.labels("websocket").inc()
            member.send(self.replies.error(VideoassistError(), ref))

    async def _on_still(self, member: Member, room: Room, frame: bytes) -> None:
        """A camera still (a binary frame, ``signalling.stills``): checked here, then
        relayed and acknowledged (``modes.relay_still``); an error names its seq."""
        seq: int | None = None
        try:
            head = stills.header(frame)
            seq = head.seq  # from here on, an error names the still it answers
            sent = stills.read(frame, head, self.settings.still_max_bytes)
            if not await self._may_stay(member):
                return
            modes.relay_still(room, member, sent, self.settings.still_min_interval_s,
                              camera_muted=self.media.muted(member.id, "video"),
                              at=self.clock())
        except VideoassistError as exc:
            error = self.replies.error(exc, "still")
            if seq is not None:
                error["seq"] = seq
            member.send(error)
