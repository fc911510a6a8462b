"""Outgoing webhook deliveries and the log of their attempts.

A delivery is due while ``next_attempt_at`` is set and not in the future; it stops
being due when it is delivered or its last allowed attempt fails. Rows outlive the
process, so deliveries pending at shutdown go out after the next start.

Every node may send deliveries: a node ``claim``s due ones for a lease (``claimed_by``,
``lease_until``), which takes each for one node only (rows locked by another node's
claim are skipped, ``FOR UPDATE SKIP LOCKED``), records its attempt before making it,
and ``finish``es it. A node that dies mid-attempt leaves its claims to expire; the next
node to claim the delivery records that attempt as lost and makes the next one.

Two channels share the queue: ``WEBHOOK`` (the server's events) and ``NOTIFY`` (join
links for a company's SMS or mail gateway, ``videoassist.notify``), each with its own
limit of attempts. A notify delivery's body is sealed, and emptied once the delivery
is finished: the recipient's address and the link are kept no longer than needed.
The delivery log (``recent``) lists one channel at a time.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping

from videoassist.storage.db import Database, Row, Transaction
from videoassist.storage.records import Delivery, DeliveryAttempt

_COLUMNS = (
    "id, uuid, type, job_id, body, created_at, attempts, next_attempt_at, delivered_at,"
    " failed_at, channel, invite_id"
)
WEBHOOK = "webhook"  # the server's events, to the webhook URL
NOTIFY = "notify"  # join links, to the notify webhook (a company's SMS or mail gateway)
_STATES = {
    "pending": "next_attempt_at IS NOT NULL",
    "delivered": "delivered_at IS NOT NULL",
    "failed": "failed_at IS NOT NULL",
}
DELIVERY_STATES: tuple[str, ...] = tuple(_STATES)
# The error of an attempt that has begun and not ended yet.
IN_PROGRESS = "in progress"
# Of an attempt whose node claimed the delivery and did not finish before its lease
# ended (it died, or stalled): the receiver may or may not have had it.
LOST = "lost: its node did not finish it"
# Of an attempt cut short by its node stopping.
INTERRUPTED = "interrupted: its node stopped"


def _delivery(row: Row) -> Delivery:
    id_, uuid, type_, job_id, body, *rest = row
    return Delivery(id_, uuid, type_, job_id, bytes(body), *rest)


class WebhookDeliveries:
    def __init__(self, db: Database, clock: Callable[[], float]) -> None:
        self._db = db
        self._clock = clock

    async def add(self, uuid: str, type_: str, job_id: int | None, body: bytes,
                  created_at: float, channel: str = WEBHOOK,
                  invite_id: int | None = None) -> None:
        """Queue a delivery, due at once."""
        await self._db.execute(
            "INSERT INTO webhook_deliveries (uuid, type, job_id, body, created_at,"
            " next_attempt_at, channel, invite_id)"
            " VALUES (?, ?, (SELECT id FROM jobs WHERE id = ?), ?, ?, ?, ?, ?)",
            (uuid, type_, job_id, body, created_at, created_at, channel, invite_id),
        )

    async def claim(self, node_id: int, now: float, lease_s: float,
                    max_attempts: Mapping[str, int], limit: int) -> list[Delivery]:
        """Take up to ``limit`` due deliveries of the channels ``max_attempts`` names
        (channel: its limit of attempts) for node ``node_id``, for ``lease_s``:
        each comes back with its ``attempts`` counting the attempt about to be made,
        recorded already as 'in progress' by this node. No other node is given them
        until the lease ends (``finish`` or ``release`` ends it sooner).

        A due delivery still claimed is one whose node died, or stalled past its lease,
        mid-attempt: that attempt is recorded as ``LOST``, and the delivery is given up
        if it was its last allowed one, else taken as the next attempt. Rows other
        nodes are claiming at the same time are passed over (``SKIP LOCKED``), not
        waited for."""
        claimed: list[Delivery] = []
        if not max_attempts:
            return claimed
        async with self._db.transaction() as tx:
            rows = await tx.fetchall(
                "SELECT id, attempts, claimed_by, channel FROM webhook_deliveries"
                f" WHERE next_attempt_at <= ? AND channel IN ({_marks(max_attempts)})"
                f" ORDER BY next_attempt_at, id LIMIT ?{tx.dialect.skip_locked}",
                (now, *max_attempts, limit))
            for delivery_id, attempts, claimed_by, channel in rows:
                if claimed_by is not None:  # its node never finished the attempt
                    await self._end_attempt(tx, delivery_id, attempts, claimed_by, now,
                                            None, LOST)
                if attempts >= max_attempts[channel]:
                    await tx.execute(
                        "UPDATE webhook_deliveries SET next_attempt_at = NULL,"
                        " failed_at = ?, claimed_by = NULL, lease_until = NULL WHERE id = ?",
                        (now, delivery_id))
                    await self._empty_if_notify(tx, delivery_id)
                    continue
                row = await tx.fetchone(
                    "UPDATE webhook_deliveries SET attempts = attempts + 1, claimed_by = ?,"
                    " lease_until = ?2, next_attempt_at = ?2 WHERE id = ?"
                    f" RETURNING {_COLUMNS}",
                    (node_id, now + lease_s, delivery_id))
                assert row is not None
                delivery = _delivery(row)
                await tx.execute(
                    "INSERT INTO webhook_attempts (delivery_id, attempt, started_at,"
                    " duration_ms, status_code, error, node_id) VALUES (?, ?, ?, 0, NULL, ?, ?)",
                    (delivery_id, delivery.attempts, now, IN_PROGRESS, node_id))
                claimed.append(delivery)
        return claimed

    @staticmethod
    async def _end_attempt(tx: Transaction, delivery_id: int, attempt: int, node_id: int,
                           now: float, status_code: int | None, error: str | None,
                           duration_ms: int | None = None, was: str = IN_PROGRESS) -> None:
        """Write how an attempt recorded as ``was`` (in progress) ended."""
        await tx.execute(
            "UPDATE webhook_attempts SET status_code = ?, error = ?,"
            " duration_ms = coalesce(?, CAST(round((? - started_at) * 1000) AS INTEGER))"
            " WHERE delivery_id = ? AND attempt = ? AND node_id = ? AND error IN (?, ?)",
            (status_code, error, duration_ms, now, delivery_id, attempt, node_id,
             IN_PROGRESS, was))

    @staticmethod
    async def _empty_if_notify(tx: Transaction, delivery_id: int) -> None:
        """A finished notify delivery's body (sealed: an address and a link) is kept no
        longer: what is left is where it stands and its attempts."""
        await tx.execute("UPDATE webhook_deliveries SET body = ? WHERE id = ? AND channel = ?",
                         (b"", delivery_id, NOTIFY))

    async def next_due_at(self, channels: Collection[str]) -> float | None:
        """When a delivery of one of ``channels`` is next due: pending, or claimed by a
        node until then."""
        if not channels:
            return None
        row = await self._db.fetchone(
            "SELECT min(next_attempt_at) FROM webhook_deliveries"
            f" WHERE channel IN ({_marks(channels)})", tuple(channels))
        return None if row is None or row[0] is None else float(row[0])

    async def finish(self, delivery_id: int, node_id: int, attempt: DeliveryAttempt, *,
                     delivered: bool, next_attempt_at: float | None) -> bool:
        """Write how node ``node_id``'s claimed attempt went, and move the delivery on:
        delivered, due again at ``next_attempt_at``, or given up (None). False if the
        claim was no longer this node's (its lease ended and another node took the
        delivery over, or the job was erased): the attempt is written all the same."""
        now = self._clock()
        async with self._db.transaction() as tx:
            # An attempt taken for lost that ends after all is written as it ended.
            await self._end_attempt(tx, delivery_id, attempt.attempt, node_id, now,
                                    attempt.status_code, attempt.error, attempt.duration_ms,
                                    was=LOST)
            count = await tx.execute(
                "UPDATE webhook_deliveries SET next_attempt_at = ?, delivered_at = ?,"
                " failed_at = ?, claimed_by = NULL, lease_until = NULL"
                " WHERE id = ? AND claimed_by = ? AND attempts = ?",
                (None if delivered else next_attempt_at, now if delivered else None,
                 now if not delivered and next_attempt_at is None else None,
                 delivery_id, node_id, attempt.attempt))
            if count and (delivered or next_attempt_at is None):
                await self._empty_if_notify(tx, delivery_id)
        return count > 0

    async def release(self, node_id: int, claims: dict[int, int]) -> None:
        """Give back the deliveries node ``node_id`` claimed (id: attempt number) and
        cannot finish (it is stopping): each attempt is recorded as ``INTERRUPTED`` (the
        receiver may have had it), and the delivery is due again at once."""
        now = self._clock()
        async with self._db.transaction() as tx:
            for delivery_id, attempt in claims.items():
                await self._end_attempt(tx, delivery_id, attempt, node_id, now, None,
                                        INTERRUPTED)
                await tx.execute(
                    "UPDATE webhook_deliveries SET next_attempt_at = ?, claimed_by = NULL,"
                    " lease_until = NULL WHERE id = ? AND claimed_by = ? AND attempts = ?",
                    (now, delivery_id, node_id, attempt))

    async def recent(self, state: str | None = None, limit: int = 50,
                     channel: str = WEBHOOK) -> list[tuple[Delivery, list[DeliveryAttempt]]]:
        """The newest deliveries of ``channel`` first, each with its attempts in order."""
        where = f" AND {_STATES[state]}" if state is not None else ""
        rows = await self._db.fetchall(
            f"SELECT {_COLUMNS} FROM webhook_deliveries WHERE channel = ?{where}"
            " ORDER BY created_at DESC, id DESC LIMIT ?",
            (channel, limit),
        )
        deliveries = [_delivery(r) for r in rows]
        attempts: dict[int, list[DeliveryAttempt]] = {d.id: [] for d in deliveries}
        if deliveries:
            marks = ", ".join("?" * len(deliveries))
            for row in await self._db.fetchall(
                "SELECT delivery_id, attempt, started_at, duration_ms, status_code, error,"
                f" node_id FROM webhook_attempts WHERE delivery_id IN ({marks})"
                " ORDER BY delivery_id, attempt, id",
                list(attempts),
            ):
                attempts[row[0]].append(DeliveryAttempt(*row[1:]))
        return [(d, attempts[d.id]) for d in deliveries]

    async def prune(self, before: float) -> int:
        """Delete delivered and given-up deliveries created before a time, of both
        channels."""
        count = await self._db.execute(
            "DELETE FROM webhook_deliveries WHERE next_attempt_at IS NULL AND created_at < ?",
            (before,),
        )
        return count


def _marks(values: Collection[str]) -> str:
    return ", ".join("?" * len(values))
