"""Plain records the storage layer returns. Times are Unix seconds."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

StaffRole = Literal["admin", "expert", "technician"]
InviteRole = Literal["customer", "technician"]
STAFF_ROLES: tuple[str, ...] = ("admin", "expert", "technician")
INVITE_ROLES: tuple[str, ...] = ("customer", "technician")
JOB_STATUSES: tuple[str, ...] = ("open", "closed")


@dataclass(frozen=True)
class User:
    id: int
    username: str
    role: str
    has_password: bool
    created_at: float
    disabled_at: float | None

    @property
    def active(self) -> bool:
        return self.disabled_at is None

    def public(self) -> dict[str, Any]:
        return {"id": self.id, "username": self.username, "role": self.role}


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

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "external_ref": self.external_ref,
            "status": self.status,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "closed_at": self.closed_at,
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
