"""Two nodes on one PostgreSQL database: real ``videoassist serve`` processes (one
worker each, as on two machines: each its own data directory, with the installation's
key files copied over), a real webhook receiver on loopback (aiohttp).

Sign-in failures are counted by the nodes together; every webhook event is delivered
exactly once, whichever node queued it and whichever sends it, every attempt recorded
with its node, a dead node's claimed deliveries taken over once their lease has ended;
the periodic duties are run by one node at a time, the holder of an advisory lock, and
pass to another when it dies or loses its database connection.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import shutil
import socket
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from tests.support.databases import Cluster, raw_fetchall
from tests.support.process import ServeProcess, clean_env, videoassist
from tests.support.server import PASSWORD
from videoassist.storage import Store
from videoassist.storage.webhooks import IN_PROGRESS, LOST
from videoassist.webhooks import Outbox
from videoassist.webhooks.emitter import LEASE_MARGIN_S

SECRET = "fleet-webhook-secret-0123456789abcdef"
WEBHOOKS = {"VIDEOASSIST_WEBHOOK_SECRET": SECRET, "VIDEOASSIST_WEBHOOK_MAX_ATTEMPTS": "5",
            "VIDEOASSIST_WEBHOOK_RETRY_BASE_S": "0.2", "VIDEOASSIST_WEBHOOK_RETRY_MAX_S": "0.5"}
STOP_S = 20.0


@dataclass
class Receiver:
    """A company's webhook receiver: checks each signature, answers as told, and
    writes down every request (delivery id, attempt header, status answered)."""

    fail_first: bool = False  # refuse (503) the first attempt of one delivery in three
    hold: bool = False  # answer nothing until ``released`` (then 503)
    requests: list[tuple[str, int, int]] = field(default_factory=list)
    held: int = 0
    released: asyncio.Event = field(default_factory=asyncio.Event)
    url: str = ""

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, request.headers.get("X-Videoassist-Signature", "")):
            return web.Response(status=401)
        delivery = request.headers["X-Videoassist-Delivery"]
        attempt = int(request.headers["X-Videoassist-Attempt"])
        if self.hold:
            self.requests.append((delivery, attempt, 0))
            self.held += 1
            async with asyncio.timeout(60):
                await self.released.wait()
            return web.Response(status=503)
        refuse = self.fail_first and attempt == 1 and int(delivery[:8], 16) % 3 == 0
        status = 503 if refuse else 200
        self.requests.append((delivery, attempt, status))
        return web.json_response({}, status=status)

    def delivered(self) -> list[str]:
        """The delivery ids answered 2xx, once per answer."""
        return [d for d, _, status in self.requests if status == 200]


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    target = Receiver()
    app = web.Application()
    app.router.add_post("/hooks", target.handle)
    runner = web.AppRunner(app, shutdown_timeout=1.0)
    await runner.setup()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    await web.SockSite(runner, sock).start()
    target.url = f"http://127.0.0.1:{sock.getsockname()[1]}/hooks"
    yield target
    target.released.set()
    await runner.cleanup()


class Fleet:
    """Nodes on one PostgreSQL database. The first node's data directory has the
    users; the others get a copy of its key files, as ops copy them to each machine."""

    def __init__(self, root: Path, database: str) -> None:
        self.root = root
        self.database = database
        self.nodes: list[ServeProcess] = []

    async def start(self, **env: str) -> ServeProcess:
        """A new node, once it serves (waited for in a thread: the receiver runs on
        this event loop meanwhile)."""
        data_dir = self.root / f"node{len(self.nodes)}"
        if self.nodes:
            shutil.copytree(self.root / "node0", data_dir,
                            ignore=shutil.ignore_patterns("*.sqlite3*"))
        node = ServeProcess(data_dir, env={"VIDEOASSIST_DATABASE_URL": self.database,
                                           "VIDEOASSIST_WORKERS": "1", **env})
        self.nodes.append(node)
        await asyncio.to_thread(node.wait_ready, 60)
        return node

    def add_user(self, name: str, role: str) -> None:
        result = videoassist(self.root / "node0", "user", "add", name, "--role", role,
                             "--password-stdin", stdin=PASSWORD + "\n",
                             env=clean_env(VIDEOASSIST_DATABASE_URL=self.database))
        assert result.code == 0, result

    async def node_id(self, node: ServeProcess) -> int:
        [(node_id,)] = await raw_fetchall(
            self.database, "SELECT id FROM nodes WHERE pid = ? ORDER BY id DESC LIMIT 1",
            (node.proc.pid,))
        return int(node_id)

    def stop(self) -> None:
        for node in self.nodes:
            node.stop(STOP_S)


@pytest.fixture
def fleet(tmp_path: Path, postgresql_cluster: Cluster) -> Iterator[Fleet]:
    database = postgresql_cluster.create_database(migrated=True)
    running = Fleet(tmp_path, database)
    try:
        yield running
    finally:
        running.stop()
        postgresql_cluster.drop_database(database)


async def _post(http: aiohttp.ClientSession, url: str, body: dict[str, Any],
                token: str | None = None) -> tuple[int, dict[str, Any]]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with http.post(url, json=body, headers=headers) as response:
        return response.status, await response.json()


async def _sign_in(http: aiohttp.ClientSession, node: ServeProcess, password: str = PASSWORD
                   ) -> tuple[int, dict[str, Any]]:
    return await _post(http, node.url + "/api/session",
                       {"username": "boss", "password": password})


# -- sign-in limits ----------------------------------------------------------------


async def test_six_wrong_passwords_alternating_between_two_nodes_the_sixth_is_refused(
        fleet: Fleet) -> None:
    fleet.add_user("boss", "admin")
    a = await fleet.start()
    b = await fleet.start()
    async with aiohttp.ClientSession() as http:
        statuses = [(await _sign_in(http, node, "not the password"))[0]
                    for node in (a, b, a, b, a, b)]
        # Five failures, counted by the two nodes together (three each): the sixth is
        # refused before the password is even checked, and so is the right one now.
        assert statuses == [401] * 5 + [429]
        for node in (a, b):
            status, body = await _sign_in(http, node)
            assert status == 429, body
    rows = await raw_fetchall(fleet.database, "SELECT action FROM audit_log"
                              " WHERE action LIKE 'signin.%' ORDER BY id")
    # Refusals are audited as a row for a client's first in a window, then a count when
    # the window ends (kept by each process): one row from each node so far.
    assert [r[0] for r in rows] == ["signin.failed"] * 5 + ["signin.limited"] * 2


async def test_wrong_passwords_sent_at_once_to_two_nodes_are_all_counted(
        fleet: Fleet) -> None:
    """Ten guesses at once, five through each node: five are checked, the others
    refused, though none had been answered when all were sent."""
    fleet.add_user("boss", "admin")
    nodes = [await fleet.start(), await fleet.start()]
    async with aiohttp.ClientSession() as http:
        statuses = await asyncio.gather(*(
            _sign_in(http, nodes[i % 2], f"guess {i}") for i in range(10)))
    assert sorted(status for status, _ in statuses) == [401] * 5 + [429] * 5
    [(count,)] = await raw_fetchall(fleet.database, "SELECT count(*) FROM signin_failures"
                                    " WHERE scope = 'user' AND key = 'boss'")
    assert count == 5


# -- webhooks ----------------------------------------------------------------------


async def _attempts(database: str) -> dict[str, list[tuple[int, int | None, str | None, int,
                                                          float]]]:
    """Every delivery's recorded attempts, in order: (attempt, status, error, node,
    started_at), by delivery id."""
    rows = await raw_fetchall(
        database, "SELECT d.uuid, a.attempt, a.status_code, a.error, a.node_id, a.started_at"
        " FROM webhook_attempts a JOIN webhook_deliveries d ON d.id = a.delivery_id"
        " ORDER BY a.delivery_id, a.attempt")
    found: dict[str, list[tuple[int, int | None, str | None, int, float]]] = {}
    for uuid, *attempt in rows:
        found.setdefault(uuid, []).append(tuple(attempt))  # type: ignore[arg-type]
    return found


async def _until_all_delivered(database: str, count: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        [(delivered, pending)] = await raw_fetchall(
            database, "SELECT count(delivered_at), count(next_attempt_at)"
            " FROM webhook_deliveries")
        if delivered == count and pending == 0:
            return
        assert time.monotonic() < deadline, f"{delivered} of {count} delivered"
        await asyncio.sleep(0.2)


async def test_100_events_on_two_nodes_are_each_delivered_once_every_attempt_recorded(
        fleet: Fleet, receiver: Receiver) -> None:
    receiver.fail_first = True
    fleet.add_user("boss", "admin")
    settings = {"VIDEOASSIST_WEBHOOK_URL": receiver.url, **WEBHOOKS}
    nodes = [await fleet.start(**settings), await fleet.start(**settings)]
    async with aiohttp.ClientSession() as http:
        tokens = [(await _sign_in(http, node))[1]["token"] for node in nodes]

        async def create(i: int) -> None:
            status, body = await _post(http, nodes[i % 2].url + "/api/jobs",
                                       {"title": f"Job {i}"}, tokens[i % 2])
            assert status == 201, body

        for first in range(0, 100, 10):  # ten at a time, half through each node
            await asyncio.gather(*(create(i) for i in range(first, first + 10)))
    await _until_all_delivered(fleet.database, 100, timeout=60)

    # Exactly once: each of the 100 deliveries answered 2xx once.
    delivered = receiver.delivered()
    assert len(delivered) == len(set(delivered)) == 100
    refused = [d for d, _, status in receiver.requests if status == 503]
    assert refused, "the receiver refused no first attempt: no retry was exercised"
    # Every attempt the receiver saw is recorded, in order, with its outcome; no other.
    recorded = await _attempts(fleet.database)
    assert set(recorded) == set(delivered)
    seen: dict[str, list[tuple[int, int | None, str | None]]] = {}
    for delivery, attempt, status in receiver.requests:
        seen.setdefault(delivery, []).append(
            (attempt, status, None if status == 200 else f"HTTP {status}"))
    for delivery, attempts in recorded.items():
        assert [a[:3] for a in attempts] == sorted(seen[delivery]), delivery
    assert sum(map(len, recorded.values())) == 100 + len(refused)
    # By both nodes: each claimed its share, none claimed another's.
    node_ids = {await fleet.node_id(node) for node in nodes}
    by_node = {a[3] for attempts in recorded.values() for a in attempts}
    assert by_node == node_ids
    rows = await raw_fetchall(fleet.database, "SELECT count(*) FROM webhook_deliveries"
                              " WHERE claimed_by IS NOT NULL OR lease_until IS NOT NULL")
    assert rows == [(0,)]


async def test_a_node_killed_mid_lease_has_its_deliveries_taken_over_when_the_lease_ends(
        fleet: Fleet, receiver: Receiver) -> None:
    receiver.hold = True
    # Twelve events queued before any node runs, as the CLI queues them (an Outbox):
    # node A's first round claims eight at once.
    store = await Store.open(fleet.database)
    try:
        outbox = Outbox(store, True, time.time)
        for i in range(12):
            job = await store.jobs.create(f"Job {i}", None, None)
            await outbox.emit("job.created", {"job": job.public()})
    finally:
        await store.close()
    timeout_s = 6.0  # far longer than A lives once it has sent them
    settings = {"VIDEOASSIST_WEBHOOK_URL": receiver.url, **WEBHOOKS,
                "VIDEOASSIST_WEBHOOK_TIMEOUT_S": str(timeout_s)}
    a = await fleet.start(**settings)
    async with asyncio.timeout(20):
        while receiver.held < 8:
            await asyncio.sleep(0.05)
    await asyncio.sleep(0.5)  # nothing more comes while those 8 are held
    assert receiver.held == 8
    a_id = await fleet.node_id(a)
    a.proc.kill()  # mid-attempt, its claims' leases running
    await asyncio.to_thread(a.proc.wait, STOP_S)
    receiver.hold = False

    b = await fleet.start(**settings)
    await _until_all_delivered(fleet.database, 12, timeout=30)
    b_id = await fleet.node_id(b)
    delivered = receiver.delivered()
    assert len(delivered) == len(set(delivered)) == 12

    recorded = await _attempts(fleet.database)
    held = {d for d, _, status in receiver.requests if status == 0}
    assert len(held) == 8
    lease_s = timeout_s + LEASE_MARGIN_S
    for delivery, attempts in recorded.items():
        if delivery in held:
            # A's attempt is recorded as lost; B made the next one only once A's lease
            # had ended, not when B started.
            (n1, s1, e1, node1, at1), (n2, s2, e2, node2, at2) = attempts
            assert (n1, s1, e1, node1) == (1, None, LOST, a_id)
            assert (n2, s2, e2, node2) == (2, 200, None, b_id)
            assert at2 >= at1 + lease_s
        else:  # never claimed by A: B sent them at once
            assert [a[:4] for a in attempts] == [(1, 200, None, b_id)]
    # The receiver saw every recorded attempt, the lost ones included, and no other.
    assert sorted((d, n) for d, n, _ in receiver.requests) == sorted(
        (d, a[0]) for d, attempts in recorded.items() for a in attempts)
    assert all(a[2] != IN_PROGRESS for attempts in recorded.values() for a in attempts)


# -- periodic duties -----------------------------------------------------------------


async def _duty_holders(database: str) -> list[str]:
    """The application names of the sessions holding the duties' advisory lock."""
    rows = await raw_fetchall(
        database, "SELECT a.application_name FROM pg_locks l"
        " JOIN pg_stat_activity a ON a.pid = l.pid WHERE l.locktype = 'advisory'"
        " AND l.granted AND a.datname = current_database()"
        " AND a.application_name LIKE 'videoassist node % duties'")
    return [str(r[0]) for r in rows]


