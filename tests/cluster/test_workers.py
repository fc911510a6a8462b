"""One worker per core: ``videoassist serve --workers 2`` as a real process, with real
worker processes, real clients pinned to a chosen worker (``tests.support.workers``),
and real aiortc peers where media matters.

Calls are placed on workers and never split; a participant whose connection landed on
the other worker is carried to the one holding the call, and media goes straight to
that one. Revocation and job closing made through one worker reach a call on another;
a killed worker's calls end, a new worker takes its slot and the server goes on;
SIGTERM drains every worker; workers whose supervisor was killed exit, and the next
start ends the calls they left.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from tests.support.metrics import scrape, value
from tests.support.peers import MediaClient, sdp_candidates
from tests.support.process import ServeProcess, clean_env, ok, videoassist
from tests.support.server import PASSWORD, Server, free_udp_ports, leave, receive
from tests.support.webhooks import Receiver
from tests.support.workers import (
    NodeRow,
    live_calls,
    nodes,
    on_worker,
    query,
    wait_served_by,
)
from videoassist.config import Settings

JOBS = (1, 2, 3, 4)  # the jobs the template creates
WORKERS = 2
STOP_S = 20.0


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data_dir = tmp_path_factory.mktemp("template") / "data"
    for name, role in (("bob", "expert"), ("boss", "admin")):
        ok(data_dir, "user", "add", name, "--role", role, "--password-stdin",
           stdin=PASSWORD + "\n")
    for job in JOBS:
        assert ok(data_dir, "job", "create", f"Job {job}").strip() == str(job)
    return data_dir


@dataclass
class Cluster:
    process: ServeProcess
    data_dir: Path
    settings: Settings
    clients: list[Server] = field(default_factory=list)

    async def on(self, worker: int) -> Server:
        """A client of ``worker`` alone (one kept connection: one request at a time,
        or one WebSocket)."""
        client = await on_worker(self.process, worker, self.settings)
        self.clients.append(client)
        return client

    def nodes(self) -> dict[int, NodeRow]:
        return nodes(self.data_dir)

    def holder(self, job: int) -> int:
        """The worker holding the job's call in progress."""
        [(_, node_id)] = live_calls(self.data_dir, job)
        [worker] = [w for w, node in self.nodes().items() if node.id == node_id]
        return worker


@contextlib.asynccontextmanager
async def started(template: Path, data_dir: Path, **env: str) -> AsyncIterator[Cluster]:
    """``videoassist serve`` with ``WORKERS`` workers on a copy of the template. It does
    not drain when stopped (``VIDEOASSIST_DRAIN_TIMEOUT_S=0``): the calls a test leaves
    up are closed at once, where a drain would hold the stop until its KILL. The drain
    test asks for one."""
    shutil.copytree(template, data_dir)
    process = ServeProcess(data_dir, env={"VIDEOASSIST_WORKERS": str(WORKERS),
                                          "VIDEOASSIST_DRAIN_TIMEOUT_S": "0", **env})
    running = Cluster(process, data_dir, Settings(port=process.port))
    try:
        await asyncio.to_thread(process.wait_for, rf"serving on \S+ .*with {WORKERS} workers",
                                90)
        assert sorted(running.nodes()) == list(range(WORKERS))
        yield running
    finally:
        for client in running.clients:
            await client.http.close()
        await asyncio.to_thread(process.stop, 5)
        print(process.output)  # shown when the test failed


@pytest.fixture
async def cluster(template: Path, tmp_path: Path) -> AsyncIterator[Cluster]:
    async with started(template, tmp_path / "data") as running:
        yield running


async def join(remote: Server, token: str, job: int | None) -> aiohttp.ClientWebSocketResponse:
    """Open the socket and send ``auth``; the answer is left to read."""
    ws = await remote.ws()
    await ws.send_json({"type": "auth", "token": token} | ({} if job is None else {"job": job}))
    return ws


async def closed(ws: aiohttp.ClientWebSocketResponse, code: str,
                 timeout: float = 5.0) -> tuple[int | None, str]:
    """Read until the server's ``error`` with ``code`` and its close: (close code, reason)."""
    async with asyncio.timeout(timeout):
        while True:
            msg = await ws.receive()
            if msg.type == aiohttp.WSMsgType.TEXT and msg.json().get("code") == code:
                break
            assert msg.type == aiohttp.WSMsgType.TEXT, (msg.type, msg.data, msg.extra)
        closing = await ws.receive()
    assert closing.type == aiohttp.WSMsgType.CLOSE, closing
    return ws.close_code, closing.extra


