"""A job's whole record through the store, on SQLite and PostgreSQL alike: a call with
a customer who came by link and an expert, chat, a snapshot and a second version of it,
notes, the timeline, the dashboard's figures, search, retention and erasure. The SQL
that differs between the two (days of calls, case-insensitive search, JSON of events,
ids that are never reused) gives the same answers on both."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.support.databases import Target
from videoassist.errors import Conflict, NotFound
from videoassist.storage import Store
from videoassist.storage.records import Author
from videoassist.storage.snapshots import NewImage, WrappedKey

DAY = 86400.0
T0 = 1_767_225_600.0  # 2026-01-01 00:00 UTC


@pytest.fixture
async def store(database: Target) -> AsyncIterator[tuple[Store, list[float]]]:
    now = [T0 + 9 * 3600]
    opened = await Store.open(database, clock=lambda: now[0])
    yield opened, now
    await opened.close()


def image(tag: bytes) -> NewImage:
    return NewImage(b"sealed:" + tag, "ab" * 32, 1234, 640, 480)


async def test_a_jobs_record_and_its_figures(store: tuple[Store, list[float]]) -> None:
    s, now = store
    ann = await s.users.add("ann", "expert", "hash")
    job = await s.jobs.create("Boiler 100% broken_down", "WO-7", ann.id)
    link = await s.invites.create_join(b"j" * 32, job.id, "customer", 3600, ann.id)
    now[0] += 60
    assert (await s.invites.redeem(b"j" * 32, "join")).id == link.id
    call_id = await s.calls.start(job.id)
    customer = await s.calls.join(call_id, "customer", "Zoë", None, link.id)
    expert = await s.calls.join(call_id, "expert", "ann", ann.id, None)
    await s.calls.add_message(job.id, call_id, customer.id, "Zoë", "customer", "It leaks")
    await s.snapshots.add_job_key(job.id, WrappedKey("k1", b"wrapped"))
    first = await s.snapshots.add(job.id, call_id, image(b"frame"), now[0], image(b"one"),
                                  Author("ann", "expert", expert.id, ann.id),
                                  Author("Zoë", "customer", customer.id), [{"t": "arrow"}])
    second = await s.snapshots.add_version(first, image(b"two"), Author("ann", "expert"),
                                           [], "Here")
    assert (second.version, second.original_id, second.id) == (2, first.id, first.id + 1)
    assert await s.snapshots.sealed_image(second.id) == b"sealed:two"
    await s.jobs.add_note(job.id, ann.id, "ann", "Replace the valve")
    now[0] += 300
    await s.calls.leave(customer.id)
    await s.calls.end(call_id)
    await s.calls.set_outcome(call_id, True, ann.id)
    now[0] += DAY  # a second call the next day, not fixed; a third still going
    other = await s.jobs.create("Radiator", None, None)
    second_call = await s.calls.start(other.id)
    now[0] += 600
    await s.calls.end(second_call)
    await s.calls.set_outcome(second_call, False, ann.id)
    now[0] += DAY
    await s.calls.start(other.id)

    assert [(e["type"], e["data"]) for e in await s.jobs.events(job.id)] == [
        ("job.created", {"by": ann.id}), ("call.started", {}),
        ("participant.joined", {"participant": customer.id, "role": "customer",
                                "name": "Zoë"}),
        ("participant.joined", {"participant": expert.id, "role": "expert", "name": "ann"}),
        ("snapshot.saved", {"snapshot": first.id, "version": 1}),
        ("snapshot.annotated", {"snapshot": second.id, "original": first.id, "version": 2}),
        ("participant.left", {"participant": customer.id, "role": "customer", "name": "Zoë"}),
        ("call.ended", {})]  # the expert was still in: the end says it
    assert [m.text for m in await s.calls.messages_of_job(job.id)] == ["It leaks"]
    assert [n.text for n in await s.jobs.notes(job.id)] == ["Replace the valve"]
    assert [j.id for j in await s.jobs.list(q="100%")] == [job.id]  # % is no wildcard
    assert [j.id for j in await s.jobs.list(q="BROKEN_DOWN")] == [job.id]  # case ignored
    assert [j.id for j in await s.jobs.list(q="wo-")] == [job.id]
    assert await s.jobs.list(q="k_n") == []  # _ is no wildcard: "broken" has "ken"

    figures = await s.analytics.summary(T0, T0 + 3 * DAY)
    assert figures["calls_per_day"] == [{"day": "2026-01-01", "calls": 1},
                                        {"day": "2026-01-02", "calls": 1},
                                        {"day": "2026-01-03", "calls": 1}]
    assert figures["calls"] == {"total": 3, "ended": 2}
    assert figures["duration_s"] == {"count": 2, "median": 450.0, "p95": 600.0}
    assert figures["invite_to_join_s"] == {"count": 1, "median": 60.0, "p95": 60.0}
    assert figures["invites"]["customer"] == {"created": 1, "redeemed": 1, "open": 0,
                                              "redeemed_share": 1.0}
    assert figures["snapshots"] == {"total": 1, "per_call": 1 / 3}
    assert figures["people"] == [{"user_id": ann.id, "username": "ann", "role": "expert",
                                  "calls": 1}]
    assert figures["first_time_fix"] == {"yes": 1, "no": 1, "unanswered": 1, "rate": 0.5}

    # Retention: the first job's record is past 1 day, the other's is kept.
    await s.jobs.set_retention(job.id, 1)
    counts, purged = await s.jobs.purge(now[0], None)
    # "names": Zoë, who came by a link, is "Customer" in the call's record from now on.
    assert (counts, purged) == ({"snapshots": 1, "messages": 1, "events": 8, "names": 1},
                                [first.id, second.id])
    with pytest.raises(Conflict):  # the third call is in progress
        await s.jobs.delete(other.id)
    assert await s.jobs.delete(job.id) == []
    with pytest.raises(NotFound):
        await s.jobs.get(job.id)
    # Ids of erased jobs and snapshots are never given again.
    newest = await s.jobs.create("After", None, None)
    assert newest.id == other.id + 1
    await s.jobs.close(other.id, None)
    later = await s.jobs.create("Later", None, None)
    assert later.id == newest.id + 1
