"""``GET /ws``: one signalling connection, from handshake to leave.

The handshake is refused (403) unless the Origin is allowed. The first message
must be ``auth`` within ``ws_auth_timeout_s``. After that every message is rate
limited, size checked, parsed, and checked against the sender's right to be in the
call (account still active, link not revoked, token not expired) before it acts:
against what the hub's watcher last read, while that stands for the database
(``Hub.current``), else read from the database.
Errors in a message are answered with an ``error`` message; the connection lives on.
This module is the one place signalling errors become ``error`` messages.

A connection whose call another node holds is carried there
(``videoassist.cluster.proxy``) once its ``auth`` has been read: that node, reached on
its internal address, runs the same ``Connection`` for it (``internal_websocket``),
with the client's address passed along and the Origin already checked here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import WSMsgType, web

from videoassist.api.guard import client_address
from videoassist.appkeys import (
    CLOCK,
    DRAINING,
    HUB,
    ICE,
    MEDIA,
    METRICS,
    PROXIES,
    SETTINGS,
    SNAPSHOTS,
    STORE,
    TOKENS,
)
from videoassist.auth.ratelimit import TokenBucket
from videoassist.auth.tokens import PARTICIPANT_AUDIENCE, STAFF_AUDIENCE
from videoassist.cluster.node import CLIENT_HEADER
from videoassist.cluster.proxy import CALL_LOST, CALL_LOST_MESSAGE, CLOSE_MOVED, Closed
from videoassist.domain import accounts
from videoassist.errors import (
    BadRequest,
    Draining,
    Forbidden,
    NotFound,
    TooManyRequests,
    Unauthorized,
    VideoassistError,
)
from videoassist.signalling import actions, modes, protocol, stills
from videoassist.signalling.hub import Elsewhere
from videoassist.signalling.members import (
    CLOSE_AUTH_REQUIRED,
    CLOSE_AUTH_TIMEOUT,
    CLOSE_CALL_LOST,
    CLOSE_FORBIDDEN,
    CLOSE_NORMAL,
    CLOSE_TOO_MANY,
    CLOSE_TRY_AGAIN_LATER,
    CLOSE_UNAUTHORIZED,
    LINK_REVOKED,
    Member,
    Room,
)
from videoassist.signalling.pictures import Pictures
from videoassist.storage.records import Job

logger = logging.getLogger(__name__)

# Frames above this are refused by aiohttp itself (close 1009); frames between the
# configured message limit and this get an error message and the connection lives.
HARD_FRAME_LIMIT = 1024 * 1024
ROLE_NAMES = {"customer": "Customer", "technician": "Technician"}
# Placements tried for one auth: a call can end and be placed again on another node
# while the connection is on its way to it; more than this is a node gone astray.
MAX_PLACEMENTS = 3


async def websocket(request: web.Request) -> web.StreamResponse:
    settings = request.app[SETTINGS]
    # Whole and exact: a browser sends the origin serialized (RFC 6454), as configured.
    origin = request.headers.get("Origin", "")
    if origin not in settings.allowed_origins:
        logger.warning("refused a WebSocket from origin %r", origin[:100])
        raise Forbidden("This origin may not open the signalling socket.")
    ws = web.WebSocketResponse(
        heartbeat=settings.ws_heartbeat_s, max_msg_size=HARD_FRAME_LIMIT
    )
    await ws.prepare(request)
    metrics = request.app[METRICS]
    metrics.websocket_opened.inc()
    metrics.websocket_connections.inc()
    connection = Connection(request.app, request, ws, client_address(request))
    try:
        await _run(connection)
    finally:
        metrics.websocket_connections.dec()
        metrics.websocket_closes.labels(connection.close_reason).inc()
    return ws


async def internal_websocket(app: web.Application, request: web.Request) -> web.StreamResponse:
    """A client's connection that another node carries here, on this node's internal
    address (behind the node secret). The client is counted in the metrics of the node
    it connected to, not here."""
    ws = web.WebSocketResponse(
        heartbeat=app[SETTINGS].ws_heartbeat_s, max_msg_size=HARD_FRAME_LIMIT
    )
    await ws.prepare(request)
    client = request.headers.get(CLIENT_HEADER, "")[:64] or "unknown"
    await _run(Connection(app, request, ws, client, carried=True))
    return ws


async def _run(connection: Connection) -> None:
    """Serve the connection; an error it did not handle is logged and closes the socket
    (1011): once upgraded, no HTTP error may be written on it."""
    try:
        await connection.run()
    except ConnectionError as exc:  # the client went away mid-write: nothing to fix
        logger.info("a WebSocket connection was lost: %s", exc)
    except Exception:
        logger.exception("a WebSocket connection failed")
        connection.metrics.unhandled_errors.labels("websocket").inc()
        connection.refused = connection.refused or "internal"
        with contextlib.suppress(Exception):
            await connection.ws.close(code=CLOSE_CALL_LOST, message=b"internal")


def _error_message(exc: VideoassistError, ref: object = None) -> dict[str, Any]:
    message: dict[str, Any] = {"type": "error", "code": exc.code, "message": exc.message}
    if isinstance(ref, str):
        message["ref"] = ref[:40]
    return message


def _snapshot_error_message(exc: VideoassistError, request: str | None) -> dict[str, Any]:
    """An error about a snapshot, naming the client's request id when it gave one."""
    message = _error_message(exc, "snapshot.request")
    if request is not None:
        message["request"] = request
    return message


