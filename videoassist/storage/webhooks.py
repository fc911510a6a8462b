"""Outgoing webhook deliveries and the log of their attempts.

A delivery is due while ``next_attempt_at`` is set and not in the future; it stops
being due when it is delivered or its last allowed attempt fails. Rows outlive the
process, so deliveries pending at shutdown go out after the next start.
"""

from __future__ import annotations

from collections.abc import Callable

from videoassist.storage.db import Database, Row
from videoassist.storage.records import Delivery, DeliveryAttempt

_COLUMNS = (
    "id, uuid, type, job_id, body, created_at, attempts, next_attempt_at, delivered_at,"
    " failed_at"
)
_STATES = {
    "pending": "next_attempt_at IS NOT NULL",
    "delivered": "delivered_at IS NOT NULL",
    "failed": "failed_at IS NOT NULL",
}
DELIVERY_STATES: tuple[str, ...] = tuple(_STATES)


def _delivery(row: Row) -> Delivery:
    id_, uuid, type_, job_id, body, *rest = row
    return Delivery(id_, uuid, type_, job_id, bytes(body), *rest)


class WebhookDeliveries:
    def __init__(self, db: Database, clock: Callable[[], float]) -> None:
        self._db = db
        self._clock = clock

    async def add(self, uuid: str, type_: str, job_id: int | None, body: bytes,
                  created_at: float) -> None:
        """Queue a delivery, due at once."""
        await self._db.execute(
            "INSERT INTO webhook_deliveries (uuid, type, job_id, body, created_at,"
            " next_attempt_at) VALUES (?, ?, (SELECT id FROM jobs WHERE id = ?), ?, ?, ?)",
            (uuid, type_, job_id, body, created_at, created_at),
        )

    async def due(self, now: float, limit: int) -> list[Delivery]:
        rows = await self._db.fetchall(
            f"SELECT {_COLUMNS} FROM webhook_deliveries WHERE next_attempt_at <= ?"
            " ORDER BY next_attempt_at, id LIMIT ?",
            (now, limit),
        )
        return [_delivery(r) for r in rows]

    async def next_due_at(self) -> float | None:
        row = await self._db.fetchone("SELECT min(next_attempt_at) FROM webhook_deliveries")
        return None if row is None or row[0] is None else float(row[0])

    async def record_attempt(self, delivery_id: int, attempt: DeliveryAttempt, *,
                             delivered: bool, next_attempt_at: float | None) -> None:
        """Log an attempt and move the delivery on: delivered, due again, or given up."""
        now = self._clock()
        async with self._db.transaction() as tx:
            count = await tx.execute(
                "UPDATE webhook_deliveries SET attempts = ?, next_attempt_at = ?,"
                " delivered_at = ?, failed_at = ? WHERE id = ? AND next_attempt_at IS NOT NULL",
                (attempt.attempt, None if delivered else next_attempt_at,
                 now if delivered else None,
                 now if not delivered and next_attempt_at is None else None, delivery_id),
            )
            if count:  # else the job, and with it the delivery, was erased meanwhile
                await tx.execute(
                    "INSERT INTO webhook_attempts (delivery_id, attempt, started_at,"
                    " duration_ms, status_code, error) VALUES (?, ?, ?, ?, ?, ?)",
                    (delivery_id, attempt.attempt, attempt.started_at, attempt.duration_ms,
                     attempt.status_code, attempt.error),
                )

    async def recent(self, state: str | None = None, limit: int = 50
                     ) -> list[tuple[Delivery, list[DeliveryAttempt]]]:
        """The newest deliveries first, each with its attempts in order."""
        where = f"WHERE {_STATES[state]}" if state is not None else ""
        rows = await self._db.fetchall(
            f"SELECT {_COLUMNS} FROM webhook_deliveries {where}"
            " ORDER BY created_at DESC, id DESC LIMIT ?",
            (limit,),
        )
        deliveries = [_delivery(r) for r in rows]
        attempts: dict[int, list[DeliveryAttempt]] = {d.id: [] for d in deliveries}
        if deliveries:
            marks = ", ".join("?" * len(deliveries))
            for row in await self._db.fetchall(
                "SELECT delivery_id, attempt, started_at, duration_ms, status_code, error"
                f" FROM webhook_attempts WHERE delivery_id IN ({marks})"
                " ORDER BY delivery_id, attempt, id",
                list(attempts),
            ):
                attempts[row[0]].append(DeliveryAttempt(*row[1:]))
        return [(d, attempts[d.id]) for d in deliveries]

    async def prune(self, before: float) -> int:
        """Delete delivered and given-up deliveries created before a time."""
        count = await self._db.execute(
            "DELETE FROM webhook_deliveries WHERE next_attempt_at IS NULL AND created_at < ?",
            (before,),
        )
        return count
