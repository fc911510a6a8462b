"""Who did something, as one value: the audit log's ``actor`` and, where a staff user
did it, their id (a job's or a link's ``created_by``), which callers used to pass twice,
once as a string they built (``f"user:{id}"``) and once as the id.

``str(actor)`` is how the audit log names them: ``user:12``, ``apikey:3``,
``invite:7``, ``cli``, ``system``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Kind = Literal["user", "apikey", "invite", "cli", "system"]


@dataclass(frozen=True)
class Actor:
    kind: Kind
    id: int | None = None

    def __post_init__(self) -> None:
        if (self.id is None) != (self.kind in ("cli", "system")):
            raise ValueError(f"an actor of kind {self.kind!r} takes "
                             f"{'an id' if self.id is None else 'no id'}")

    def __str__(self) -> str:
        return self.kind if self.id is None else f"{self.kind}:{self.id}"

    @property
    def user_id(self) -> int | None:
        """The staff user who did it, if one did (an API key, a link, the CLI: none)."""
        return self.id if self.kind == "user" else None

    @classmethod
    def user(cls, user_id: int) -> Actor:
        return cls("user", user_id)

    @classmethod
    def api_key(cls, key_id: int) -> Actor:
        return cls("apikey", key_id)

    @classmethod
    def invite(cls, invite_id: int) -> Actor:
        """Whoever came by a join link (a customer, an invited technician)."""
        return cls("invite", invite_id)


# An operator at the command line, and the server's own periodic work (retention).
CLI = Actor("cli")
SYSTEM = Actor("system")