async def in_call(cluster: Cluster, job: int) -> tuple[aiohttp.ClientWebSocketResponse,
                                                       aiohttp.ClientWebSocketResponse, int]:
    """bob through worker 0 and a customer through worker 1 in the job's call: (bob's
    socket, the customer's, the worker holding the call)."""
    staff = await cluster.on(0)
    token = await staff.sign_in("bob")
    customer_token = await staff.participant(token, job)
    expert = await join(await cluster.on(0), token, job)
    assert (await receive(expert))["type"] == "joined"
    customer = await join(await cluster.on(1), customer_token, None)
    assert (await receive(customer))["type"] == "joined"
    assert (await receive(expert))["type"] == "participant.joined"
    return expert, customer, cluster.holder(job)


async def test_calls_are_placed_on_workers_and_never_split(cluster: Cluster) -> None:
    staff = await cluster.on(0)
    token = await staff.sign_in("bob")
    customers = [await staff.participant(token, job) for job in JOBS]
    # Each job: bob through worker 0 and its customer through worker 1, all at once.
    clients = [(await cluster.on(0), await cluster.on(1)) for _ in JOBS]
    sockets = await asyncio.gather(*(
        join(client, tok, job) for (a, b), job, customer in zip(clients, JOBS, customers,
                                                                 strict=True)
        for client, tok in ((a, token), (b, customer))))
    answers = await asyncio.gather(*(receive(ws, skip=("participant.joined",))
                                     for ws in sockets))
    node_ids = {node.id: worker for worker, node in cluster.nodes().items()}
    held = []
    for i, job in enumerate(JOBS):
        expert, customer = answers[2 * i], answers[2 * i + 1]
        assert expert["type"] == customer["type"] == "joined", (expert, customer)
        assert expert["call"]["id"] == customer["call"]["id"], (job, expert, customer)
        [(call_id, node_id)] = live_calls(cluster.data_dir, job)
        assert call_id == expert["call"]["id"] and node_id in node_ids
        held.append(node_ids[node_id])
    # The least loaded worker got each new call: two each.
    assert sorted(held) == [0, 0, 1, 1], held

    # One scrape shows every worker, each with the calls it holds.
    samples = await scrape(staff)
    for worker in range(WORKERS):
        assert value(samples, "videoassist_worker_up", worker=str(worker)) == 1
        assert value(samples, "videoassist_calls", worker=str(worker)) == 2
        assert value(samples, "videoassist_websocket_connections", worker=str(worker)) == 4
        assert value(samples, "videoassist_participants", worker=str(worker),
                     role="expert") == 2

    # The internal addresses answer the installation's nodes only.
    secret = (cluster.data_dir / "node-secret").read_text().strip()
    async with aiohttp.ClientSession() as http:
        await internal_addresses_need_the_secret(http, cluster, secret)

    # Messages cross the carried connections both ways.
    for i in range(len(JOBS)):
        expert, customer = sockets[2 * i], sockets[2 * i + 1]
        await customer.send_json({"type": "chat.message", "text": f"job {JOBS[i]}"})
        for ws in (expert, customer):
            chat = await receive(ws, skip=("participant.joined",))
            assert chat["message"]["text"] == f"job {JOBS[i]}", chat
        await customer.send_json({"type": "leave"})
        assert await closed_normally(customer) == (1000, "left")
        left = await receive(expert, skip=("participant.joined",))
        assert left["type"] == "participant.left", left


async def internal_addresses_need_the_secret(http: aiohttp.ClientSession, cluster: Cluster,
                                             secret: str) -> None:
    """Each worker's internal address: 404 for anything without the node secret; with
    it, the internal routes only (/internal/ws wants an upgrade: 400 to a plain GET)."""
    wanted = {"/internal/metrics": 200, "/internal/ws": 400, "/healthz": 404}
    for node in cluster.nodes().values():
        for given in ("", secret[:-1], secret):
            headers = {"X-Videoassist-Node-Secret": given} if given else {}
            for path, status in wanted.items():
                async with http.get(f"http://{node.address}{path}",
                                    headers=headers) as response:
                    assert response.status == (status if given == secret else 404), \
                        (node, path, given == secret)


