"""Staff accounts."""

from __future__ import annotations

from collections.abc import Callable

from videoassist.errors import Conflict, NotFound
from videoassist.storage.db import Database, Row
from videoassist.storage.errors import UniqueViolation
from videoassist.storage.records import User

_COLUMNS = (
    "id, username, role, password_hash IS NOT NULL, created_at, disabled_at, session_version,"
    " display_name"
)


# A change that would leave no admin able to sign in is refused in the same statement
# that makes it, so two admins demoting (disabling, resetting) each other at once cannot
# both pass: the row may change unless it is a usable admin and no other usable one is left
# (``Users._guarded`` runs such statements one at a time).
_KEEPS_AN_ADMIN = (
    "(role != 'admin' OR disabled_at IS NOT NULL OR password_hash IS NULL"
    " OR EXISTS (SELECT 1 FROM users o WHERE o.role = 'admin' AND o.disabled_at IS NULL"
    " AND o.password_hash IS NOT NULL AND o.id != users.id))"
)
LAST_ADMIN = "This is the last admin who can sign in: make another admin first."


def _user(row: Row) -> User:
    return User(row[0], row[1], row[2], bool(row[3]), row[4], row[5], row[6], row[7])


class Users:
    def __init__(self, db: Database, clock: Callable[[], float]) -> None:
        self._db = db
        self._clock = clock

    async def add(self, username: str, role: str, password_hash: str | None = None,
                  display_name: str | None = None) -> User:
        try:
            user_id = await self._db.insert(
                "INSERT INTO users (username, role, password_hash, created_at, display_name)"
                " VALUES (?, ?, ?, ?, ?) RETURNING id",
                (username, role, password_hash, self._clock(), display_name),
            )
        except UniqueViolation:
            raise Conflict(f"A user named {username!r} already exists.") from None
        return await self.get(user_id)

    async def get(self, user_id: int) -> User:
        row = await self._db.fetchone(f"SELECT {_COLUMNS} FROM users WHERE id = ?", (user_id,))
        if row is None:
            raise NotFound("No such user.")
        return _user(row)

    async def find(self, username: str) -> User | None:
        row = await self._db.fetchone(
            f"SELECT {_COLUMNS} FROM users WHERE username = ?", (username,)
        )
        return _user(row) if row else None

    async def set_display_name(self, user_id: int, display_name: str | None) -> User:
        """Set (None: clear) the name others see; nobody is signed out by it."""
        count = await self._db.execute("UPDATE users SET display_name = ? WHERE id = ?",
                                       (display_name, user_id))
        if not count:
            raise NotFound("No such user.")
        return await self.get(user_id)

    async def password_hash(self, user_id: int) -> str | None:
        row = await self._db.fetchone("SELECT password_hash FROM users WHERE id = ?", (user_id,))
        return row[0] if row else None

    async def set_password_hash(self, user_id: int, password_hash: str) -> None:
        """A new password signs the user out everywhere else: a session stolen before
        it is changed ends with it."""
        count = await self._db.execute(
            "UPDATE users SET password_hash = ?, session_version = session_version + 1"
            " WHERE id = ?",
            (password_hash, user_id),
        )
        if count != 1:
            raise NotFound("No such user.")

    async def set_disabled(self, user_id: int, disabled: bool) -> User:
        """Disabling also signs the user out for good: re-enabling the account does not
        bring its old sessions back."""
        if disabled:
            await self._guarded(
                "UPDATE users SET disabled_at = ?, session_version = session_version + 1"
                f" WHERE id = ? AND {_KEEPS_AN_ADMIN}",
                (self._clock(), user_id), user_id)
        else:
            count = await self._db.execute(
                "UPDATE users SET disabled_at = NULL WHERE id = ?", (user_id,))
            if count != 1:
                raise NotFound("No such user.")
        return await self.get(user_id)

    async def set_role(self, user_id: int, role: str) -> User:
        """Change the role and sign the user out everywhere (their pages and tokens were
        made for the old one)."""
        guard = "" if role == "admin" else f" AND {_KEEPS_AN_ADMIN}"
        await self._guarded(
            f"UPDATE users SET role = ?, session_version = session_version + 1"
            f" WHERE id = ?{guard}",
            (role, user_id), user_id)
        return await self.get(user_id)

    async def clear_password(self, user_id: int) -> User:
        """Forget the password and sign the user out everywhere: until they set a new
        one through a link, nobody can sign in as them."""
        await self._guarded(
            "UPDATE users SET password_hash = NULL, session_version = session_version + 1"
            f" WHERE id = ? AND {_KEEPS_AN_ADMIN}",
            (user_id,), user_id)
        return await self.get(user_id)

    async def _guarded(self, sql: str, params: tuple[object, ...], user_id: int) -> None:
        """Run an UPDATE guarded by ``_KEEPS_AN_ADMIN``: NotFound or Conflict if no row
        changed. Under a lock: on PostgreSQL, two such statements on different rows at
        once would each see the other's row as it was before (READ COMMITTED), and both
        pass; one after the other, the second sees the first's change."""
        async with self._db.transaction() as tx:
            await tx.lock("keeps_an_admin")
            count = await tx.execute(sql, params)
        if count != 1:
            await self.get(user_id)  # NotFound if there is no such user
            raise Conflict(LAST_ADMIN)

    async def list(self) -> list[User]:
        rows = await self._db.fetchall(f"SELECT {_COLUMNS} FROM users ORDER BY username")
        return [_user(r) for r in rows]

    async def session_versions(self, user_ids: set[int]) -> dict[int, int]:
        """The current session version of each of these users that still exists and is
        enabled; a staff connection made under another version is signed out."""
        if not user_ids:
            return {}
        marks = ",".join("?" * len(user_ids))
        rows = await self._db.fetchall(
            f"SELECT id, session_version FROM users WHERE disabled_at IS NULL"
            f" AND id IN ({marks})",
            sorted(user_ids),
        )
        return {r[0]: r[1] for r in rows}

    async def has_usable_admin(self) -> bool:
        row = await self._db.fetchone(
            "SELECT 1 FROM users WHERE role = 'admin' AND disabled_at IS NULL"
            " AND password_hash IS NOT NULL LIMIT 1"
        )
        return row is not None