async def _until_one_holder(database: str, not_node: int | None = None,
                            timeout: float = 15.0) -> int:
    deadline = time.monotonic() + timeout
    while True:
        holders = await _duty_holders(database)
        assert len(holders) <= 1, holders
        if holders and int(holders[0].split()[2]) != not_node:
            return int(holders[0].split()[2])
        assert time.monotonic() < deadline, f"no node holds the duties: {holders}"
        await asyncio.sleep(0.1)


async def test_the_periodic_duties_run_on_one_node_and_pass_on_when_it_goes(
        fleet: Fleet) -> None:
    nodes = [await fleet.start(), await fleet.start()]
    ids = [await fleet.node_id(node) for node in nodes]
    holder = await _until_one_holder(fleet.database)
    assert holder in ids
    runs = [f"node {i} runs the periodic duties" for i in ids]
    assert [runs[i] in node.output for i, node in enumerate(nodes)] == [
        i == holder for i in ids]

    # Its lock's connection is cut (an administrator ends the session): it stops them,
    # and one node, maybe the same, takes them again.
    await raw_fetchall(fleet.database, "SELECT pg_terminate_backend(a.pid)"
                       " FROM pg_stat_activity a WHERE a.application_name = ?",
                       (f"videoassist node {holder} duties",))
    holding = nodes[ids.index(holder)]
    holding.wait_for(f"node {holder} lost the periodic duties' lock")
    again = await _until_one_holder(fleet.database)

    # The holder dies: the other node takes the duties over.
    dead = nodes[ids.index(again)]
    dead.proc.kill()
    await asyncio.to_thread(dead.proc.wait, STOP_S)
    survivor = await _until_one_holder(fleet.database, not_node=again)
    assert survivor == ids[1 - ids.index(again)]
    assert runs[1 - ids.index(again)] in nodes[1 - ids.index(again)].output
