"""Who is in a call: each authenticated connection (``Member``) and each call's
members and shared state (``Room``), with the close codes and words the server ends a
connection with (docs/protocol.md). The hub (``hub.py``) keeps the rooms."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import web

from videoassist.actors import Actor
from videoassist.auth.ratelimit import TokenBucket
from videoassist.signalling.callstate import SentChat, Shapes
from videoassist.signalling.outbox import Outbox
from videoassist.signalling.stills import Latest
from videoassist.storage.records import Author, Job, Participant

if TYPE_CHECKING:
    from videoassist.signalling.freeze import Frozen

logger = logging.getLogger(__name__)

CLOSE_TIMEOUT_S = 2.0

# WebSocket close codes the server uses (docs/protocol.md).
CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_TRY_AGAIN_LATER = 1013
CLOSE_UNAUTHORIZED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_AUTH_TIMEOUT = 4408
CLOSE_AUTH_REQUIRED = 4400  # too many messages before auth
CLOSE_TOO_SLOW = 4409
CLOSE_TOO_MANY = 4429  # too many connections of the token or user, or the call is full
CLOSE_REPLACED = 4410  # the participant resumed on another connection (auth ``resume``)
CLOSE_CALL_LOST = 1011
SIGNED_OUT = "You have been signed out."
CALL_LOST = "The call was interrupted on the server. Reconnecting starts it again."
LINK_REVOKED = "This link has been withdrawn."
REMOVED = "A staff member removed you from the call; this link no longer works."
REPLACED = "You are in this call on another connection now."
SESSION_EXPIRED = "Your session has expired."


@dataclass(eq=False)
class Member:
    """One authenticated connection in a call."""

    participant: Participant
    job: Job
    user_id: int | None
    invite_id: int | None
    expires_at: float
    ws: web.WebSocketResponse
    session_version: int = 0  # a staff member's, when they joined
    outbox: Outbox = field(default_factory=Outbox)
    closing: bool = False
    close_reason: str | None = None  # the reason the server gave when it closed this
    writer: asyncio.Task[None] | None = None
    closer: asyncio.Task[None] | None = None
    abort: Callable[[], None] | None = None
    # The participant went on on another connection (auth ``resume``): this one's end
    # is not the participant's.
    replaced: bool = False
    resumed: bool = False  # this connection took over a participant (auth ``resume``)
    # A staff member is removing this participant: their link is withdrawn first, and
    # the watcher that may see the withdrawal before the removal closes it must say
    # ``removed``, not ``link_revoked``.
    removing: bool = False
    # The connection was lost (``Hub.gone``): the participant is away from then until
    # ``away_until`` (unix seconds), unless the same person comes back.
    away_since: float | None = None
    away_until: float | None = None
    ending: bool = False  # leaving the call for good: nobody takes its place any more
    # Stops at once all forwarding from and to the participant's media session, and
    # closes it (set by its connection).
    withdraw_media: Callable[[], None] | None = None
    end_media: Callable[[], Awaitable[None]] | None = None

    @property
    def id(self) -> int:
        return self.participant.id

    @property
    def away(self) -> bool:
        return self.away_since is not None

    def public(self) -> dict[str, Any]:
        """The participant as others see it in ``joined``: away ones say since and
        until when."""
        if self.away_since is None:
            return self.participant.public()
        return self.participant.public() | {"away_since": self.away_since,
                                            "away_until": self.away_until}

    def author(self) -> Author:
        """This participant, as the author (or camera) of a snapshot."""
        p = self.participant
        return Author(p.display_name, p.role, p.id, self.user_id)

    @property
    def actor(self) -> Actor:
        """The person behind the connection, as the audit log names them: the staff
        user, or the join link's holder."""
        return actor(self.user_id, self.invite_id)

    def sign_out_if_stale(self, current_version: int | None) -> bool:
        """Close a staff member whose account is now disabled (``current_version`` None)
        or who was signed out since joining (a role change, a password reset); whether
        it was closed."""
        if current_version == self.session_version:
            return False
        self.close(CLOSE_UNAUTHORIZED,
                   "account_disabled" if current_version is None else "signed_out",
                   SIGNED_OUT)
        return True

    def close_expired(self) -> None:
        """Close a member whose token has expired."""
        self.close(CLOSE_UNAUTHORIZED, "session_expired", SESSION_EXPIRED)

    def removed(self) -> None:
        """Close a participant a staff member removed (its join link withdrawn)."""
        self.close(CLOSE_UNAUTHORIZED, "removed", REMOVED)

    def replace(self) -> None:
        """The participant resumed on another connection: close this one."""
        self.replaced = True
        self.close(CLOSE_REPLACED, "replaced", REPLACED)

    def link_withdrawn(self) -> None:
        """Close a participant whose join link was withdrawn (its creator disabled, or
        a staff member removing them)."""
        if self.removing:
            self.removed()
        else:
            self.close(CLOSE_UNAUTHORIZED, "link_revoked", LINK_REVOKED)

    @property
    def log_prefix(self) -> str:
        return f"[job {self.job.id} participant {self.participant.id}]"

    def send(self, message: dict[str, Any]) -> bool:
        """Queue a message; a member whose outbox is full even after coalescing is
        closed as too slow."""
        if self.closing:
            return False
        coalesced = self.outbox.coalesced
        if not self.outbox.put(message):
            logger.warning("%s outbox full: closing a client that does not read",
                           self.log_prefix)
            self.close(CLOSE_TOO_SLOW, "too_slow", "Your connection is too slow.")
            return False
        if not coalesced and self.outbox.coalesced:
            logger.info("%s falls behind: superseded messages are dropped for it",
                        self.log_prefix)
        return True

    async def write_loop(self) -> None:
        while True:
            message = await self.outbox.get()
            if message["type"] in ("still", "frozen"):  # a binary frame (stills, freeze)
                await self.ws.send_bytes(message["frame"])
            else:
                await self.ws.send_json(message)

    def close(self, code: int, reason: str, message: str | None = None) -> None:
        """Close from any task: stop the writer, say why, close the socket."""
        if self.closing:
            return
        self.closing = True
        self.close_reason = reason
        self.closer = asyncio.create_task(self._close(code, reason, message))

    async def _close(self, code: int, reason: str, message: str | None) -> None:
        if self.writer is not None:
            self.writer.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.writer
        try:
            if message is not None and not self.ws.closed:
                async with asyncio.timeout(CLOSE_TIMEOUT_S / 2):
                    await self.ws.send_json({"type": "error", "code": reason, "message": message})
            async with asyncio.timeout(CLOSE_TIMEOUT_S / 2):
                await self.ws.close(code=code, message=reason.encode())
        except (TimeoutError, ConnectionError, RuntimeError):
            # A peer that does not read cannot be closed politely: drop the connection.
            logger.info("%s peer did not close cleanly; dropping the connection",
                        self.log_prefix)
            if self.abort is not None:
                self.abort()


