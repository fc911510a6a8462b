"""A fleet on PostgreSQL: two ``videoassist serve`` nodes (one process each) on one
throwaway database, real clients over loopback. What is changed through node A reaches
the calls node B holds at once, by the database's notifications (LISTEN/NOTIFY), with
B's poll switched off (an hour); when B's notification connection is killed, B
reconnects and notifications come again; while it cannot reconnect, B falls back to
polling often (the safety net), whatever its poll setting.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg

from tests.support.databases import Cluster
from tests.support.metrics import scrape, value
from tests.support.process import ServeProcess
from tests.support.server import PASSWORD, Clock, Server, free_port, join_call
from videoassist.actors import CLI
from videoassist.config import Settings
from videoassist.domain import accounts
from videoassist.storage import Store

POLL_OFF = "3600"  # VIDEOASSIST_REVOCATION_POLL_S: B never polls during a test
WITHIN_S = 1.0  # the documented bound, from the answer to the change to the close
_roles = itertools.count(1)


@dataclass
class Fleet:
    url: str  # the database
    a: ServeProcess
    b: ServeProcess
    settings: Settings  # as clients see them: the public URL both nodes share
    clients: list[aiohttp.ClientSession] = field(default_factory=list)

    def client(self, node: ServeProcess) -> Server:
        http = aiohttp.ClientSession()
        self.clients.append(http)
        return Server(node.url, self.settings, None, Clock(), http)  # type: ignore[arg-type]

    async def fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        conn = await asyncpg.connect(self.url)
        try:
            return list(await conn.fetch(sql, *args))
        finally:
            await conn.close()

    async def node_id(self, node: ServeProcess) -> int:
        [row] = await self.fetch("SELECT id FROM nodes WHERE pid = $1 AND stopped_at IS NULL",
                                 node.proc.pid)
        return int(row[0])

    async def holder(self, job: int) -> int:
        [row] = await self.fetch("SELECT node_id FROM calls WHERE job_id = $1"
                                 " AND ended_at IS NULL", job)
        return int(row[0])

    async def idle(self, timeout: float = 30) -> None:
        """Wait until no call is in progress and both nodes' last heartbeats say they
        hold no connection: placement puts a new call on the least loaded node, the one
        joined through on a tie, and a node's load is as its last heartbeat said."""
        async with asyncio.timeout(timeout):
            while await self.fetch(
                    "SELECT 1 FROM calls WHERE ended_at IS NULL UNION ALL"
                    " SELECT 1 FROM nodes WHERE stopped_at IS NULL AND load > 0"):
                await asyncio.sleep(0.1)

    async def user_id(self, name: str) -> int:
        [row] = await self.fetch("SELECT id FROM users WHERE username = $1", name)
        return int(row[0])

    async def kill_listener(self, node: ServeProcess) -> None:
        """``pg_terminate_backend`` on the node's notification connection."""
        [row] = await self.fetch(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE application_name = $1", f"videoassist-listen {node.proc.pid}")
        assert row[0] is True


@contextlib.asynccontextmanager
async def fleet(cluster: Cluster, tmp_path: Path, listen_role: str | None = None,
                **b_env: str) -> AsyncIterator[Fleet]:
    """Nodes A and B on a new database, with users bob, tom (experts) and boss (admin)
    and jobs 1 and 2; ``listen_role``: B listens as this role; ``b_env``: more of B's
    settings."""
    url = cluster.create_database(migrated=True)
    if listen_role is not None:
        b_env["VIDEOASSIST_DATABASE_LISTEN_URL"] = url.replace("postgres@", f"{listen_role}@")
    data_dir = tmp_path / "data"  # the installation's keys, made by A, shared with B
    store = await Store.open(url)
    try:
        for name, role in (("bob", "expert"), ("tom", "expert"), ("boss", "admin")):
            await accounts.add_user(store, name, role, PASSWORD, actor=CLI)
        for job in (1, 2):
            assert (await store.jobs.create(f"Job {job}", None, None)).id == job
    finally:
        await store.close()
    port = free_port()
    shared = {"VIDEOASSIST_DATABASE_URL": url, "VIDEOASSIST_WORKERS": "1",
              "VIDEOASSIST_PUBLIC_URL": f"http://127.0.0.1:{port}"}
    a = ServeProcess(data_dir, port, env=shared)
    b: ServeProcess | None = None
    running: Fleet | None = None
    try:
        await asyncio.to_thread(a.wait_ready)  # A makes the key files first
        b = ServeProcess(data_dir, env=shared | b_env)
        await asyncio.to_thread(b.wait_ready)
        await asyncio.to_thread(b.wait_for, r"listening for changes on the database")
        running = Fleet(url, a, b, Settings(port=port))
        yield running
    finally:
        if running is not None:
            for http in running.clients:
                await http.close()
        for node in (a, b):
            if node is not None:
                await asyncio.to_thread(node.stop, 5)
                print(node.output)  # shown when the test failed
        cluster.drop_database(url)


async def removed(ws: aiohttp.ClientWebSocketResponse, code: str, since: float
                  ) -> tuple[int, str]:
    """The server's ``error`` with ``code`` and its close, within ``WITHIN_S`` of
    ``since`` (monotonic): (close code, reason)."""
    async with asyncio.timeout(WITHIN_S - (time.monotonic() - since)):
        while True:
            msg = await ws.receive()
            assert msg.type == aiohttp.WSMsgType.TEXT, (msg.type, msg.data, msg.extra)
            if msg.json().get("code") == code:
                break
        closing = await ws.receive()
    # The frame itself, not ws.close_code: a client that reads after the server has
    # dropped the TCP connection cannot echo the close and records 1006.
    assert closing.type == aiohttp.WSMsgType.CLOSE, closing
    return closing.data, closing.extra


async def disable(admin: Server, token: str, user_id: int) -> float:
    """Disable through ``admin``'s node; when its answer came (monotonic)."""
    status, body, _ = await admin.request("POST", f"/api/users/{user_id}/disable",
                                          token=token)
    assert status == 200, body
    return time.monotonic()


async def in_call_on_b(fleet: Fleet, name: str, job: int
                       ) -> tuple[aiohttp.ClientWebSocketResponse,
                                  aiohttp.ClientWebSocketResponse]:
    """``name`` and a customer who came by their link in the job's call, both connected
    to B, which holds it."""
    on_b = fleet.client(fleet.b)
    token = await on_b.sign_in(name)
    await fleet.idle()  # so that the call goes on B, joined through
    expert = await join_call(on_b, token, job)
    customer = await join_call(fleet.client(fleet.b), await on_b.participant(token, job))
    assert await fleet.holder(job) == await fleet.node_id(fleet.b)
    return expert, customer


async def test_a_user_disabled_through_node_a_leaves_a_call_on_node_b_within_1s(
        postgresql_cluster: Cluster, tmp_path: Path) -> None:
    async with fleet(postgresql_cluster, tmp_path,
                     VIDEOASSIST_REVOCATION_POLL_S=POLL_OFF) as nodes:
        expert, customer = await in_call_on_b(nodes, "bob", 1)
        admin = nodes.client(nodes.a)
        admin_token = await admin.sign_in("boss")
        since = await disable(admin, admin_token, await nodes.user_id("bob"))
        assert await removed(expert, "account_disabled", since) == (4401, "account_disabled")
        # The customer came by bob's link, withdrawn with his account.
        assert await removed(customer, "link_revoked", since) == (4401, "link_revoked")

        # B's notification connection killed: B reconnects, and hears again.
        await nodes.kill_listener(nodes.b)
        await asyncio.to_thread(nodes.b.wait_for, r"lost the notification connection", 5)
        await asyncio.to_thread(nodes.b.wait_for, r"the notification connection is back", 5)
        tom, _ = await in_call_on_b(nodes, "tom", 2)
        since = await disable(admin, admin_token, await nodes.user_id("tom"))
        assert await removed(tom, "account_disabled", since) == (4401, "account_disabled")

        samples = await scrape(nodes.client(nodes.b))
        assert value(samples, "videoassist_change_notifications_total", table="users") >= 2
        assert value(samples, "videoassist_change_listener_failures_total", reason="lost") == 1
        assert value(samples, "videoassist_change_listener_up") == 1


async def test_a_job_closed_through_node_a_ends_its_call_on_node_b(
        postgresql_cluster: Cluster, tmp_path: Path) -> None:
    async with fleet(postgresql_cluster, tmp_path,
                     VIDEOASSIST_REVOCATION_POLL_S=POLL_OFF) as nodes:
        expert, customer = await in_call_on_b(nodes, "bob", 1)
        on_a = nodes.client(nodes.a)
        status, body, _ = await on_a.request("POST", "/api/jobs/1/close",
                                             token=await on_a.sign_in("tom"))
        since = time.monotonic()
        assert status == 200, body
        for ws in (expert, customer):
            assert await removed(ws, "job_closed", since) == (1000, "job_closed")
        async with asyncio.timeout(5):  # the call ends when the last one has left
            while await nodes.fetch("SELECT id FROM calls WHERE ended_at IS NULL"):
                await asyncio.sleep(0.05)


async def test_while_node_b_cannot_hear_it_falls_back_to_polling(
        postgresql_cluster: Cluster, tmp_path: Path) -> None:
    """B listens as a role of its own (VIDEOASSIST_DATABASE_LISTEN_URL), which the test
    forbids to log in once its connection is killed: B cannot reconnect, and polls as
    often as a node that never hears (0.25 s), its own poll switched off: that is what
    removes a user disabled through A."""
    role = f"listener_{os.getpid()}_{next(_roles)}"
    postgresql_cluster.sql(f"CREATE ROLE {role} LOGIN")
    try:
        async with fleet(postgresql_cluster, tmp_path, listen_role=role,
                         VIDEOASSIST_REVOCATION_POLL_S=POLL_OFF) as nodes:
            expert, customer = await in_call_on_b(nodes, "bob", 1)
            postgresql_cluster.sql(f"ALTER ROLE {role} NOLOGIN")
            await nodes.kill_listener(nodes.b)
            await asyncio.to_thread(nodes.b.wait_for, r"lost the notification connection", 5)
            await asyncio.to_thread(nodes.b.wait_for,
                                    r"cannot open the notification connection", 5)
            admin = nodes.client(nodes.a)
            since = await disable(admin, await admin.sign_in("boss"),
                                  await nodes.user_id("bob"))
            assert await removed(expert, "account_disabled", since) == (
                4401, "account_disabled")
            assert await removed(customer, "link_revoked", since) == (4401, "link_revoked")

            postgresql_cluster.sql(f"ALTER ROLE {role} LOGIN")
            await asyncio.to_thread(nodes.b.wait_for,
                                    r"the notification connection is back", 15)
            samples = await scrape(nodes.client(nodes.b))
            assert value(samples, "videoassist_change_listener_failures_total",
                         reason="lost") == 1
            assert value(samples, "videoassist_change_listener_failures_total",
                         reason="connect") >= 1
            assert value(samples, "videoassist_change_listener_up") == 1
    finally:
        postgresql_cluster.sql(f"DROP ROLE IF EXISTS {role}")