async def closed_normally(ws: aiohttp.ClientWebSocketResponse) -> tuple[int | None, str]:
    closing = await ws.receive(timeout=5)
    assert closing.type == aiohttp.WSMsgType.CLOSE, closing
    return ws.close_code, closing.extra


async def test_media_goes_to_the_worker_holding_the_call(cluster: Cluster) -> None:
    staff = await cluster.on(1)
    token = await staff.sign_in("bob")
    customer_token = await staff.participant(token, 1)
    expert = await MediaClient(await cluster.on(0), token, 1).start()
    customer = await MediaClient(await cluster.on(1), customer_token).start()
    try:
        await expert.wait_remote(customer.participant_id, "video", frames=10)
        await customer.wait_remote(expert.participant_id, "video", frames=10)
        holder = cluster.holder(1)
        # The server's side of both peer connections is on the holder, none elsewhere.
        samples = await scrape(staff)
        assert value(samples, "videoassist_peer_connections", worker=str(holder),
                     state="connected") == 2
        assert value(samples, "videoassist_peer_connections_opened_total",
                     worker=str(1 - holder)) == 0
    finally:
        await customer.close()
        await expert.close()


async def test_a_disable_through_one_worker_closes_a_call_on_another_within_1s(
        cluster: Cluster) -> None:
    expert, _, holder = await in_call(cluster, 2)
    admin = await cluster.on(1 - holder)
    admin_token = await admin.sign_in("boss")
    [(bob,)] = query(cluster.data_dir, "SELECT id FROM users WHERE username = 'bob'")
    status, body, _ = await admin.request("POST", f"/api/users/{bob}/disable",
                                          token=admin_token)
    disabled = time.monotonic()
    assert status == 200, body
    assert await closed(expert, "account_disabled", timeout=1.0) == (4401, "account_disabled")
    assert time.monotonic() - disabled < 1.0
    # The access log line is read from the process's output a moment after the answer.
    assert await wait_served_by(cluster.process, f"/api/users/{bob}/disable") == 1 - holder


async def test_a_job_closed_through_one_worker_ends_its_call_on_another(
        cluster: Cluster) -> None:
    expert, customer, holder = await in_call(cluster, 3)
    staff = await cluster.on(1 - holder)
    status, body, _ = await staff.request("POST", "/api/jobs/3/close",
                                          token=await staff.sign_in("bob"))
    closing = time.monotonic()
    assert status == 200, body
    for ws in (expert, customer):
        assert await closed(ws, "job_closed", timeout=1.0) == (1000, "job_closed")
    assert time.monotonic() - closing < 1.0
    assert await wait_served_by(cluster.process, "/api/jobs/3/close") == 1 - holder
    async with asyncio.timeout(5):
        while live_calls(cluster.data_dir, 3):
            await asyncio.sleep(0.05)


async def test_a_killed_worker_has_its_calls_ended_and_is_replaced(cluster: Cluster) -> None:
    expert, customer, holder = await in_call(cluster, 4)
    direct, carried = (expert, customer) if holder == 0 else (customer, expert)
    [(call_id, _)] = live_calls(cluster.data_dir, 4)
    killed = cluster.nodes()[holder]
    os.kill(killed.pid, signal.SIGKILL)

    # The client carried from the other worker is told, and reconnects (1011).
    assert await closed(carried, "call_lost") == (1011, "call_lost")
    cut = await direct.receive(timeout=5)  # the dead worker's own client: just cut
    assert cut.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSE,
                        aiohttp.WSMsgType.ERROR), cut
    async with asyncio.timeout(5):
        while live_calls(cluster.data_dir, 4):
            await asyncio.sleep(0.05)
    [(ended_at,)] = query(cluster.data_dir, "SELECT ended_at FROM calls WHERE id = ?", call_id)
    assert ended_at is not None

    await asyncio.to_thread(
        cluster.process.wait_for,
        rf"worker {holder} \(pid {killed.pid}, node {killed.id}\) was killed by SIGKILL; "
        r"1 calls it held ended", 10)
    await asyncio.to_thread(cluster.process.wait_for,
                            rf"worker {holder} serves as node \d+", 60)
    replacement = cluster.nodes()[holder]
    assert replacement.id != killed.id and replacement.pid != killed.pid
    assert killed.id not in {node.id for node in cluster.nodes().values()}

    # The server goes on: the job's next call, through both workers, the new one too.
    expert, customer, _ = await in_call(cluster, 4)
    [(new_call, _)] = live_calls(cluster.data_dir, 4)
    assert new_call != call_id
    await expert.send_json({"type": "chat.message", "text": "back"})
    assert (await receive(customer))["message"]["text"] == "back"
    samples = await scrape(await cluster.on(holder))
    assert [value(samples, "videoassist_worker_up", worker=str(w))
            for w in range(WORKERS)] == [1, 1]
    assert cluster.process.proc.poll() is None


