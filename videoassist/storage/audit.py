"""The audit log of security-relevant events. Callers never pass tokens or secrets."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from videoassist.storage.db import Database


class Audit:
    def __init__(self, db: Database, clock: Callable[[], float]) -> None:
        self._db = db
        self._clock = clock

    async def record(
        self, actor: str, action: str, target: str | None = None, **detail: Any
    ) -> None:
        await self._db.execute(
            "INSERT INTO audit_log (created_at, actor, action, target, detail)"
            " VALUES (?, ?, ?, ?, ?)",
            (self._clock(), actor, action, target,
             json.dumps(detail, separators=(",", ":"), sort_keys=True)),
        )

    async def recent(self, limit: int = 100) -> list[dict[str, Any]]:
        rows = await self._db.fetchall(
            "SELECT id, created_at, actor, action, target, detail FROM audit_log"
            " ORDER BY id DESC LIMIT ?",
            (limit,),
        )
        return [
            {"id": r[0], "created_at": r[1], "actor": r[2], "action": r[3], "target": r[4],
             "detail": json.loads(r[5])}
            for r in rows
        ]
