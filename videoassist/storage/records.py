"""Plain records the storage layer returns. Times are Unix seconds."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

StaffRole = Literal["admin", "expert", "technician"]
InviteRole = Literal["customer", "technician"]
STAFF_ROLES: tuple[str, ...] = ("admin", "expert", "technician")
INVITE_ROLES: tuple[str, ...] = ("customer", "technician")
JOB_STATUSES: tuple[str, ...] = ("open", "closed")
MAX_NOTE_CHARS = 4000  # a note's text, blanks around it left out


@dataclass(frozen=True)
class User:
    id: int
    username: str
    role: str
    has_password: bool
    created_at: float
    disabled_at: float | None
    session_version: int = 0  # staff tokens of an older version are refused
    display_name: str | None = None  # what others see of them; the username if None

    @property
    def active(self) -> bool:
        return self.disabled_at is None

    @property
    def name(self) -> str:
        """The name others see: the display name, else the username."""
        return self.display_name or self.username

    def public(self) -> dict[str, Any]:
        return {"id": self.id, "username": self.username, "role": self.role,
                "display_name": self.display_name, "name": self.name}


@dataclass(frozen=True)
class Job:
    id: int
    title: str
    external_ref: str | None
    status: str
    created_by: int | None
    created_at: float
    updated_at: float
    closed_at: float | None
    retention_days: int | None = None  # None: the server's default

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "external_ref": self.external_ref,
            "status": self.status,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "closed_at": self.closed_at,
            "retention_days": self.retention_days,
        }


@dataclass(frozen=True)
class Invite:
    id: int
    purpose: str
    job_id: int | None
    user_id: int | None
    role: str
    created_by: int | None
    created_at: float
    expires_at: float
    used_at: float | None
    revoked_at: float | None
    name: str | None = None  # whom a join link was made out to (personal data)
    sent_to: str | None = None  # where the server sent it (personal data)


@dataclass(frozen=True)
class Participant:
    id: int
    call_id: int
    role: str
    display_name: str
    user_id: int | None
    invite_id: int | None
    joined_at: float
    left_at: float | None

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "call_id": self.call_id,
            "role": self.role,
            "name": self.display_name,
            "joined_at": self.joined_at,
            "left_at": self.left_at,
        }


@dataclass(frozen=True)
class LiveParticipant:
    """Someone connected to a call in progress, and whether their media connection is
    up (as the process holding the call last wrote it)."""

    participant: Participant
    media_connected: bool


@dataclass(frozen=True)
class LiveCall:
    """A call in progress, whichever process holds it, with who is connected to it."""

    id: int
    job_id: int
    job_title: str
    started_at: float
    participants: tuple[LiveParticipant, ...]


@dataclass(frozen=True)
class Message:
    id: int
    job_id: int
    call_id: int | None
    participant_id: int | None
    sender_name: str
    sender_role: str
    text: str
    created_at: float

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "call_id": self.call_id,
            "participant_id": self.participant_id,
            "from": {"name": self.sender_name, "role": self.sender_role},
            "text": self.text,
            "created_at": self.created_at,
        }


@dataclass(frozen=True)
class Author:
    """Who took or annotated a snapshot: a participant of a call, a staff user, or both."""

    name: str
    role: str
    participant_id: int | None = None
    user_id: int | None = None

    def public(self) -> dict[str, Any]:
        return {"participant": self.participant_id, "user": self.user_id, "name": self.name,
                "role": self.role}


@dataclass(frozen=True)
class Snapshot:
    """One version of an annotated snapshot; the image itself is sealed in the database."""

    id: int
    job_id: int
    call_id: int | None
    frame_id: int
    original_id: int | None
    version: int
    author: Author
    camera: Author
    captured_at: float
    created_at: float
    width: int
    height: int
    shapes: list[dict[str, Any]]
    caption: str | None
    sha256: str
    byte_size: int

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "job_id": self.job_id,
            "call_id": self.call_id,
            "original_id": self.original_id,
            "version": self.version,
            "author": self.author.public(),
            "camera": self.camera.public(),
            "captured_at": self.captured_at,
            "created_at": self.created_at,
            "width": self.width,
            "height": self.height,
            "shapes": self.shapes,
            "caption": self.caption,
            "sha256": self.sha256,
            "byte_size": self.byte_size,
        }


@dataclass(frozen=True)
class Note:
    id: int
    job_id: int
    user_id: int | None
    author_name: str
    text: str
    created_at: float

    def public(self) -> dict[str, Any]:
        return {"id": self.id, "user": self.user_id, "author": self.author_name,
                "text": self.text, "created_at": self.created_at}


@dataclass(frozen=True)
class Call:
    id: int
    job_id: int
    started_at: float
    ended_at: float | None


@dataclass(frozen=True)
class Node:
    """A server process that holds calls (``videoassist.cluster``)."""

    id: int
    host: str
    pid: int
    worker: int | None
    address: str
    started_at: float
    heartbeat_at: float
    load: int
    draining: bool
    stopped_at: float | None


@dataclass(frozen=True)
class Placement:
    """Where a job's call in progress lives: the call and the node holding it.
    ``started``: placed just now; ``ended``: a call held by a node found dead, ended
    to make way for this one."""

    call_id: int
    node_id: int
    address: str
    started: bool
    ended: int | None = None


@dataclass(frozen=True)
class ApiKey:
    """An integration's key; the key itself is never stored, only its hash."""

    id: int
    name: str
    hint: str
    scopes: tuple[str, ...]
    created_by: int | None
    created_at: float
    last_used_at: float | None
    revoked_at: float | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def public(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "hint": self.hint,
                "scopes": list(self.scopes), "created_by": self.created_by,
                "created_at": self.created_at, "last_used_at": self.last_used_at,
                "revoked_at": self.revoked_at}


