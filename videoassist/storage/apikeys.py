"""Integrations' API keys, stored only as the SHA-256 of the key."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence

from videoassist.errors import NotFound
from videoassist.storage.db import Database, Row
from videoassist.storage.errors import IntegrityError
from videoassist.storage.records import ApiKey

_COLUMNS = "id, name, hint, scopes, created_by, created_at, last_used_at, revoked_at"


def _api_key(row: Row) -> ApiKey:
    id_, name, hint, scopes, created_by, created_at, last_used_at, revoked_at = row
    return ApiKey(id_, name, hint, tuple(json.loads(scopes)), created_by, created_at,
                  last_used_at, revoked_at)


class ApiKeys:
    def __init__(self, db: Database, clock: Callable[[], float]) -> None:
        self._db = db
        self._clock = clock

    async def create(self, token_hash: bytes, name: str, hint: str, scopes: Sequence[str],
                     created_by: int | None) -> ApiKey:
        try:
            key_id = await self._db.insert(
                "INSERT INTO api_keys (name, token_hash, hint, scopes, created_by, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
                (name, token_hash, hint, json.dumps(list(scopes)), created_by, self._clock()),
            )
        except IntegrityError as exc:  # a hash collision of 256-bit keys, or a bug
            raise RuntimeError("API key could not be stored") from exc
        return await self.get(key_id)

    async def get(self, key_id: int) -> ApiKey:
        row = await self._db.fetchone(f"SELECT {_COLUMNS} FROM api_keys WHERE id = ?",
                                      (key_id,))
        if row is None:
            raise NotFound("No such API key.")
        return _api_key(row)

    async def find(self, token_hash: bytes) -> ApiKey | None:
        """The key with this hash, revoked or not; None if there is none."""
        row = await self._db.fetchone(f"SELECT {_COLUMNS} FROM api_keys WHERE token_hash = ?",
                                      (token_hash,))
        return _api_key(row) if row else None

    async def list(self) -> list[ApiKey]:
        rows = await self._db.fetchall(f"SELECT {_COLUMNS} FROM api_keys ORDER BY id")
        return [_api_key(r) for r in rows]

    async def revoke(self, key_id: int) -> tuple[ApiKey, bool]:
        """Revoke a key at once; return it and whether this call revoked it."""
        count = await self._db.execute(
            "UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
            (self._clock(), key_id),
        )
        return await self.get(key_id), bool(count)

    async def touch(self, key_id: int) -> None:
        await self._db.execute("UPDATE api_keys SET last_used_at = ? WHERE id = ?",
                               (self._clock(), key_id))
