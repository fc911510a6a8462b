"""Placing calls on nodes through the database: two connections to one database (a
SQLite file, a PostgreSQL database), as two workers have, placing the same jobs at
once."""

from __future__ import annotations

import asyncio
import itertools

from tests.support.databases import Target
from videoassist.storage import Store

JOBS = 12
ROUNDS = 4


async def test_two_workers_placing_the_same_jobs_at_once_agree(database: Target) -> None:
    first = await Store.open(database)
    second = await Store.open(database)
    try:
        jobs = [(await first.jobs.create(f"Job {i}", None, None)).id for i in range(JOBS)]
        node_a = await first.nodes.register("here", 1, 0, "127.0.0.1:1")
        node_b = await second.nodes.register("here", 2, 1, "127.0.0.1:2")
        heard_after = 0.0

        async def worker(store: Store, node: int) -> list[tuple[int, int, int]]:
            placed = []
            for _, job in itertools.product(range(ROUNDS), jobs):
                p = await store.calls.place(job, node, heard_after, spread=True)
                placed.append((job, p.call_id, p.node_id))
                # Reads and heartbeats in between, as a worker's other tasks do.
                await store.nodes.live(heard_after)
                await store.nodes.heartbeat(node, len(placed))
            return placed

        results = await asyncio.gather(
            *(worker(store, node) for store, node in ((first, node_a), (second, node_b))
              for _ in range(3)))
        by_job: dict[int, set[tuple[int, int]]] = {}
        for placed in results:
            for job, call_id, node_id in placed:
                by_job.setdefault(job, set()).add((call_id, node_id))
        # One call per job, on one node, whoever asked; spread over both nodes.
        assert all(len(calls) == 1 for calls in by_job.values()), by_job
        holders = [node for calls in by_job.values() for _, node in calls]
        assert sorted(holders.count(n) for n in (node_a, node_b)) == [JOBS // 2, JOBS // 2]
        for job in jobs:
            assert await first.calls.in_progress(job) == next(iter(by_job[job]))
    finally:
        await first.close()
        await second.close()


async def test_a_call_held_by_a_silent_node_is_ended_and_placed_again(
        database: Target) -> None:
    now = [1000.0]
    store = await Store.open(database, clock=lambda: now[0])
    try:
        job = (await store.jobs.create("Job", None, None)).id
        silent = await store.nodes.register("there", 1, 0, "10.0.0.1:1")
        now[0] += 60
        live = await store.nodes.register("here", 2, 0, "127.0.0.1:2")
        first = await store.calls.place(job, silent, 0.0, spread=False)
        assert (first.node_id, first.started) == (silent, True)
        again = await store.calls.place(job, live, now[0] - 30, spread=True)
        assert (again.node_id, again.started, again.ended) == (live, True, first.call_id)
        assert (await store.calls.get(first.call_id)).ended_at == now[0]
    finally:
        await store.close()
