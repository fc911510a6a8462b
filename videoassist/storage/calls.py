"""Calls, their participants and their chat messages."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable

from videoassist.errors import NotFound
from videoassist.storage.db import Database, Row, Transaction
from videoassist.storage.errors import UniqueViolation
from videoassist.storage.records import (
    Call,
    LiveCall,
    LiveParticipant,
    Message,
    Participant,
    Placement,
)

_PARTICIPANT = "id, call_id, role, display_name, user_id, invite_id, joined_at, left_at"
_MESSAGE = (
    "id, job_id, call_id, participant_id, sender_name, sender_role, text, created_at"
)


def _participant(row: Row) -> Participant:
    return Participant(*row)


def _json(value: dict[str, object]) -> str:
    """An event's data as SQLite's json_object wrote it: compact, UTF-8 as is."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


class Calls:
    def __init__(self, db: Database, clock: Callable[[], float]) -> None:
        self._db = db
        self._clock = clock

    async def start(self, job_id: int, node_id: int | None = None) -> int:
        """A new call of the job, held by ``node_id``; the job must have none in
        progress (a unique index says so)."""
        async with self._db.transaction() as tx:
            return await self._start(tx, job_id, node_id, self._clock())

    async def _start(self, tx: Transaction, job_id: int, node_id: int | None,
                     now: float) -> int:
        call_id = await tx.insert(
            "INSERT INTO calls (job_id, started_at, node_id) VALUES (?, ?, ?) RETURNING id",
            (job_id, now, node_id))
        await tx.execute(
            "INSERT INTO events (job_id, call_id, type, created_at) VALUES (?, ?, ?, ?)",
            (job_id, call_id, "call.started", now),
        )
        return call_id

    async def end(self, call_id: int) -> None:
        async with self._db.transaction() as tx:
            await self._end(tx, call_id, self._clock())

    async def _end(self, tx: Transaction, call_id: int, now: float) -> bool:
        """End a call and its participants' presence; whether it was in progress."""
        await tx.execute(
            "UPDATE participants SET left_at = ? WHERE call_id = ? AND left_at IS NULL",
            (now, call_id),
        )
        count = await tx.execute(
            "UPDATE calls SET ended_at = ? WHERE id = ? AND ended_at IS NULL", (now, call_id)
        )
        if count:
            await tx.execute(
                "INSERT INTO events (job_id, call_id, type, created_at)"
                " SELECT job_id, id, 'call.ended', ? FROM calls WHERE id = ?",
                (now, call_id),
            )
        return bool(count)

    async def place(self, job_id: int, node_id: int, heard_after: float, *,
                    spread: bool) -> Placement:
        """The job's call in progress and the node that holds it; with none, a new call
        placed on the least loaded live node (``spread``) or on ``node_id``.

        One transaction, holding the job's placement lock (on SQLite, BEGIN IMMEDIATE
        already makes it the only writer across every process on the database), so two
        nodes placing the same job at once agree; the unique index ``calls_live_job``
        would refuse a second call in progress all the same (a call started without the
        lock, by ``start``, say), and this placement then looks again and finds it. A
        live node heartbeated after ``heard_after``, is not stopped and, to get a new
        call, is not draining; load is its calls in progress, then its connections. A
        call held by a node that is not live is ended here and a new one placed
        (``Placement.ended``).
        """
        try:
            return await self._place(job_id, node_id, heard_after, spread)
        except UniqueViolation:
            return await self._place(job_id, node_id, heard_after, spread)

    async def _place(self, job_id: int, node_id: int, heard_after: float,
                     spread: bool) -> Placement:
        now = self._clock()
        async with self._db.transaction() as tx:
            await tx.lock("place", job_id)
            held = await tx.fetchone(
                "SELECT c.id, n.id, n.address, n.heartbeat_at >= ? AND n.stopped_at IS NULL"
                " FROM calls c LEFT JOIN nodes n ON n.id = c.node_id"
                " WHERE c.job_id = ? AND c.ended_at IS NULL", (heard_after, job_id))
            ended = None
            if held is not None:
                if held[1] is not None and held[3]:
                    return Placement(held[0], held[1], held[2], started=False)
                if await self._end(tx, held[0], now):  # not by a sweep meanwhile
                    ended = held[0]
            target = None
            if spread:
                target = await tx.fetchone(
                    "SELECT n.id, n.address FROM nodes n WHERE n.stopped_at IS NULL"
                    " AND n.draining = 0 AND (n.heartbeat_at >= ? OR n.id = ?) ORDER BY"
                    " (SELECT count(*) FROM calls c WHERE c.node_id = n.id"
                    " AND c.ended_at IS NULL), n.load, n.id = ? DESC, n.id LIMIT 1",
                    (heard_after, node_id, node_id))
            if target is None:
                target = await tx.fetchone("SELECT id, address FROM nodes WHERE id = ?",
                                           (node_id,))
                if target is None:
                    raise NotFound("No such node.")
            call_id = await self._start(tx, job_id, target[0], now)
        return Placement(call_id, target[0], target[1], started=True, ended=ended)

    async def in_progress(self, job_id: int) -> tuple[int, int | None] | None:
        """The job's call in progress and its node, if it has one."""
        row = await self._db.fetchone(
            "SELECT id, node_id FROM calls WHERE job_id = ? AND ended_at IS NULL", (job_id,))
        return None if row is None else (row[0], row[1])

    async def end_held_by(self, node_ids: list[int], unplaced: bool = False) -> list[int]:
        """End the calls in progress held by these nodes (gone), and with ``unplaced``
        those held by no node (left by a server from before nodes); the ids of those
        this ended (not those another process ended meanwhile)."""
        async with self._db.transaction() as tx:
            return await self._end_held_by(tx, node_ids, unplaced, self._clock())

    async def _end_held_by(self, tx: Transaction, node_ids: list[int], unplaced: bool,
                           now: float) -> list[int]:
        marks = ", ".join("?" * len(node_ids)) or "NULL"
        where = f"node_id IN ({marks})" + (" OR node_id IS NULL" if unplaced else "")
        rows = await tx.fetchall(
            f"SELECT id FROM calls WHERE ended_at IS NULL AND ({where}) ORDER BY id",
            node_ids)
        # Each end is conditional (ended_at IS NULL): of several processes ending the
        # same call at once, one ends it, and it alone says so.
        return [row[0] for row in rows if await self._end(tx, row[0], now)]

    async def end_of_silent_nodes(self, heard_before: float, but: int
                                  ) -> tuple[list[int], list[int]]:
        """Take the nodes not heard from since ``heard_before`` for dead (but ``but``,
        the caller): mark them stopped and end their calls, in one transaction. The
        mark is a conditional UPDATE (not stopped yet, still silent): of several nodes
        doing this at once, each silent node is claimed by one, which alone ends its
        calls. (nodes claimed, calls ended)."""
        now = self._clock()
        async with self._db.transaction() as tx:
            rows = await tx.fetchall(
                "UPDATE nodes SET stopped_at = ? WHERE stopped_at IS NULL"
                " AND heartbeat_at < ? AND id <> ? RETURNING id", (now, heard_before, but))
            claimed = sorted(row[0] for row in rows)
            ended = await self._end_held_by(tx, claimed, False, now) if claimed else []
        return claimed, ended

    async def held_by(self, node_id: int, started_before: float) -> list[int]:
        """Calls in progress placed on ``node_id`` that started before then."""
        rows = await self._db.fetchall(
            "SELECT id FROM calls WHERE node_id = ? AND ended_at IS NULL AND started_at < ?"
            " ORDER BY id", (node_id, started_before))
        return [r[0] for r in rows]

    async def ended_among(self, call_ids: set[int]) -> set[int]:
        """Those of these calls that have ended (in the database)."""
        if not call_ids:
            return set()
        marks = ", ".join("?" * len(call_ids))
        rows = await self._db.fetchall(
            f"SELECT id FROM calls WHERE id IN ({marks}) AND ended_at IS NOT NULL",
            sorted(call_ids))
        return {r[0] for r in rows}

    async def get(self, call_id: int) -> Call:
        row = await self._db.fetchone(
            "SELECT id, job_id, started_at, ended_at FROM calls WHERE id = ?", (call_id,)
        )
        if row is None:
            raise NotFound("No such call.")
        return Call(*row)

    async def join(
        self,
        call_id: int,
        role: str,
        display_name: str,
        user_id: int | None,
        invite_id: int | None,
    ) -> Participant:
        now = self._clock()
        async with self._db.transaction() as tx:
            pid = await tx.insert(
                "INSERT INTO participants (call_id, role, display_name, user_id, invite_id,"
                " joined_at) VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
                (call_id, role, display_name, user_id, invite_id, now),
            )
            await tx.execute(
                "INSERT INTO events (job_id, call_id, type, data, created_at)"
                " SELECT job_id, id, 'participant.joined', ?, ? FROM calls WHERE id = ?",
                (_json({"participant": pid, "role": role, "name": display_name}), now,
                 call_id),
            )
            row = await tx.fetchone(f"SELECT {_PARTICIPANT} FROM participants WHERE id = ?", (pid,))
        assert row is not None
        return _participant(row)

    async def leave(self, participant_id: int) -> None:
        now = self._clock()
        async with self._db.transaction() as tx:
            count = await tx.execute(
                "UPDATE participants SET left_at = ? WHERE id = ? AND left_at IS NULL",
                (now, participant_id),
            )
            left = await tx.fetchone(
                "SELECT c.job_id, c.id, p.role, p.display_name FROM participants p"
                " JOIN calls c ON c.id = p.call_id WHERE p.id = ?", (participant_id,))
            if count and left is not None:
                job_id, call_id, role, name = left
                await tx.execute(
                    "INSERT INTO events (job_id, call_id, type, data, created_at)"
                    " VALUES (?, ?, 'participant.left', ?, ?)",
                    (job_id, call_id,
                     _json({"participant": participant_id, "role": role, "name": name}), now),
                )

    async def participants_of_job(self, job_id: int) -> list[Participant]:
        rows = await self._db.fetchall(
            f"SELECT {', '.join('p.' + c.strip() for c in _PARTICIPANT.split(','))}"
            " FROM participants p JOIN calls c ON c.id = p.call_id WHERE c.job_id = ?"
            " ORDER BY p.joined_at, p.id",
            (job_id,),
        )
        return [_participant(r) for r in rows]

    async def calls_of_job(self, job_id: int) -> list[dict[str, float | int | bool | None]]:
        rows = await self._db.fetchall(
            "SELECT id, started_at, ended_at, first_time_fix FROM calls WHERE job_id = ?"
            " ORDER BY started_at, id",
            (job_id,),
        )
        return [{"id": r[0], "started_at": r[1], "ended_at": r[2],
                 "first_time_fix": None if r[3] is None else bool(r[3])} for r in rows]

    async def set_outcome(self, call_id: int, first_time_fix: bool, user_id: int) -> None:
        """Record whether the call's problem was fixed on this visit (the last answer
        counts)."""
        count = await self._db.execute(
            "UPDATE calls SET first_time_fix = ?, outcome_by = ?, outcome_at = ? WHERE id = ?",
            (int(first_time_fix), user_id, self._clock(), call_id),
        )
        if count != 1:
            raise NotFound("No such call.")

    async def was_in(self, call_id: int, user_id: int) -> bool:
        row = await self._db.fetchone(
            "SELECT 1 FROM participants WHERE call_id = ? AND user_id = ? LIMIT 1",
            (call_id, user_id),
        )
        return row is not None

    async def add_message(
        self,
        job_id: int,
        call_id: int | None,
        participant_id: int | None,
        sender_name: str,
        sender_role: str,
        text: str,
    ) -> Message:
        now = self._clock()
        message_id = await self._db.insert(
            "INSERT INTO messages (job_id, call_id, participant_id, sender_name, sender_role,"
            " text, created_at) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
            (job_id, call_id, participant_id, sender_name, sender_role, text, now),
        )
        return Message(message_id, job_id, call_id, participant_id, sender_name, sender_role,
                       text, now)

    async def messages_of_job(self, job_id: int) -> list[Message]:
        rows = await self._db.fetchall(
            f"SELECT {_MESSAGE} FROM messages WHERE job_id = ? ORDER BY created_at, id", (job_id,)
        )
        return [Message(*r) for r in rows]

    async def messages_of_call(self, call_id: int, after_id: int, limit: int) -> list[Message]:
        """The call's chat messages whose id is above ``after_id``: the newest ``limit``
        of them, oldest first."""
        rows = await self._db.fetchall(
            f"SELECT {_MESSAGE} FROM messages WHERE call_id = ? AND id > ?"
            " ORDER BY id DESC LIMIT ?", (call_id, after_id, limit)
        )
        return [Message(*r) for r in reversed(rows)]

    # -- calls in progress, whichever process holds them ------------------------
    #
    # Each process holds its own calls in memory (``signalling.hub``); these read the
    # rows every process writes, so that any process answers for all of them.

    async def live(self) -> list[LiveCall]:
        """The calls in progress, oldest first, each with who is connected to it (who
        joined and has not left), in the order they joined."""
        columns = ", ".join("p." + c.strip() for c in _PARTICIPANT.split(","))
        # One statement, so one consistent read: no participant of a call just ended.
        rows = await self._db.fetchall(
            f"SELECT c.id, c.job_id, j.title, c.started_at, {columns}, p.media_connected"
            " FROM calls c JOIN jobs j ON j.id = c.job_id"
            " LEFT JOIN participants p ON p.call_id = c.id AND p.left_at IS NULL"
            " WHERE c.ended_at IS NULL ORDER BY c.id, p.joined_at, p.id")
        calls: dict[int, tuple[tuple[int, int, str, float], list[LiveParticipant]]] = {}
        for row in rows:
            call_id, job_id, title, started_at = row[0], row[1], row[2], row[3]
            _, people = calls.setdefault(call_id, ((call_id, job_id, title, started_at), []))
            if row[4] is not None:
                people.append(LiveParticipant(Participant(*row[4:12]), bool(row[12])))
        return [LiveCall(*head, tuple(people)) for head, people in calls.values()]

    async def waiting(self, job_ids: Iterable[int]) -> dict[int, float]:
        """Of these jobs, those whose call in progress has a customer in it and no staff
        member: since when (the later of the first such customer's join and the last
        staff member's leaving, in that call)."""
        ids = sorted(set(job_ids))
        if not ids:
            return {}
        marks = ", ".join("?" * len(ids))
        greatest = self._db.dialect.greatest
        rows = await self._db.fetchall(
            f"SELECT c.job_id, {greatest}(min(p.joined_at), coalesce((SELECT max(s.left_at)"
            " FROM participants s WHERE s.call_id = c.id AND s.user_id IS NOT NULL), 0))"
            " FROM calls c JOIN participants p ON p.call_id = c.id"
            f" WHERE c.job_id IN ({marks}) AND c.ended_at IS NULL AND p.left_at IS NULL"
            " AND p.role = 'customer' AND NOT EXISTS (SELECT 1 FROM participants s"
            " WHERE s.call_id = c.id AND s.left_at IS NULL AND s.user_id IS NOT NULL)"
            " GROUP BY c.id, c.job_id", ids)
        return {row[0]: float(row[1]) for row in rows}

    async def users_in_calls(self) -> set[int]:
        """The staff users connected to a call in progress now."""
        rows = await self._db.fetchall(
            "SELECT DISTINCT p.user_id FROM calls c JOIN participants p ON p.call_id = c.id"
            " WHERE c.ended_at IS NULL AND p.left_at IS NULL AND p.user_id IS NOT NULL")
        return {r[0] for r in rows}

    async def connections_of(self, user_id: int | None = None,
                             invite_ids: Iterable[int] = (), since: float | None = None
                             ) -> int:
        """How many connections to calls in progress are a staff user's (``user_id``),
        or came by one of these join links (``invite_ids``); with ``since``, those that
        were at that time count too, though they have left (or their call ended) since:
        a change made then (a disable) may have closed them already, on any node."""
        invites = sorted(set(invite_ids))
        whose = ["p.user_id = ?"] if user_id is not None else []
        if invites:
            whose.append(f"p.invite_id IN ({','.join('?' * len(invites))})")
        if not whose:
            return 0
        live = "c.ended_at IS NULL AND p.left_at IS NULL"
        if since is not None:
            live = ("(c.ended_at IS NULL OR c.ended_at >= ?1) AND (p.left_at IS NULL"
                    " OR p.left_at >= ?1) AND p.joined_at <= ?1")  # the ?s after: 2, 3...
        row = await self._db.fetchone(
            "SELECT count(*) FROM calls c JOIN participants p ON p.call_id = c.id"
            f" WHERE {live} AND ({' OR '.join(whose)})",
            ([] if since is None else [since]) + ([] if user_id is None else [user_id])
            + invites)
        assert row is not None
        return int(row[0])

    async def set_media_connected(self, changed: dict[int, bool]) -> None:
        """Record whose media connection went up or down (participant id: up)."""
        if not changed:
            return
        async with self._db.transaction() as tx:
            for participant_id, up in sorted(changed.items()):
                await tx.execute(
                    "UPDATE participants SET media_connected = ? WHERE id = ?",
                    (int(up), participant_id))