def actor(user_id: int | None, invite_id: int | None) -> Actor:
    """A member of a call as the audit log names them: a staff user, or whoever came by
    a join link."""
    if user_id is not None:
        return Actor.user(user_id)
    assert invite_id is not None
    return Actor.invite(invite_id)


@dataclass(eq=False)
class Room:
    job: Job
    call_id: int
    started_at: float = 0.0  # Unix seconds: when the call began (its first join)
    members: dict[int, Member] = field(default_factory=dict)
    seen: set[str] = field(default_factory=set)  # everyone who has joined, by ``actor``
    # Bytes each sender may still send of a kind (chat, annotation), by (actor, kind):
    # shared by all of a sender's connections to the call.
    budgets: dict[tuple[Actor, str], TokenBucket] = field(default_factory=dict)
    # What the call keeps for those who join or come back (``callstate``).
    shapes: Shapes = field(default_factory=Shapes)
    sent_chat: SentChat = field(default_factory=SentChat)
    # Each publisher's media mode (its last media.mode, as relayed), and newest still.
    modes: dict[int, dict[str, Any]] = field(default_factory=dict)
    stills: Latest = field(default_factory=Latest)
    # The frame everyone looks at while the picture is frozen (``freeze``), and how many
    # times it was asked for or ended: a capture finishing after a later ask is dropped.
    frozen: Frozen | None = None
    freezes: int = 0

    def broadcast(self, message: dict[str, Any], exclude: Member | None = None, *,
                  customers: bool = True) -> None:
        """Send to every member but ``exclude``; to customers only if ``customers``."""
        for member in list(self.members.values()):
            if member is not exclude and (customers or member.participant.role != "customer"):
                member.send(message)
