"""From an upgraded socket to a member of a call: the first message must be ``auth``
within ``ws_auth_timeout_s`` (a few bad messages allowed before it, rate limited); its
credentials are read (``signalling.admission``) and the hub lets the member in, or the
connection is carried to the node that holds the call (``videoassist.cluster.proxy``);
a member let in is told where it is (``joined``). A refusal closes the socket with the
code and words of docs/protocol.md."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import Any

from aiohttp import WSMsgType, web

from videoassist.api.ws.replies import Replies
from videoassist.appkeys import DRAINING, HUB, ICE, MEDIA, METRICS, PROXIES, SETTINGS, STORE, TOKENS
from videoassist.auth.ratelimit import TokenBucket
from videoassist.cluster.proxy import CALL_LOST, CALL_LOST_MESSAGE, CLOSE_MOVED, Closed
from videoassist.errors import (
    BadRequest,
    Draining,
    Forbidden,
    NotFound,
    TooManyRequests,
    Unauthorized,
    VideoassistError,
)
from videoassist.signalling import protocol
from videoassist.signalling.admission import admit
from videoassist.signalling.hub import Elsewhere
from videoassist.signalling.members import (
    CLOSE_AUTH_REQUIRED,
    CLOSE_AUTH_TIMEOUT,
    CLOSE_CALL_LOST,
    CLOSE_FORBIDDEN,
    CLOSE_TOO_MANY,
    CLOSE_TRY_AGAIN_LATER,
    CLOSE_UNAUTHORIZED,
    Member,
    Room,
)
from videoassist.storage.records import Job

logger = logging.getLogger(__name__)

# Placements tried for one auth: a call can end and be placed again on another node
# while the connection is on its way to it; more than this is a node gone astray.
MAX_PLACEMENTS = 3


@dataclass
class Joined:
    member: Member
    room: Room


class Handshake:
    """One connection's way in. ``refused`` is the reason the server refused it, if it
    did; ``carried``: another node carries this client's connection here."""

    def __init__(self, app: web.Application, ws: web.WebSocketResponse, client: str,
                 bucket: TokenBucket, replies: Replies, *, carried: bool) -> None:
        self.app = app
        self.ws = ws
        self.client = client
        # Messages before auth take from the same bucket as messages in a call.
        self.bucket = bucket
        self.replies = replies
        self.carried = carried
        self.settings = app[SETTINGS]
        self.refused: str | None = None

    async def run(self) -> Joined | None:
        """The member let in and its room, or None: refused (``refused`` says why),
        carried to another node and over, or the client gone."""
        deadline = asyncio.get_running_loop().time() + self.settings.ws_auth_timeout_s
        bad = 0  # messages before auth that were not a good auth
        limited = False  # the one rate_limited notice before auth was sent
        while True:
            try:
                async with asyncio.timeout_at(deadline):
                    msg = await self.ws.receive()
            except TimeoutError:
                await self.refuse(CLOSE_AUTH_TIMEOUT, "auth_timeout",
                                  "Send an auth message first.")
                return None
            if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED,
                            WSMsgType.ERROR):
                return None
            message, error = self._read_auth(msg)
            if error is not None:
                # Anything but a good auth is one of the few bad messages allowed.
                bad += 1
                if bad > self.settings.ws_preauth_max_messages:
                    await self.refuse(CLOSE_AUTH_REQUIRED, "auth_required",
                                      "Too many messages before auth.")
                    return None
                if self.bucket.take():
                    await self.ws.send_json(self.replies.error(error, message))
                elif not limited:
                    limited = True
                    await self.ws.send_json(
                        self.replies.error(TooManyRequests("Too many messages; slow down.")))
                continue
            return await self._let_in(message, msg.data)

    async def _let_in(self, message: dict[str, Any], auth: str) -> Joined | None:
        """A good ``auth``: the member in its call, or the refusal that answers it."""
        try:
            return await self._join_or_carry(message, auth)
        except Draining as exc:
            logger.info("refused a join: the server is draining")
            await self.refuse(CLOSE_TRY_AGAIN_LATER, exc.code, exc.message)
        except (Unauthorized, Forbidden, NotFound) as exc:
            code = CLOSE_FORBIDDEN if isinstance(exc, Forbidden) else CLOSE_UNAUTHORIZED
            await self.refuse(code, exc.code, exc.message)
        except TooManyRequests as exc:  # too many connections, or the call is full
            logger.info("[job %s] refused a join: %s", message["job"], exc.code)
            await self.refuse(CLOSE_TOO_MANY, exc.code, exc.message)
        except Exception:
            # The socket is upgraded: no HTTP error may be written on it any more.
            logger.exception("[job %s] failed to let a connection in", message["job"])
            self.app[METRICS].unhandled_errors.labels("websocket").inc()
            await self.refuse(CLOSE_CALL_LOST, "internal",
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

    async def _join_or_carry(self, message: dict[str, Any], auth: str) -> Joined | None:
        """Join the call here, or carry the connection to the node that holds it (then
        None, once the carrying is over)."""
        job_id = message["job"]
        for _ in range(MAX_PLACEMENTS):
            try:
                return await self._join(message)
            except Elsewhere as elsewhere:
                placement = elsewhere.placement
            if self.carried:  # never carried twice: the carrier places again
                await self.refuse(CLOSE_MOVED, "moved", None)
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
        await self.refuse(CLOSE_CALL_LOST, CALL_LOST, CALL_LOST_MESSAGE)
        return None

    async def _join(self, message: dict[str, Any]) -> Joined:
        who = await admit(self.app[TOKENS], self.app[STORE], message["token"],
                          message["job"])
        hub = self.app[HUB]
        member, room = await hub.join(who, self.ws, draining=self.app[DRAINING][0],
                                      spread=not self.carried, resume=message["resume"])
        try:
            await self._welcome(member, room, who.job, message["chat_after"] or 0)
        except BaseException:
            # In the call but never told so (its socket died as it was let in, say):
            # the participant is away, as for any connection lost, not left present
            # with nothing serving it.
            await hub.gone(member)
            raise
        return Joined(member, room)

    async def _welcome(self, member: Member, room: Room, job: Job, chat_after: int) -> None:
        """Tell a member just let in where it is: ``joined``."""
        if member.resumed:  # its media session, if it kept one, talks to this socket now
            self.app[MEDIA].rebind(member.id, member.send)
        # What the call holds now: who is in it, the shapes on their videos, and the
        # chat since what the client says it has (all of this call's, without it).
        chat = await self.app[STORE].calls.messages_of_call(
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

    async def refuse(self, code: int, reason: str, message: str | None) -> None:
        """Close the connection before it joined, saying why (``message`` None: to the
        node that carried it here, which needs no words)."""
        self.refused = reason
        with contextlib.suppress(ConnectionError, RuntimeError):
            if message is not None:
                await self.ws.send_json(self.replies.refusal(reason, message))
            await self.ws.close(code=code, message=reason.encode())