@dataclass(frozen=True)
class DeliveryAttempt:
    attempt: int
    started_at: float
    duration_ms: int
    status_code: int | None
    error: str | None
    node_id: int | None = None  # the node that made it (None: a release before nodes)

    def public(self) -> dict[str, Any]:
        return {"attempt": self.attempt, "started_at": self.started_at,
                "duration_ms": self.duration_ms, "status_code": self.status_code,
                "error": self.error, "node_id": self.node_id}


@dataclass(frozen=True)
class Delivery:
    """One outgoing delivery and where it stands: a webhook event, or a join link for
    the notify webhook (``channel`` 'notify', ``body`` sealed, ``invite_id`` its link)."""

    id: int
    uuid: str
    type: str
    job_id: int | None
    body: bytes
    created_at: float
    attempts: int
    next_attempt_at: float | None
    delivered_at: float | None
    failed_at: float | None
    channel: str = "webhook"
    invite_id: int | None = None

    @property
    def state(self) -> str:
        if self.delivered_at is not None:
            return "delivered"
        return "failed" if self.failed_at is not None else "pending"

    def public(self) -> dict[str, Any]:
        """Where the delivery stands; never its body."""
        return {"id": self.uuid, "type": self.type, "job_id": self.job_id,
                "created_at": self.created_at, "state": self.state,
                "attempts": self.attempts, "next_attempt_at": self.next_attempt_at,
                "delivered_at": self.delivered_at, "failed_at": self.failed_at}


@dataclass(frozen=True)
class AuditEntry:
    """One row of the audit log, with its place in the hash chain."""

    id: int
    created_at: float
    actor: str
    action: str
    target: str | None
    detail: dict[str, Any]
    prev_hash: str | None
    hash: str | None
    # Values about a person outside the staff, kept beside the chain so that they can
    # be erased ({"nonce", "values"}: detail["personal"] commits to it); None: none,
    # or erased.
    personal: dict[str, Any] | None = None

    def public(self) -> dict[str, Any]:
        return {"id": self.id, "created_at": self.created_at, "actor": self.actor,
                "action": self.action, "target": self.target, "detail": self.detail,
                "prev_hash": self.prev_hash, "hash": self.hash, "personal": self.personal}


def storable(value: object) -> bool:
    """Whether every string of a parsed JSON value, keys included, is text both databases
    store: valid Unicode (JSON may escape a lone surrogate, "\\ud800", which no UTF-8
    holds) and without NUL ("\\u0000"), which PostgreSQL's text refuses. Walked without
    recursion, however deep the value."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return False
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return False
        elif isinstance(item, dict):
            stack.extend(item)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return True
