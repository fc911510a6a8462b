"""One-time links, stored only as the SHA-256 of their token.

Redeeming is one conditional UPDATE: of any number of concurrent attempts on the
same token exactly one changes the row, and only that one gets the invite back.
"""

from __future__ import annotations

from collections.abc import Callable

from videoassist.errors import Gone
from videoassist.storage.db import Database, Row
from videoassist.storage.errors import IntegrityError
from videoassist.storage.records import Invite

_COLUMNS = (
    "id, purpose, job_id, user_id, role, created_by, created_at, expires_at, used_at, revoked_at,"
    " name, sent_to"
)


def _invite(row: Row) -> Invite:
    return Invite(*row)


class Invites:
    def __init__(self, db: Database, clock: Callable[[], float]) -> None:
        self._db = db
        self._clock = clock

    async def create_join(
        self, token_hash: bytes, job_id: int, role: str, ttl_s: float, created_by: int | None,
        name: str | None = None,
    ) -> Invite:
        """A join link; ``name``: whom it is made out to, the name the call shows."""
        return await self._create(token_hash, "join", job_id, None, role, ttl_s, created_by,
                                  name)

    async def create_password(
        self, token_hash: bytes, user_id: int, role: str, ttl_s: float, created_by: int | None
    ) -> Invite:
        """A set-password link; earlier unused ones for the same user are revoked."""
        now = self._clock()
        await self._db.execute(
            "UPDATE invites SET revoked_at = ? WHERE purpose = 'password' AND user_id = ?"
            " AND used_at IS NULL AND revoked_at IS NULL",
            (now, user_id),
        )
        return await self._create(token_hash, "password", None, user_id, role, ttl_s, created_by)

    async def _create(
        self,
        token_hash: bytes,
        purpose: str,
        job_id: int | None,
        user_id: int | None,
        role: str,
        ttl_s: float,
        created_by: int | None,
        name: str | None = None,
    ) -> Invite:
        now = self._clock()
        try:
            invite_id = await self._db.insert(
                "INSERT INTO invites (token_hash, purpose, job_id, user_id, role, created_by,"
                " created_at, expires_at, name) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                (token_hash, purpose, job_id, user_id, role, created_by, now, now + ttl_s, name),
            )
        except IntegrityError as exc:  # a hash collision of 256-bit tokens, or a bug
            raise RuntimeError("invite could not be stored") from exc
        row = await self._db.fetchone(f"SELECT {_COLUMNS} FROM invites WHERE id = ?", (invite_id,))
        assert row is not None
        return _invite(row)

    async def redeem(self, token_hash: bytes, purpose: str) -> Invite:
        """Consume a live link atomically; used, expired, revoked or unknown raise Gone."""
        now = self._clock()
        row = await self._db.write_returning(
            f"UPDATE invites SET used_at = ? WHERE token_hash = ? AND purpose = ?"
            f" AND used_at IS NULL AND revoked_at IS NULL AND expires_at > ?"
            f" AND (job_id IS NULL OR job_id IN (SELECT id FROM jobs WHERE status = 'open'))"
            f" RETURNING {_COLUMNS}",
            (now, token_hash, purpose, now),
        )
        if row is None:
            raise Gone()
        return _invite(row)

    async def peek(self, token_hash: bytes, purpose: str) -> Invite:
        """A live link's invite without consuming it (the join page's context)."""
        row = await self._db.fetchone(
            f"SELECT {_COLUMNS} FROM invites WHERE token_hash = ? AND purpose = ?"
            " AND used_at IS NULL AND revoked_at IS NULL AND expires_at > ?",
            (token_hash, purpose, self._clock()),
        )
        if row is None:
            raise Gone()
        return _invite(row)

    async def get(self, invite_id: int) -> Invite | None:
        row = await self._db.fetchone(f"SELECT {_COLUMNS} FROM invites WHERE id = ?", (invite_id,))
        return _invite(row) if row else None

    async def revoke_created_by(self, user_id: int) -> list[Invite]:
        """Revoke the links a user made (when the user is disabled): the unused ones,
        and the used join links, whose participant tokens then stop working. Return
        them, revoked (``used_at`` tells the used ones)."""
        rows = await self._db.write_returning_all(
            f"UPDATE invites SET revoked_at = ? WHERE created_by = ? AND revoked_at IS NULL"
            f" AND (used_at IS NULL OR purpose = 'join') RETURNING {_COLUMNS}",
            (self._clock(), user_id),
        )
        return [_invite(r) for r in rows]

    async def of_job(self, job_id: int) -> list[Invite]:
        """A job's join links, newest first."""
        rows = await self._db.fetchall(
            f"SELECT {_COLUMNS} FROM invites WHERE job_id = ? AND purpose = 'join'"
            " ORDER BY created_at DESC, id DESC", (job_id,))
        return [_invite(r) for r in rows]

    async def set_sent_to(self, invite_id: int, sent_to: str) -> None:
        """Remember where a link was sent: a new one can be sent there in its place."""
        await self._db.execute("UPDATE invites SET sent_to = ? WHERE id = ?",
                               (sent_to, invite_id))

    async def revoke(self, invite_id: int) -> Invite | None:
        """Withdraw one link, used or not (a participant removed from a call: its
        participant token stops working); None if it was already withdrawn or is gone."""
        row = await self._db.write_returning(
            f"UPDATE invites SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL"
            f" RETURNING {_COLUMNS}", (self._clock(), invite_id))
        return _invite(row) if row else None

    async def withdraw_unused(self, invite_id: int) -> Invite | None:
        """Withdraw a link if it is still unused and not withdrawn (one conditional
        UPDATE: a redeem at the same time either comes first, and this finds it used,
        or finds it withdrawn); None if not."""
        row = await self._db.write_returning(
            f"UPDATE invites SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL"
            f" AND used_at IS NULL RETURNING {_COLUMNS}", (self._clock(), invite_id))
        return _invite(row) if row else None

    async def withdrawn_among(self, invite_ids: set[int]) -> set[int]:
        """Which of these links are revoked, or gone."""
        if not invite_ids:
            return set()
        marks = ",".join("?" * len(invite_ids))
        rows = await self._db.fetchall(
            f"SELECT id FROM invites WHERE revoked_at IS NULL AND id IN ({marks})",
            sorted(invite_ids))
        return invite_ids - {r[0] for r in rows}
