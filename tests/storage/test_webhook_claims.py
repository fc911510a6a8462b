"""Webhook deliveries claimed by nodes: each by one node at a time, for a lease; every
attempt recorded with its node, the lost ones of a node that died included."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from tests.support.databases import Target
from videoassist.storage import Store
from videoassist.storage.records import DeliveryAttempt
from videoassist.storage.webhooks import IN_PROGRESS, INTERRUPTED, LOST, NOTIFY, WEBHOOK

LEASE_S = 15.0


class Now:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def now() -> Now:
    return Now()


@pytest.fixture
async def store(database: Target, now: Now) -> AsyncIterator[Store]:
    opened = await Store.open(database, clock=now)
    yield opened
    await opened.close()


async def _log(store: Store) -> dict[str, list[tuple[int, str | None]]]:
    """Each delivery's attempts as (attempt, error), by uuid."""
    return {d.uuid: [(a.attempt, a.error) for a in log] for d, log in await store.webhooks.recent()}


async def _attempt_nodes(store: Store) -> list[tuple[int, int | None, str | None]]:
    rows = await store.db.fetchall(
        "SELECT attempt, node_id, error FROM webhook_attempts ORDER BY id")
    return [tuple(r) for r in rows]  # type: ignore[misc]


async def test_a_claimed_delivery_is_recorded_in_progress_and_given_to_no_other_node(
        store: Store, now: Now) -> None:
    await store.webhooks.add("u1", "job.created", None, b"{}", 1000.0)
    [claimed] = await store.webhooks.claim(7, 1000.0, LEASE_S, {WEBHOOK: 10}, 10)
    assert claimed.attempts == 1 and claimed.state == "pending"
    assert await _attempt_nodes(store) == [(1, 7, IN_PROGRESS)]
    # Another node, even later, gets nothing until the lease ends.
    assert await store.webhooks.claim(8, 1000.0 + LEASE_S - 0.1, LEASE_S, {WEBHOOK: 10},
                                        10) == []
    assert await store.webhooks.next_due_at([WEBHOOK]) == 1000.0 + LEASE_S
    now.t = 1000.25
    assert await store.webhooks.finish(claimed.id, 7, DeliveryAttempt(1, 1000.0, 250, 204, None),
                                       delivered=True, next_attempt_at=None)
    [(delivery, [attempt])] = await store.webhooks.recent()
    assert (delivery.state, delivery.attempts) == ("delivered", 1)
    assert (attempt.status_code, attempt.error, attempt.duration_ms) == (204, None, 250)
    assert await store.webhooks.claim(8, 5000.0, LEASE_S, {WEBHOOK: 10}, 10) == []


async def test_a_dead_nodes_claim_is_taken_over_when_its_lease_ends(
        store: Store, now: Now) -> None:
    await store.webhooks.add("u1", "job.created", None, b"{}", 1000.0)
    [first] = await store.webhooks.claim(7, 1000.0, LEASE_S, {WEBHOOK: 10}, 10)
    # Node 7 dies mid-attempt. Node 8 takes the delivery over once the lease has ended.
    [second] = await store.webhooks.claim(8, 1000.0 + LEASE_S, LEASE_S, {WEBHOOK: 10}, 10)
    assert (second.id, second.attempts) == (first.id, 2)
    assert await _attempt_nodes(store) == [(1, 7, LOST), (2, 8, IN_PROGRESS)]
    lost = (await store.webhooks.recent())[0][1][0]
    assert lost.duration_ms == LEASE_S * 1000  # from its start until it was found lost
    now.t = 1016.0
    assert await store.webhooks.finish(second.id, 8, DeliveryAttempt(2, 1015.0, 5, 200, None),
                                       delivered=True, next_attempt_at=None)
    # Node 7 was only slow: its outcome, arriving now, replaces "lost", and moves
    # nothing (the delivery is node 8's).
    assert not await store.webhooks.finish(first.id, 7, DeliveryAttempt(1, 1000.0, 9, 500,
                                                                        "HTTP 500"),
                                           delivered=False, next_attempt_at=1030.0)
    assert await _log(store) == {"u1": [(1, "HTTP 500"), (2, None)]}
    [(delivery, _)] = await store.webhooks.recent()
    assert (delivery.state, delivery.attempts) == ("delivered", 2)


