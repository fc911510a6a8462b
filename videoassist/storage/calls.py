"""Calls, their participants and their chat messages."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import aiosqlite

from videoassist.errors import NotFound
from videoassist.storage.db import Database
from videoassist.storage.records import Call, LiveCall, LiveParticipant, Message, Participant

_PARTICIPANT = "id, call_id, role, display_name, user_id, invite_id, joined_at, left_at"
_MESSAGE = (
    "id, job_id, call_id, participant_id, sender_name, sender_role, text, created_at"
)


def _participant(row: aiosqlite.Row) -> Participant:
    return Participant(*row)


class Calls:
    def __init__(self, db: Database, clock: Callable[[], float]) -> None:
        self._db = db
        self._clock = clock

    async def start(self, job_id: int) -> int:
        now = self._clock()
        async with self._db.transaction() as tx:
            _, call_id = await tx.execute(
                "INSERT INTO calls (job_id, started_at) VALUES (?, ?)", (job_id, now)
            )
            await tx.execute(
                "INSERT INTO events (job_id, call_id, type, created_at) VALUES (?, ?, ?, ?)",
                (job_id, call_id, "call.started", now),
            )
        assert call_id is not None
        return call_id

    async def end(self, call_id: int) -> None:
        now = self._clock()
        async with self._db.transaction() as tx:
            await tx.execute(
                "UPDATE participants SET left_at = ? WHERE call_id = ? AND left_at IS NULL",
                (now, call_id),
            )
            count, _ = await tx.execute(
                "UPDATE calls SET ended_at = ? WHERE id = ? AND ended_at IS NULL", (now, call_id)
            )
            if count:
                await tx.execute(
                    "INSERT INTO events (job_id, call_id, type, created_at)"
                    " SELECT job_id, id, 'call.ended', ? FROM calls WHERE id = ?",
                    (now, call_id),
                )

    async def get(self, call_id: int) -> Call:
        row = await self._db.fetchone(
            "SELECT id, job_id, started_at, ended_at FROM calls WHERE id = ?", (call_id,)
        )
        if row is None:
            raise NotFound("No such call.")
        return Call(*row)

    async def end_all_open(self) -> list[int]:
        """Close calls left open by a previous process (crash, kill); return their ids."""
        rows = await self._db.fetchall("SELECT id FROM calls WHERE ended_at IS NULL")
        for row in rows:
            await self.end(row[0])
        return [row[0] for row in rows]

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
            _, pid = await tx.execute(
                "INSERT INTO participants (call_id, role, display_name, user_id, invite_id,"
                " joined_at) VALUES (?, ?, ?, ?, ?, ?)",
                (call_id, role, display_name, user_id, invite_id, now),
            )
            await tx.execute(
                "INSERT INTO events (job_id, call_id, type, data, created_at)"
                " SELECT job_id, id, 'participant.joined', json_object('participant', ?,"
                " 'role', ?, 'name', ?), ? FROM calls WHERE id = ?",
                (pid, role, display_name, now, call_id),
            )
            row = await tx.fetchone(f"SELECT {_PARTICIPANT} FROM participants WHERE id = ?", (pid,))
        assert row is not None
        return _participant(row)

    async def leave(self, participant_id: int) -> None:
        now = self._clock()
        async with self._db.transaction() as tx:
            count, _ = await tx.execute(
                "UPDATE participants SET left_at = ? WHERE id = ? AND left_at IS NULL",
                (now, participant_id),
            )
            if count:
                await tx.execute(
                    "INSERT INTO events (job_id, call_id, type, data, created_at)"
                    " SELECT c.job_id, c.id, 'participant.left', json_object('participant', p.id,"
                    " 'role', p.role, 'name', p.display_name), ?"
                    " FROM participants p JOIN calls c ON c.id = p.call_id WHERE p.id = ?",
                    (now, participant_id),
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
        count, _ = await self._db.execute(
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
        _, message_id = await self._db.execute(
            "INSERT INTO messages (job_id, call_id, participant_id, sender_name, sender_role,"
            " text, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (job_id, call_id, participant_id, sender_name, sender_role, text, now),
        )
        assert message_id is not None
        return Message(message_id, job_id, call_id, participant_id, sender_name, sender_role,
                       text, now)

    async def messages_of_job(self, job_id: int) -> list[Message]:
        rows = await self._db.fetchall(
            f"SELECT {_MESSAGE} FROM messages WHERE job_id = ? ORDER BY created_at, id", (job_id,)
        )
        return [Message(*r) for r in rows]

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

    async def users_in_calls(self) -> set[int]:
        """The staff users connected to a call in progress now."""
        rows = await self._db.fetchall(
            "SELECT DISTINCT p.user_id FROM calls c JOIN participants p ON p.call_id = c.id"
            " WHERE c.ended_at IS NULL AND p.left_at IS NULL AND p.user_id IS NOT NULL")
        return {r[0] for r in rows}

    async def connections_of(self, user_id: int | None = None,
                             invite_ids: Iterable[int] = ()) -> int:
        """How many connections to calls in progress are a staff user's (``user_id``),
        or came by one of these join links (``invite_ids``)."""
        invites = sorted(set(invite_ids))
        whose = ["p.user_id = ?"] if user_id is not None else []
        if invites:
            whose.append(f"p.invite_id IN ({','.join('?' * len(invites))})")
        if not whose:
            return 0
        row = await self._db.fetchone(
            "SELECT count(*) FROM calls c JOIN participants p ON p.call_id = c.id"
            f" WHERE c.ended_at IS NULL AND p.left_at IS NULL AND ({' OR '.join(whose)})",
            ([] if user_id is None else [user_id]) + invites)
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
