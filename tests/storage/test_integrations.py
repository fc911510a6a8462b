"""Storage of API keys and webhook deliveries: hashed keys, the delivery life cycle,
pruning, and erasure with the job."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator

import pytest

from tests.support.databases import Target
from videoassist.errors import NotFound
from videoassist.storage import Store
from videoassist.storage.records import DeliveryAttempt
from videoassist.storage.webhooks import WEBHOOK


@pytest.fixture
async def store(database: Target) -> AsyncIterator[Store]:
    opened = await Store.open(database, clock=lambda: 1000.0)
    yield opened
    await opened.close()


async def test_api_keys_are_found_by_hash_and_revoked_once(store: Store) -> None:
    key_hash = hashlib.sha256(b"vak_example").digest()
    key = await store.api_keys.create(key_hash, "CRM", "mple", ["jobs:read"], None)
    assert (key.scopes, key.active, key.last_used_at) == (("jobs:read",), True, None)
    assert await store.api_keys.find(key_hash) == key
    assert await store.api_keys.find(hashlib.sha256(b"other").digest()) is None
    await store.api_keys.touch(key.id)
    assert (await store.api_keys.get(key.id)).last_used_at == 1000.0
    revoked, changed = await store.api_keys.revoke(key.id)
    assert changed and not revoked.active
    _, changed = await store.api_keys.revoke(key.id)
    assert not changed
    with pytest.raises(NotFound):
        await store.api_keys.revoke(99)


async def test_a_delivery_is_due_until_delivered_or_given_up(store: Store) -> None:
    job = await store.jobs.create("Leak", "WO-1", None)
    await store.webhooks.add("u1", "job.created", job.id, b"{}", 1000.0)
    await store.webhooks.add("u2", "job.created", 4242, b"{}", 1000.0)  # no such job
    due = await store.webhooks.claim(1, 1000.0, 15.0, {WEBHOOK: 10}, 10)
    assert [(d.uuid, d.job_id, d.state) for d in due] == [
        ("u1", job.id, "pending"), ("u2", None, "pending")]
    first, second = due
    await store.webhooks.finish(first.id, 1, DeliveryAttempt(1, 1000.0, 5, 500, "HTTP 500"),
                                delivered=False, next_attempt_at=1030.0)
    await store.webhooks.finish(second.id, 1, DeliveryAttempt(1, 1000.0, 5, None, "timeout"),
                                delivered=False, next_attempt_at=None)
    assert [d.uuid for d in await store.webhooks.claim(1, 1029.0, 15.0, {WEBHOOK: 10}, 10)] == []
    assert await store.webhooks.next_due_at([WEBHOOK]) == 1030.0
    [again] = await store.webhooks.claim(1, 1030.0, 15.0, {WEBHOOK: 10}, 10)
    await store.webhooks.finish(again.id, 1, DeliveryAttempt(2, 1030.0, 5, 204, None),
                                delivered=True, next_attempt_at=None)
    assert await store.webhooks.next_due_at([WEBHOOK]) is None
    states = {d.uuid: (d.state, d.attempts, [a.status_code for a in log])
              for d, log in await store.webhooks.recent()}
    assert states == {"u1": ("delivered", 2, [500, 204]), "u2": ("failed", 1, [None])}
    assert [d.uuid for d, _ in await store.webhooks.recent("failed")] == ["u2"]


async def test_finished_deliveries_are_pruned_and_a_job_erased_with_its_own(
        store: Store) -> None:
    job = await store.jobs.create("Leak", None, None)
    other = await store.jobs.create("Drip", None, None)
    for uuid, job_id in (("old-done", job.id), ("old-pending", job.id), ("other", other.id)):
        await store.webhooks.add(uuid, "job.created", job_id, b"{}", 1000.0)
    claimed = await store.webhooks.claim(1, 1000.0, 15.0, {WEBHOOK: 10}, 10)
    [done] = [d for d in claimed if d.uuid == "old-done"]
    await store.webhooks.finish(done.id, 1, DeliveryAttempt(1, 1000.0, 5, 200, None),
                                delivered=True, next_attempt_at=None)
    assert await store.webhooks.prune(before=1000.0) == 0
    assert await store.webhooks.prune(before=2000.0) == 1  # only the finished one
    await store.jobs.delete(job.id)
    assert [d.uuid for d, _ in await store.webhooks.recent()] == ["other"]