async def test_a_lost_last_attempt_gives_the_delivery_up(store: Store) -> None:
    await store.webhooks.add("u1", "job.created", None, b"{}", 1000.0)
    assert len(await store.webhooks.claim(7, 1000.0, LEASE_S, {WEBHOOK: 1}, 10)) == 1
    assert await store.webhooks.claim(8, 2000.0, LEASE_S, {WEBHOOK: 1}, 10) == []
    [(delivery, log)] = await store.webhooks.recent()
    assert (delivery.state, delivery.failed_at, delivery.next_attempt_at) == (
        "failed", 2000.0, None)
    assert [(a.attempt, a.error) for a in log] == [(1, LOST)]


async def test_a_node_stopping_gives_its_claims_back_at_once(store: Store, now: Now) -> None:
    await store.webhooks.add("u1", "job.created", None, b"{}", 1000.0)
    [first] = await store.webhooks.claim(7, 1000.0, LEASE_S, {WEBHOOK: 10}, 10)
    now.t = 1002.0
    await store.webhooks.release(7, {first.id: first.attempts})
    assert await store.webhooks.next_due_at([WEBHOOK]) == 1002.0
    [second] = await store.webhooks.claim(8, 1002.0, LEASE_S, {WEBHOOK: 10}, 10)
    assert second.attempts == 2
    assert await _attempt_nodes(store) == [(1, 7, INTERRUPTED), (2, 8, IN_PROGRESS)]


async def test_nodes_claiming_at_once_never_share_a_delivery(database: Target) -> None:
    """Four stores (four nodes' pools) claim 120 deliveries at once, in small batches."""
    stores = [await Store.open(database) for _ in range(4)]
    try:
        for i in range(120):
            await stores[0].webhooks.add(f"u{i}", "job.created", None, b"{}", 1000.0)

        async def node(index: int) -> list[int]:
            taken: list[int] = []
            while batch := await stores[index].webhooks.claim(index + 1, 1000.0, LEASE_S,
                                                              {WEBHOOK: 10}, 5):
                taken += [d.id for d in batch]
            return taken

        async with asyncio.timeout(60):
            claimed = await asyncio.gather(*(node(i) for i in range(4)))
        every = [d for taken in claimed for d in taken]
        assert len(every) == len(set(every)) == 120
        rows = await stores[0].db.fetchall(
            "SELECT delivery_id, count(*) FROM webhook_attempts GROUP BY delivery_id"
            " HAVING count(*) > 1")
        assert rows == []
    finally:
        for opened in stores:
            await opened.close()


async def test_each_channel_is_claimed_under_its_own_limit_and_listed_apart(
        store: Store, now: Now) -> None:
    """The notify webhook's links share the queue: a worker takes the channels it
    delivers, each under its own limit of attempts; the delivery log lists one channel;
    a finished link's body is emptied; pruning takes both."""
    job = await store.jobs.create("Leak", None, None)
    invite = await store.invites.create_join(b"\x01" * 32, job.id, "customer", 600, None)
    await store.webhooks.add("event", "job.created", job.id, b"{}", 1000.0)
    await store.webhooks.add("sms", "invite.notify", job.id, b"sealed", 1000.0,
                             channel=NOTIFY, invite_id=invite.id)
    # A node with a notify URL alone takes the notify delivery alone.
    [sms] = await store.webhooks.claim(7, 1000.0, LEASE_S, {NOTIFY: 1}, 10)
    assert (sms.uuid, sms.channel, sms.invite_id, sms.body) == (
        "sms", NOTIFY, invite.id, b"sealed")
    now.t = 1001.0
    await store.webhooks.finish(sms.id, 7, DeliveryAttempt(1, 1000.0, 5, 500, "HTTP 500"),
                                delivered=False, next_attempt_at=1001.0)
    # Its one allowed attempt made, it is given up; the event is under its own limit.
    [event] = await store.webhooks.claim(7, 1001.0, LEASE_S, {WEBHOOK: 10, NOTIFY: 1}, 10)
    assert (event.uuid, event.channel, event.invite_id) == ("event", WEBHOOK, None)
    assert [d.uuid for d, _ in await store.webhooks.recent()] == ["event"]
    [(given_up, log)] = await store.webhooks.recent(channel=NOTIFY)
    assert (given_up.state, given_up.body, [a.error for a in log]) == (
        "failed", b"", ["HTTP 500"])
    assert await store.webhooks.next_due_at([NOTIFY]) is None
    await store.webhooks.finish(event.id, 7, DeliveryAttempt(1, 1001.0, 5, 200, None),
                                delivered=True, next_attempt_at=None)
    assert await store.webhooks.prune(before=2000.0) == 2
