"""What one process writes of its calls and snapshots in progress, and another reads
and checks: two stores on the same database (a SQLite file, a PostgreSQL database), as
two server processes (workers) have.
Erasing a job is refused while either is in progress, inside the DELETE itself."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from tests.support.databases import Target
from videoassist.errors import Conflict, NotFound
from videoassist.storage import Store
from videoassist.storage.errors import ForeignKeyViolation
from videoassist.storage.snapshots import IN_PROGRESS_MAX_S


@pytest.fixture
async def stores(database: Target) -> AsyncIterator[tuple[Store, Store, list[float]]]:
    """Two stores on one database, one clock."""
    now = [1_000_000.0]
    first = await Store.open(database, clock=lambda: now[0])
    second = await Store.open(database, clock=lambda: now[0])
    yield first, second, now
    await second.close()
    await first.close()


async def test_calls_in_progress_as_another_process_reads_them(
        stores: tuple[Store, Store, list[float]]) -> None:
    holder, other, now = stores
    user = await holder.users.add("dana", "expert", None)
    job = await holder.jobs.create("Boiler", None, None)
    quiet = await holder.jobs.create("Nothing happens", None, None)
    assert (await other.calls.live(), await other.calls.users_in_calls()) == ([], set())

    call_id = await holder.calls.start(job.id)
    now[0] += 1
    expert = await holder.calls.join(call_id, "expert", "dana", user.id, None)
    now[0] += 1
    link = await holder.invites.create_join(b"l" * 32, job.id, "customer", 60, user.id)
    unused = await holder.invites.create_join(b"u" * 32, job.id, "customer", 60, user.id)
    customer = await holder.calls.join(call_id, "customer", "Customer", None, link.id)
    await holder.calls.set_media_connected({customer.id: True})
    [call] = await other.calls.live()
    assert (call.id, call.job_id, call.job_title) == (call_id, job.id, "Boiler")
    assert [(p.participant.id, p.media_connected) for p in call.participants] == [
        (expert.id, False), (customer.id, True)]
    assert await other.calls.users_in_calls() == {user.id}
    assert await other.calls.connections_of(user_id=user.id) == 1
    assert await other.calls.connections_of(invite_ids={link.id, unused.id}) == 1
    assert await other.calls.connections_of(invite_ids={unused.id}) == 0
    assert await other.calls.connections_of(user_id=user.id, invite_ids={link.id}) == 2
    assert await other.calls.connections_of() == 0
    assert quiet.id not in {c.job_id for c in await other.calls.live()}

    await holder.calls.leave(expert.id)
    [call] = await other.calls.live()
    assert [p.participant.id for p in call.participants] == [customer.id]
    assert await other.calls.users_in_calls() == set()
    await holder.calls.end(call_id)
    assert await other.calls.live() == []
    assert await other.calls.connections_of(invite_ids={link.id}) == 0


async def test_a_job_is_not_erased_while_another_process_holds_its_call(
        stores: tuple[Store, Store, list[float]]) -> None:
    holder, other, _ = stores
    job = await holder.jobs.create("Boiler", None, None)
    call_id = await holder.calls.start(job.id)
    with pytest.raises(Conflict, match="call of this job is in progress"):
        await other.jobs.delete(job.id)
    assert (await other.jobs.get(job.id)).id == job.id  # nothing erased
    await holder.calls.end(call_id)
    assert await other.jobs.delete(job.id) == []
    with pytest.raises(NotFound):
        await other.jobs.delete(job.id)
    # Erased first, the job takes no call any more: the call's row needs the job's.
    with pytest.raises(ForeignKeyViolation):
        await holder.calls.start(job.id)


async def test_a_job_is_not_erased_while_another_process_makes_a_snapshot_of_it(
        stores: tuple[Store, Store, list[float]]) -> None:
    holder, other, now = stores
    job = await holder.jobs.create("Boiler", None, None)
    mark = await holder.snapshots.begin(job.id)
    assert await other.snapshots.in_progress(job.id)
    with pytest.raises(Conflict, match="snapshot of this job is being saved"):
        await other.jobs.delete(job.id)
    await holder.snapshots.done(mark)
    assert not await other.snapshots.in_progress(job.id)

    # A mark whose process died (it was never done) stops counting after a while.
    await holder.snapshots.begin(job.id)
    now[0] += IN_PROGRESS_MAX_S - 1
    with pytest.raises(Conflict):
        await other.jobs.delete(job.id)
    now[0] += 2
    assert not await other.snapshots.in_progress(job.id)
    assert await other.jobs.delete(job.id) == []
    assert await other.db.fetchall("SELECT * FROM snapshots_in_progress") == []
    # Erased first, no snapshot of it begins.
    with pytest.raises(NotFound):
        await holder.snapshots.begin(job.id)


async def test_erasing_and_starting_a_call_at_once_never_leave_a_call_without_its_job(
        stores: tuple[Store, Store, list[float]]) -> None:
    """Each round, one process starts a call of a job while the other erases it: either
    the erase is refused and the call runs, or the job is gone and the call never
    started. Never both, never neither."""
    holder, other, _ = stores
    for _ in range(20):
        job = await holder.jobs.create("Boiler", None, None)
        started, erased = await asyncio.gather(holder.calls.start(job.id),
                                               other.jobs.delete(job.id),
                                               return_exceptions=True)
        if isinstance(erased, Conflict):
            assert isinstance(started, int), started
            assert [c.id for c in await other.calls.live()] == [started]
            await holder.calls.end(started)
        else:
            assert erased == [], erased
            assert isinstance(started, ForeignKeyViolation), started
        assert await other.calls.live() == []


async def test_erasing_and_beginning_a_snapshot_at_once_never_lose_it_silently(
        stores: tuple[Store, Store, list[float]]) -> None:
    """Each round, one process begins a snapshot of a job while the other erases it:
    either the erase is refused until the snapshot is done, or the snapshot is refused
    (NotFound) because the job is gone."""
    holder, other, _ = stores
    for _ in range(20):
        job = await holder.jobs.create("Boiler", None, None)
        begun, erased = await asyncio.gather(holder.snapshots.begin(job.id),
                                             other.jobs.delete(job.id),
                                             return_exceptions=True)
        if isinstance(erased, Conflict):
            assert isinstance(begun, int), begun
            await holder.snapshots.done(begun)
            assert await other.jobs.delete(job.id) == []
        else:
            assert erased == [], erased
            assert isinstance(begun, NotFound), begun
        assert await other.db.fetchall("SELECT * FROM snapshots_in_progress") == []
