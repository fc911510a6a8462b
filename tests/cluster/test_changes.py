"""The database's change notifications (migration 9), heard the way a node hears them
(``Database.listen``), on a real PostgreSQL database; SQLite has none.

Every change that decides who may stay in a call is notified once committed, whoever
makes it (the store of another process, or a statement of the database's owner), and
never when it is rolled back; other writes to the same rows are not. The listening
connection carries the name it was given, and its loss is seen at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest

from tests.support.databases import Target, raw_execute
from videoassist.storage import Store
from videoassist.storage.db import Listening
from videoassist.storage.errors import DatabaseError

NAME = "videoassist-listen test"


class Heard:
    """The notifications one listening connection received, in order."""

    def __init__(self) -> None:
        self.changes: list[tuple[str, int]] = []
        self._new = asyncio.Event()

    def __call__(self, table: str, row: int) -> None:
        self.changes.append((table, row))
        self._new.set()

    async def next(self, timeout: float = 2.0) -> tuple[str, int]:
        async with asyncio.timeout(timeout):
            while not self.changes:
                self._new.clear()
                await self._new.wait()
        return self.changes.pop(0)

    async def nothing(self, quiet_s: float = 0.3) -> None:
        await asyncio.sleep(quiet_s)
        assert self.changes == []


@pytest.fixture
async def store(database: Target) -> AsyncIterator[Store]:
    opened = await Store.open(database)
    yield opened
    await opened.close()


async def test_every_change_to_who_may_stay_is_notified_once_committed(
        store: Store, database: Target) -> None:
    heard = Heard()
    listening = await store.db.listen(heard, NAME)
    if store.db.dialect.name == "sqlite":
        assert listening is None  # one machine: its processes poll
        return
    assert isinstance(listening, Listening)
    writer = await Store.open(database)  # another node's store
    try:
        user = await writer.users.add("tech", "technician")
        job = await writer.jobs.create("Boiler", None, None)
        invite = await writer.invites.create_join(b"h" * 32, job.id, "customer", 600, user.id)
        key = await writer.api_keys.create(b"k" * 32, "crm", "abcd", ("jobs",), None)
        call = await writer.calls.start(job.id)
        await heard.nothing()  # creating rows tells nobody anything

        await writer.users.set_disabled(user.id, True)
        assert await heard.next() == ("users", user.id)
        await writer.users.set_disabled(user.id, False)
        assert await heard.next() == ("users", user.id)
        await writer.users.set_role(user.id, "expert")  # signed out everywhere
        assert await heard.next() == ("users", user.id)
        await writer.users.clear_password(user.id)
        assert await heard.next() == ("users", user.id)
        await writer.jobs.close(job.id, None)
        assert await heard.next() == ("jobs", job.id)
        await writer.invites.revoke_created_by(user.id)
        assert await heard.next() == ("invites", invite.id)
        await writer.api_keys.revoke(key.id)
        assert await heard.next() == ("api_keys", key.id)
        await writer.calls.end(call)
        assert await heard.next() == ("calls", call)

        # Writes that change nothing of that kind are not notified.
        await writer.api_keys.touch(key.id)
        await writer.jobs.set_retention(job.id, 30)
        await writer.calls.end(call)  # already ended
        await heard.nothing()

        # A statement of the database's owner is notified too; a rollback never is.
        other = await writer.jobs.create("Pump", None, None)
        await raw_execute(database, f"UPDATE jobs SET status = 'closed' WHERE id = {other.id}")
        assert await heard.next() == ("jobs", other.id)
        with pytest.raises(RuntimeError):
            async with writer.db.transaction() as tx:
                await tx.execute("UPDATE users SET disabled_at = 1 WHERE id = ?", (user.id,))
                raise RuntimeError("rolled back")
        await heard.nothing()
    finally:
        await writer.close()
        await listening.close()


async def test_the_listening_connection_is_named_and_its_loss_seen_at_once(
        store: Store, database: Target) -> None:
    if store.db.dialect.name == "sqlite":
        pytest.skip("SQLite has no notifications")
    listening = await store.db.listen(Heard(), NAME)
    assert listening is not None
    lost = asyncio.create_task(listening.lost())
    conn = await asyncpg.connect(str(database))
    try:
        [pid] = [r[0] for r in await conn.fetch(
            "SELECT pid FROM pg_stat_activity WHERE application_name = $1", NAME)]
        await asyncio.sleep(0.2)
        assert not lost.done()  # it answers: nothing is lost
        await conn.execute("SELECT pg_terminate_backend($1)", pid)
        async with asyncio.timeout(1.0):
            assert await lost == "the connection was closed"
    finally:
        await conn.close()
        await listening.close()
    # A database it cannot reach is said so, password left out.
    url = str(database).replace("postgres@", "postgres:secret@").rsplit(":", 1)[0] + ":1/x"
    with pytest.raises(DatabaseError, match="cannot connect to") as refused:
        await store.db.listen(Heard(), NAME, url)
    assert "secret" not in str(refused.value)