class Connection:
    def __init__(self, app: web.Application, request: web.Request, ws: web.WebSocketResponse,
                 client: str, *, carried: bool = False) -> None:
        """``carried``: another node carries this client's connection here."""
        self.app = app
        self.transport = request.transport
        self.ws = ws
        self.client = client
        self.carried = carried
        self.settings = app[SETTINGS]
        self.store = app[STORE]
        self.hub = app[HUB]
        self.media = app[MEDIA]
        self.clock = app[CLOCK]
        self.bucket = TokenBucket(
            self.settings.ws_rate_per_s, self.settings.ws_rate_burst, time.monotonic
        )
        self.last_limit_notice = 0.0
        # Offers cost the event loop far more than other messages: a bucket of their own.
        self.offers = TokenBucket(
            self.settings.sdp_offer_rate_per_s, self.settings.sdp_offer_burst, time.monotonic
        )
        self.snapshots = app[SNAPSHOTS]
        self.metrics = app[METRICS]
        self.member: Member | None = None
        self.refused: str | None = None  # the reason the server refused the auth
        self.room: Room | None = None
        # Snapshots and freezes, taken off the message loop.
        self.pictures = Pictures(self.snapshots, self.media, self.metrics, self._error,
                                 self._snapshot_error)

    @property
    def close_reason(self) -> str:
        """Why the connection ended: the reason the server gave, or "client"."""
        if self.refused is not None:
            return self.refused
        if self.member is not None and self.member.close_reason is not None:
            return self.member.close_reason
        return "client"

    def _error(self, exc: VideoassistError, ref: object = None) -> dict[str, Any]:
        """An ``error`` message for the client, counted."""
        self.metrics.websocket_errors.labels(exc.code).inc()
        return _error_message(exc, ref)

    def _snapshot_error(self, exc: VideoassistError, request: str | None) -> dict[str, Any]:
        self.metrics.websocket_errors.labels(exc.code).inc()
        return _snapshot_error_message(exc, request)

    async def run(self) -> None:
        member = await self._authenticate()
        if member is None:
            return
        self.member = member
        member.writer = asyncio.create_task(member.write_loop())
        member.abort = self._abort
        member.withdraw_media = self._withdraw_media
        member.end_media = self._end_media
        assert self.room is not None
        modes.tell(member, self.room)
        if self.room.frozen is not None:
            member.send(self.room.frozen.message())
        try:
            async for msg in self.ws:
                if msg.type == WSMsgType.TEXT:
                    await self._on_text(member, msg.data)
                elif msg.type == WSMsgType.BINARY and self._within_rate(member):
                    await self._on_still(member, msg.data)
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

    # -- authentication --------------------------------------------------------

    async def _authenticate(self) -> Member | None:
        deadline = asyncio.get_running_loop().time() + self.settings.ws_auth_timeout_s
        bad = 0  # messages before auth that were not a good auth
        limited = False  # the one rate_limited notice before auth was sent
        while True:
            try:
                async with asyncio.timeout_at(deadline):
                    msg = await self.ws.receive()
            except TimeoutError:
                await self._refuse(CLOSE_AUTH_TIMEOUT, "auth_timeout",
                                   "Send an auth message first.")
                return None
            if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED,
                            WSMsgType.ERROR):
                return None
            message, error = self._read_auth(msg)
            if error is not None:
                # Anything but a good auth is one of the few bad messages allowed, and
                # takes from the same token bucket as messages in a call.
                bad += 1
                if bad > self.settings.ws_preauth_max_messages:
                    await self._refuse(CLOSE_AUTH_REQUIRED, "auth_required",
                                       "Too many messages before auth.")
                    return None
                if self.bucket.take():
                    await self.ws.send_json(self._error(error, message))
                elif not limited:
                    limited = True
                    await self.ws.send_json(
                        self._error(TooManyRequests("Too many messages; slow down.")))
                continue
            try:
                return await self._join_or_carry(message, msg.data)
            except Draining as exc:
                logger.info("refused a join: the server is draining")
                await self._refuse(CLOSE_TRY_AGAIN_LATER, exc.code, exc.message)
                return None
            except (Unauthorized, Forbidden, NotFound) as exc:
                code = CLOSE_FORBIDDEN if isinstance(exc, Forbidden) else CLOSE_UNAUTHORIZED
                await self._refuse(code, exc.code, exc.message)
                return None
            except TooManyRequests as exc:  # too many connections, or the call is full
                logger.info("[job %s] refused a join: %s", message["job"], exc.code)
                await self._refuse(CLOSE_TOO_MANY, exc.code, exc.message)
                return None
            except Exception:
                # The socket is upgraded: no HTTP error may be written on it any more.
                logger.exception("[job %s] failed to let a connection in", message["job"])
                self.metrics.unhandled_errors.labels("websocket").inc()
                await self._refuse(CLOSE_CALL_LOST, "internal",
                                   "The server failed to let you in. Try again.")
                return None

    def _read_auth(self, msg: Any) -> tuple[Any, VideoassistError | None]:
        """A message before auth: (the auth message, None), or (its type if it has
        one, the error that answers it)."""
        if msg.type != WSMsgType.TEXT:
            return None, BadRequest("Send an auth message first.")
        try:
            message = protocol.decode(msg.data, self.settings.ws_max_message_bytes)
        except VideoassistError as exc:
            return None, exc
        if message["type"] != "auth":
            return message["type"], Unauthorized("Send an auth message first.")
        return message, None

    async def _join_or_carry(self, message: dict[str, Any], auth: str) -> Member | None:
        """Join the call here, or carry the connection to the node that holds it (then
        None, once the carrying is over)."""
        job_id = message["job"]
        for _ in range(MAX_PLACEMENTS):
            try:
                return await self._join(message)
            except Elsewhere as elsewhere:
                placement = elsewhere.placement
            if self.carried:  # never carried twice: the carrier places again
                await self._refuse(CLOSE_MOVED, "moved", None)
                return None
            logger.info("[job %s] carried to node %d, which holds call %d", job_id,
                        placement.node_id, placement.call_id)
            result = await self.app[PROXIES].pipe(
                self.ws, placement.address, placement.call_id, auth, self.client,
                f"[job {job_id} call {placement.call_id}]")
            if isinstance(result, Closed):
                self.refused = result.reason
                return None
        logger.warning("[job %s] placed %d times without reaching the call", job_id,
                       MAX_PLACEMENTS)
        await self._refuse(CLOSE_CALL_LOST, CALL_LOST, CALL_LOST_MESSAGE)
        return None

    async def _join(self, message: dict[str, Any]) -> Member:
        token, job_id = message["token"], message["job"]
        tokens = self.app[TOKENS]
        audience = tokens.audience_of(token)
        if audience == STAFF_AUDIENCE:
            staff = tokens.verify_staff(token)
            user = await accounts.staff_user_for(self.store, staff)
            if job_id is None:
                raise Unauthorized("Staff name the job to join: {\"job\": ID}.")
            job = await self.store.jobs.get(job_id)
            role, name, user_id, invite_id = user.role, user.name, user.id, None
            expires_at, session_version = staff.expires_at, staff.session_version
        elif audience == PARTICIPANT_AUDIENCE:
            claims = tokens.verify_participant(token)
            if job_id is not None and job_id != claims.job_id:
                raise Forbidden("This link is for another job.")
            invite = await self.store.invites.get(claims.invite_id)
            # The invite must still be this job's join link: ids of erased rows may be
            # given again (jobs' never are, see storage/migrations/0004).
            if (invite is None or invite.revoked_at is not None or invite.purpose != "join"
                    or invite.job_id != claims.job_id):
                raise Unauthorized(LINK_REVOKED)
            job = await self.store.jobs.get(claims.job_id)
            role, name = claims.role, invite.name or ROLE_NAMES[claims.role]
            user_id, invite_id = None, invite.id
            expires_at, session_version = claims.expires_at, 0
        else:
            raise Unauthorized()
        if job.status != "open":
            raise Forbidden("This job is closed.")
        member, room = await self.hub.join(job, role, name, user_id, invite_id, expires_at,
                                           self.ws, session_version,
                                           draining=self.app[DRAINING][0],
                                           spread=not self.carried, resume=message["resume"])
        self.room = room
        try:
            await self._welcome(member, room, job, message["chat_after"] or 0)
        except BaseException:
            # In the call but never told so (its socket died as it was let in, say):
            # the participant is away, as for any connection lost, not left present
            # with nothing serving it.
            await self.hub.gone(member)
            raise
        return member

    async def _welcome(self, member: Member, room: Room, job: Job, chat_after: int) -> None:
        """Tell a member just let in where it is: ``joined``."""
        if member.resumed:  # its media session, if it kept one, talks to this socket now
            self.media.rebind(member.id, member.send)
        # What the call holds now: who is in it, the shapes on their videos, and the
        # chat since what the client says it has (all of this call's, without it).
        chat = await self.store.calls.messages_of_call(
            room.call_id, chat_after, protocol.MAX_CHAT_HISTORY)
        await self.ws.send_json({
            "type": "joined",
            "protocol": protocol.PROTOCOL_VERSION,
            "job": {"id": job.id, "title": job.title},
            "call": {"id": room.call_id, "started_at": room.started_at},
            "you": member.participant.public(),
            "resumed": member.resumed,
            "participants": [m.public() for m in room.members.values() if m is not member],
            "annotations": room.shapes.current(),
            "chat": [m.public() for m in chat],
            **self.app[ICE].for_client(member.id, member.participant.role),
        })

    def _withdraw_media(self) -> None:
        """Stop all forwarding from and to this participant at once (it is leaving)."""
        assert self.member is not None
        self.media.withdraw(self.member.id)

    async def _end_media(self) -> None:
        """Close this participant's media session (it leaves the call for good)."""
        assert self.member is not None
        await self.media.leave(self.member.id)

    def _abort(self) -> None:
        if self.transport is not None:
            self.transport.close()

    async def _refuse(self, code: int, reason: str, message: str | None) -> None:
        """Close the connection before it joined, saying why (``message`` None: to the
        node that carried it here, which needs no words)."""
        self.refused = reason
        if message is not None:
            self.metrics.websocket_errors.labels(reason).inc()
        with contextlib.suppress(ConnectionError, RuntimeError):
            if message is not None:
                await self.ws.send_json({"type": "error", "code": reason, "message": message})
            await self.ws.close(code=code, message=reason.encode())

    # -- stills and media modes ------------------------------------------------

    async def _on_still(self, member: Member, frame: bytes) -> None:
        """A camera still (a binary frame, ``signalling.stills``): checked here, then
        relayed and acknowledged (``modes.relay_still``); an error names its seq."""
        room = self.room
        assert room is not None
        seq: int | None = None
        try:
            head = stills.header(frame)
            seq = head.seq  # from here on, an error names the still it answers
            sent = stills.read(frame, head, self.settings.still_max_bytes)
            if not await self._still_allowed(member):
                return
            modes.relay_still(room, member, sent, self.settings.still_min_interval_s,
                              camera_muted=self.media.muted(member.id, "video"),
                              at=self.clock())
        except VideoassistError as exc:
            error = self._error(exc, "still")
            if seq is not None:
                error["seq"] = seq
            member.send(error)

    # -- messages --------------------------------------------------------------

    def _within_rate(self, member: Member) -> bool:
        if self.bucket.take():
            return True
        now = time.monotonic()
        if now - self.last_limit_notice >= 1.0:  # one notice a second, not one a message
            self.last_limit_notice = now
            member.send(self._error(TooManyRequests("Too many messages; slow down.")))
        return False

    def _within_budget(self, member: Member, kind: str, size: int) -> bool:
        """Take ``size`` bytes from the sender's budget of chat or annotation bytes (a
        minute's worth at most, refilled evenly); past it the message is dropped, with
        one notice a second."""
        per_min = {"chat": self.settings.chat_bytes_per_min,
                   "annotation": self.settings.annotation_bytes_per_min}[kind]
        assert self.room is not None
        bucket = self.room.budgets.setdefault(
            (member.actor, kind), TokenBucket(per_min / 60, per_min, time.monotonic))
        if bucket.take(size):
            return True
        now = time.monotonic()
        if now - self.last_limit_notice >= 1.0:
            self.last_limit_notice = now
            member.send(self._error(TooManyRequests(
                f"Too much {kind} from you in the last minute; wait a moment."),
                f"{kind}.message" if kind == "chat" else None))
        return False

    async def _on_text(self, member: Member, raw: str) -> None:
        if not self._within_rate(member):
            return
        ref: object = None
        try:
            message = protocol.decode(raw, self.settings.ws_max_message_bytes)
            ref = message["type"]
            if not await self._still_allowed(member):
                return
            kind = ("chat" if ref == "chat.message"
                    else "annotation" if message["type"].startswith("annotation.") else None)
            if kind is not None and not self._within_budget(member, kind,
                                                            len(raw.encode())):
                return
            await self._dispatch(member, message)
        except VideoassistError as exc:
            if ref is None and isinstance(exc, protocol.BadMessage):
                ref = exc.ref
            member.send(self._error(exc, ref))
        except Exception:
            logger.exception("%s failed to handle a %s message", member.log_prefix, ref)
            self.metrics.unhandled_errors.labels("websocket").inc()
            member.send(self._error(VideoassistError(), ref))

    async def _still_allowed(self, member: Member) -> bool:
        """Check, on every message, that the sender may still be here: their token has
        not expired, and their account is active and not signed out since, or their
        link not withdrawn. The hub's watcher closes whoever may no longer be here (on
        any node, whoever made the change: the CLI, another process), so while what it
        last read stands for the database (``Hub.current``: notified by PostgreSQL, or
        its last look began within ``hub.TRUSTED_LOOK_S``) a member it has not closed
        may stay, without a read per message. Otherwise (the watcher late: the database
        slow, or failing) the database is read for this member."""
        if self.clock() > member.expires_at:
            member.close(CLOSE_UNAUTHORIZED, "session_expired", "Your session has expired.")
            return False
        if self.hub.current:
            return not member.closing
        if member.user_id is not None:
            versions = await self.store.users.session_versions({member.user_id})
            if member.sign_out_if_stale(versions.get(member.user_id)):
                return False
        elif member.invite_id is not None:
            invite = await self.store.invites.get(member.invite_id)
            if invite is None or invite.revoked_at is not None:
                member.link_withdrawn()
                return False
        return not member.closing

    async def _dispatch(self, member: Member, message: dict[str, Any]) -> None:
        """Hand a checked message (``protocol.decode``) to its type's handler
        (``HANDLERS``)."""
        room = self.room
        assert room is not None
        await HANDLERS[message["type"]](self, member, room, message)

    # -- one handler per client message type (HANDLERS), each given a checked message --

    async def _on_auth(self, member: Member, room: Room, message: dict[str, Any]) -> None:
        raise BadRequest("Already authenticated.")

    async def _on_ping(self, member: Member, room: Room, message: dict[str, Any]) -> None:
        member.send({"type": "pong"})

    async def _on_leave(self, member: Member, room: Room, message: dict[str, Any]) -> None:
        member.close(CLOSE_NORMAL, "left")

    async def _on_call_end(self, member: Member, room: Room, message: dict[str, Any]
                           ) -> None:
        await actions.end_call(self.store, self.hub, member, room)

    async def _on_chat(self, member: Member, room: Room, message: dict[str, Any]) -> None:
        await actions.chat(self.store, member, room, message["text"], message["client_id"])

    async def _on_note(self, member: Member, room: Room, message: dict[str, Any]) -> None:
        await actions.add_note(self.store, member, room, message["text"])

    async def _on_annotation(self, member: Member, room: Room, message: dict[str, Any]
                             ) -> None:
        kind = message["type"]
        if message["target"] not in room.members:
            raise NotFound("'target' is not a participant of this call.")
        relayed = {"type": kind, "from": member.id,
                   **{k: v for k, v in message.items() if k != "type"}}
        if kind != "annotation.pointer":
            room.shapes.apply(relayed)
        room.broadcast(relayed, exclude=member)

    async def _on_offer(self, member: Member, room: Room, message: dict[str, Any]) -> None:
        if not self.offers.take():
            wait = self.offers.wait_s()
            raise TooManyRequests(f"Too many offers; wait {wait:g} s.", retry_after=wait)
        answer = await self.media.offer(room.call_id, member.id, message["sdp"], member.send,
                                        restart=message["restart"])
        member.send({"type": "sdp.answer", "sdp": answer})

    async def _on_answer(self, member: Member, room: Room, message: dict[str, Any]) -> None:
        await self.media.answer(member.id, message["sdp"])

    async def _on_candidate(self, member: Member, room: Room, message: dict[str, Any]
                            ) -> None:
        await self.media.candidate(member.id, message)

    async def _on_remove(self, member: Member, room: Room, message: dict[str, Any]) -> None:
        await actions.remove_participant(self.store, self.hub, member, room,
                                         message["target"])

    async def _on_mute(self, member: Member, room: Room, message: dict[str, Any]) -> None:
        await self.media.mute(member.id, message["kind"], message["muted"])

    async def _on_mode(self, member: Member, room: Room, message: dict[str, Any]) -> None:
        modes.set_mode(member, room, message, self.clock())

    async def _on_camera_control(self, member: Member, room: Room, message: dict[str, Any]
                                 ) -> None:
        if member.participant.role == "customer":
            raise Forbidden("Customers cannot control another participant's camera.")
        target = room.members.get(message["target"])
        if target is None or target is member:
            raise NotFound("'target' is not another participant of this call.")
        target.send({"type": message["type"], "from": member.id, "action": message["action"],
                     "value": message["value"]})

    async def _on_camera_state(self, member: Member, room: Room, message: dict[str, Any]
                               ) -> None:
        relayed = {k: v for k, v in message.items() if k != "type"}
        room.broadcast({"type": message["type"], "from": member.id, **relayed}, exclude=member)

    async def _on_freeze(self, member: Member, room: Room, message: dict[str, Any]) -> None:
        self.pictures.request_freeze(member, room, message["camera"])

    async def _on_freeze_end(self, member: Member, room: Room, message: dict[str, Any]
                             ) -> None:
        await self.pictures.end_freeze(member, room)

    async def _on_snapshot(self, member: Member, room: Room, message: dict[str, Any]
                           ) -> None:
        try:
            self.pictures.request_snapshot(member, room, message)
        except VideoassistError as exc:
            member.send(self._snapshot_error(exc, message["request"]))


Handler = Callable[[Connection, Member, Room, dict[str, Any]], Awaitable[None]]

# What each client message type does: the same types as ``protocol.CLIENT_TYPES``, whose
# checks a message has passed before its handler sees it (tests/signalling check that
# the two tables name the same types).
HANDLERS: dict[str, Handler] = {
    "auth": Connection._on_auth,
    "ping": Connection._on_ping,
    "leave": Connection._on_leave,
    "call.end": Connection._on_call_end,
    "chat.message": Connection._on_chat,
    "note.add": Connection._on_note,
    "sdp.offer": Connection._on_offer,
    "sdp.answer": Connection._on_answer,
    "ice.candidate": Connection._on_candidate,
    "annotation.add": Connection._on_annotation,
    "annotation.remove": Connection._on_annotation,
    "annotation.clear": Connection._on_annotation,
    "annotation.pointer": Connection._on_annotation,
    "media.mute": Connection._on_mute,
    "media.mode": Connection._on_mode,
    "camera.control": Connection._on_camera_control,
    "camera.state": Connection._on_camera_state,
    "snapshot.request": Connection._on_snapshot,
    "participant.remove": Connection._on_remove,
    "freeze": Connection._on_freeze,
    "freeze.end": Connection._on_freeze_end,
}
