"""Staff accounts, links, sign-in failures, nodes and the audit log's filters through
the store, on SQLite and PostgreSQL alike."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.support.databases import Target
from videoassist.errors import Conflict, Gone, NotFound
from videoassist.storage import Store
from videoassist.storage.audit import AuditFilter
from videoassist.storage.users import LAST_ADMIN


@pytest.fixture
async def store(database: Target) -> AsyncIterator[tuple[Store, list[float]]]:
    now = [1_000_000.0]
    opened = await Store.open(database, clock=lambda: now[0])
    yield opened, now
    await opened.close()


async def test_accounts_keep_an_admin_and_sign_out_on_change(
        store: tuple[Store, list[float]]) -> None:
    s, _ = store
    root = await s.users.add("root", "admin", "hash")
    dana = await s.users.add("dana", "expert", None)
    assert not dana.has_password and await s.users.password_hash(dana.id) is None
    with pytest.raises(Conflict, match=LAST_ADMIN):
        await s.users.set_role(root.id, "expert")
    with pytest.raises(Conflict, match=LAST_ADMIN):
        await s.users.set_disabled(root.id, True)
    await s.users.set_password_hash(dana.id, "hash")
    promoted = await s.users.set_role(dana.id, "admin")
    assert (promoted.role, promoted.session_version) == ("admin", 2)
    assert (await s.users.set_disabled(root.id, True)).disabled_at is not None
    assert not await s.users.session_versions({root.id}) and await s.users.has_usable_admin()
    assert await s.users.session_versions({dana.id, 99}) == {dana.id: 2}
    await s.users.set_disabled(root.id, False)
    assert (await s.users.clear_password(dana.id)).has_password is False
    assert [u.username for u in await s.users.list()] == ["dana", "root"]
    with pytest.raises(NotFound):
        await s.users.set_role(99, "admin")


async def test_links_are_peeked_revoked_and_withdrawn(store: tuple[Store, list[float]]) -> None:
    s, now = store
    ann = await s.users.add("ann", "expert", "hash")
    job = await s.jobs.create("Leak", None, ann.id)
    join = await s.invites.create_join(b"a" * 32, job.id, "technician", 60, ann.id)
    first = await s.invites.create_password(b"b" * 32, ann.id, "expert", 60, None)
    second = await s.invites.create_password(b"c" * 32, ann.id, "expert", 60, None)
    assert (await s.invites.get(first.id)).revoked_at is not None  # type: ignore[union-attr]
    assert (await s.invites.peek(b"c" * 32, "password")).id == second.id
    with pytest.raises(Gone):
        await s.invites.peek(b"b" * 32, "password")
    assert await s.invites.withdrawn_among({join.id, first.id, 99}) == {first.id, 99}
    await s.invites.redeem(b"a" * 32, "join")
    revoked = await s.invites.revoke_created_by(ann.id)
    assert [i.id for i in revoked] == [join.id]
    assert await s.jobs.closed_among({job.id, 99}) == {99}
    await s.jobs.close(job.id, ann.id)
    assert await s.jobs.closed_among({job.id}) == {job.id}
    now[0] += 61
    with pytest.raises(Gone):
        await s.invites.redeem(b"c" * 32, "password")


async def test_sign_in_failures_are_counted_in_their_window(
        store: tuple[Store, list[float]]) -> None:
    s, now = store
    for _ in range(3):
        await s.signins.fail({"user": "ann", "client": "10.0.0.1"}, 300)
        now[0] += 10
    assert await s.signins.retry_after("user", "ann", 3, 300) == 300 - 30
    assert await s.signins.retry_after("user", "ann", 4, 300) is None
    await s.signins.succeed("user", "ann")
    assert await s.signins.retry_after("user", "ann", 1, 300) is None
    assert await s.signins.retry_after("client", "10.0.0.1", 3, 300) == 270


async def test_nodes_heartbeat_drain_stop_and_are_pruned(
        store: tuple[Store, list[float]]) -> None:
    s, now = store
    a = await s.nodes.register("here", 10, 0, "127.0.0.1:1")
    b = await s.nodes.register("here", 11, 1, "127.0.0.1:2")
    c = await s.nodes.register("there", 12, None, "10.0.0.2:1")
    now[0] += 30
    await s.nodes.heartbeat(a, 5)
    await s.nodes.set_draining(b)
    assert [n.id for n in await s.nodes.live(now[0] - 10)] == [a]
    assert (await s.nodes.get(b)).draining  # type: ignore[union-attr]
    assert await s.nodes.gone("here", now[0] - 60, pid=11) == [b]
    assert await s.nodes.gone("here", now[0] - 60) == [a, b]
    assert await s.nodes.gone("elsewhere", now[0] - 10) == [b, c]
    job = await s.jobs.create("Leak", None, None)
    placed = await s.calls.place(job.id, a, now[0] - 10, spread=True)
    assert (placed.node_id, placed.started) == (a, True)
    assert await s.calls.held_by(a, now[0] + 1) == [placed.call_id]
    await s.nodes.stop([a, c])
    assert await s.calls.end_held_by([a]) == [placed.call_id]
    assert await s.calls.ended_among({placed.call_id, 99}) == {placed.call_id}
    now[0] += 100
    assert await s.nodes.prune(now[0]) == 2
    assert await s.nodes.get(a) is None
    assert (await s.calls.get(placed.call_id)).ended_at is not None


async def test_the_audit_log_is_filtered_paged_and_streamed(
        store: tuple[Store, list[float]]) -> None:
    s, now = store
    for n in range(7):
        await s.audit.record(f"user:{n % 2}", "signin.ok" if n % 3 else "job.created",
                             f"job:{n}", n=n)
        now[0] += 1
    ok = AuditFilter(action="signin.")
    assert [e.detail["n"] for e in await s.audit.page(ok, None, 10)] == [5, 4, 2, 1]
    assert [e.detail["n"] for e in await s.audit.page(ok, 6, 2)] == [4, 2]  # ids are n + 1
    mine = AuditFilter(actor="user:1", since=1_000_002.0, until=1_000_006.0)
    assert [e.detail["n"] for e in await s.audit.page(mine, None, 10)] == [5, 3]
    assert [e.target async for e in s.audit.stream(AuditFilter(action="job.created"))] == [
        "job:0", "job:3", "job:6"]