async def test_sigterm_drains_every_worker(template: Path, tmp_path: Path) -> None:
    async with started(template, tmp_path / "data",
                       VIDEOASSIST_DRAIN_TIMEOUT_S="60") as cluster:
        await drains_every_worker(cluster)


async def drains_every_worker(cluster: Cluster) -> None:
    staff = await cluster.on(0)
    token = await staff.sign_in("bob")
    newcomer = await staff.participant(token, 1)  # redeemed before the drain
    other = await staff.participant(token, 2)  # a job with no call
    expert, customer, _ = await in_call(cluster, 1)
    probes = [await cluster.on(w) for w in range(WORKERS)]
    knocking = [await cluster.on(w) for w in range(WORKERS)]

    cluster.process.proc.send_signal(signal.SIGTERM)
    for probe in probes:
        async with asyncio.timeout(5):
            while (await probe.request("GET", "/readyz"))[0] != 503:
                await asyncio.sleep(0.05)
    # No new call, through either worker; the call goes on across them, and takes
    # someone new through either.
    for remote in knocking:
        ws = await join(remote, other, None)
        assert await closed(ws, "draining") == (1013, "draining")
    for worker in range(WORKERS):
        ws = await join(await cluster.on(worker), newcomer, None)
        assert (await receive(ws))["type"] == "joined"
        assert (await receive(expert))["type"] == "participant.joined"
        await leave(ws)
        assert (await receive(expert))["type"] == "participant.left"
    await customer.send_json({"type": "chat.message", "text": "still here"})
    assert (await receive(expert))["message"]["text"] == "still here"
    assert cluster.process.proc.poll() is None

    await leave(customer)  # the drain waits for the call, those away in it included
    await leave(expert)
    code = await asyncio.to_thread(cluster.process.proc.wait, STOP_S)
    assert code == 0, cluster.process.output
    out = cluster.process.output
    assert "SIGTERM: draining 2 workers" in out
    assert out.count("drain: no call in progress: stopping") == WORKERS, out
    assert "Traceback" not in out



async def test_workers_exit_with_their_supervisor_and_the_next_start_ends_their_calls(
        cluster: Cluster) -> None:
    expert, customer, _ = await in_call(cluster, 2)
    [(call_id, _)] = live_calls(cluster.data_dir, 2)
    pids = [node.pid for node in cluster.nodes().values()]
    cluster.process.proc.kill()  # the supervisor, at once: no drain, nothing closed
    for ws in (expert, customer):  # its workers see their control line close, and exit
        # The worker that exits last may first say what it saw of the other's going (a
        # carried customer's socket cut: participant.away), then its own sockets close.
        async with asyncio.timeout(10):
            while (cut := await ws.receive()).type == aiohttp.WSMsgType.TEXT:
                pass
        assert cut.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSE,
                            aiohttp.WSMsgType.ERROR), cut
    async with asyncio.timeout(10):
        while any(os.path.exists(f"/proc/{pid}") for pid in pids):  # noqa: ASYNC240
            await asyncio.sleep(0.05)
    [(still_open, _)] = live_calls(cluster.data_dir, 2)  # nobody left to end it
    assert still_open == call_id

    again = ServeProcess(cluster.data_dir, env={"VIDEOASSIST_WORKERS": str(WORKERS)})
    try:
        await asyncio.to_thread(again.wait_for, r"closed 1 calls left open by a previous run",
                                60)
        await asyncio.to_thread(again.wait_for, r"serving on", 60)
        assert live_calls(cluster.data_dir, 2) == []
        nodes_now = nodes(cluster.data_dir)
        assert sorted(nodes_now) == list(range(WORKERS))
        assert not {node.pid for node in nodes_now.values()} & set(pids)
    finally:
        assert await asyncio.to_thread(again.stop, 10) == 0, again.output


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    """A real webhook receiver on loopback."""
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
    await runner.cleanup()


