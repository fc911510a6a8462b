"""PostgreSQL's session locks (``Database.session_lock``): held by one connection at a
time, released when it ends, and lost with it."""

from __future__ import annotations

import asyncio

import asyncpg

from videoassist.storage import open_database


async def test_one_connection_holds_the_lock_until_it_ends(postgresql_database: str) -> None:
    first, second = await open_database(postgresql_database), await open_database(
        postgresql_database)
    try:
        assert first.session_locks and second.session_locks
        async with first.session_lock("duties", "videoassist test one") as held:
            assert held is not None
            async with second.session_lock("duties", "videoassist test two") as refused:
                assert refused is None
            async with second.session_lock("other", "videoassist test two") as other:
                assert other is not None  # another name, another lock
        async with second.session_lock("duties", "videoassist test two") as taken:
            assert taken is not None
    finally:
        await first.close()
        await second.close()


async def test_the_lock_is_lost_with_its_connection(postgresql_database: str) -> None:
    db = await open_database(postgresql_database)
    admin = await asyncpg.connect(postgresql_database)
    try:
        async with db.session_lock("duties", "videoassist test holder") as held:
            assert held is not None
            lost = asyncio.create_task(held.lost())
            await asyncio.sleep(0.3)
            assert not lost.done()  # still held
            await admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                                " WHERE application_name = 'videoassist test holder'")
            async with asyncio.timeout(10):
                await lost
        # Released by the server: another session takes it.
        async with db.session_lock("duties", "videoassist test next") as again:
            assert again is not None
    finally:
        await admin.close()
        await db.close()