async def test_one_worker_delivers_the_webhooks_every_worker_queues(
        template: Path, tmp_path: Path, receiver: Receiver) -> None:
    secret = "a webhook secret of some length"
    receiver.secret = secret.encode()
    async with started(template, tmp_path / "data", VIDEOASSIST_WEBHOOK_URL=receiver.url,
                       VIDEOASSIST_WEBHOOK_SECRET=secret) as cluster:
        sockets = []
        holders = set()
        for job in JOBS[:2]:  # the second call goes on the other worker
            expert, customer, holder = await in_call(cluster, job)
            sockets += [expert, customer]
            holders.add(holder)
        assert holders == {0, 1}
        for ws in sockets:
            await leave(ws)
        async with asyncio.timeout(10):
            while len(receiver.events("call.ended")) < 2:
                await receiver.wait_for(len(receiver.received) + 1)
        assert len(receiver.events("call.started")) == 2
        ids = [r.json["id"] for r in receiver.received]
        assert len(ids) == len(set(ids)) == 4, ids  # each delivery sent once
        async with asyncio.timeout(5):  # each logged once its answer is recorded
            while len(delivered := [line for line in cluster.process.lines
                                    if " delivered (attempt" in line]) < 4:
                await asyncio.sleep(0.05)
        assert len(delivered) == 4 and all("[worker 0]" in line for line in delivered), \
            delivered


async def test_a_second_server_on_the_same_port_is_refused_not_joined(
        cluster: Cluster, template: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    shutil.copytree(template, other)
    for workers in ("2", "1"):
        result = await asyncio.to_thread(
            videoassist, other, "serve", "--port", str(cluster.process.port),
            env=clean_env(VIDEOASSIST_WORKERS=workers))
        assert result.code in (1, 2), result
        assert "address already in use" in result.err.lower(), result.err
    assert sorted(cluster.nodes()) == list(range(WORKERS))
    assert (await (await cluster.on(0)).request("GET", "/readyz"))[0] == 200


async def test_each_worker_has_a_slice_of_the_media_ports_of_its_own(
        template: Path, tmp_path: Path) -> None:
    first, last = free_udp_ports(8)
    slices = {0: (first, first + 3), 1: (first + 4, last)}
    async with started(template, tmp_path / "data", VIDEOASSIST_MEDIA_PORTS=f"{first}-{last}",
                       VIDEOASSIST_MEDIA_ADDRESSES="127.0.0.1") as cluster:
        for worker, (low, high) in slices.items():
            assert any(f"worker {worker} started (pid " in line
                       and f", media ports {low}-{high})" in line
                       for line in cluster.process.lines), cluster.process.output
        token = await (await cluster.on(0)).sign_in("bob")
        clients = []
        try:
            # A call placed on each worker: job 1's on worker 0 (a tie), job 2's on the
            # least loaded one, worker 1.
            for worker, job in ((0, 1), (1, 2)):
                client = await MediaClient(await cluster.on(worker), token, job).start()
                clients.append(client)
                holder = cluster.holder(job)
                assert holder == worker
                low, high = slices[holder]
                sent = [c for sdp in client.server_sdps for c in sdp_candidates(sdp)]
                assert all(ip == "127.0.0.1" and low <= port <= high
                           for ip, port, _ in sent), (worker, sent)
        finally:
            for client in clients:
                await client.close()


async def test_a_media_port_range_too_small_for_the_workers_is_refused_at_start(
        template: Path, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    shutil.copytree(template, data_dir)
    result = await asyncio.to_thread(
        videoassist, data_dir, "serve", "--port", "0", "--workers", "2",
        env=clean_env(VIDEOASSIST_MEDIA_PORTS="40000-40002"))
    assert result.code == 2, result
    assert result.err.strip().endswith(
        "VIDEOASSIST_MEDIA_PORTS: 3 ports cannot give each of the 2 workers the 2 it needs "
        "at least: widen the range or run fewer workers"), result.err
