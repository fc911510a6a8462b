"""Stopping without cutting calls: ``videoassist serve`` as a real process, told to stop
with real signals while real clients (aiortc peers, WebSockets) are in a call.

The test talks to the child over loopback with the conftest's ``Server`` helpers (its
HTTP and WebSocket calls only: the app lives in the other process).
"""

from __future__ import annotations

import asyncio
import shutil
import signal
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.support.peers import MediaClient
from tests.support.process import ServeProcess, ok
from tests.support.server import PASSWORD, Clock, Server, leave, receive
from videoassist.config import Settings

JOB = 1  # the job the template creates
STOP_S = 15.0  # bound on any process exit the tests wait for


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data_dir = tmp_path_factory.mktemp("template") / "data"
    ok(data_dir, "user", "add", "bob", "--role", "expert", "--password-stdin",
       stdin=PASSWORD + "\n")
    assert ok(data_dir, "job", "create", "Boiler makes a noise").strip() == str(JOB)
    return data_dir


@pytest.fixture(params=["1", "2"], ids=["one-process", "two-workers"])
async def serve(template: Path, tmp_path: Path, request: pytest.FixtureRequest
                ) -> AsyncIterator[Callable[..., Any]]:
    """Start ``videoassist serve`` on a copy of the template, as one process and with
    two workers under the supervisor; yields a starter that takes ``VIDEOASSIST_*``
    settings and returns (process, remote helpers)."""
    started: list[ServeProcess] = []
    http = aiohttp.ClientSession()

    async def start(**env: str) -> tuple[ServeProcess, Server]:
        data_dir = tmp_path / f"data{len(started)}"
        shutil.copytree(template, data_dir)
        process = ServeProcess(data_dir, env={"VIDEOASSIST_WORKERS": request.param, **env})
        started.append(process)
        await asyncio.to_thread(process.wait_for, r"serving on", 60)
        await asyncio.to_thread(process.wait_ready)
        remote = Server(process.url, Settings(port=process.port), None,  # type: ignore[arg-type]
                        Clock(), http)
        return process, remote

    yield start
    await http.close()
    for process in started:
        process.stop(timeout=2)


async def status_of(remote: Server, path: str) -> tuple[int, Any]:
    status, body, _ = await remote.request("GET", path)
    return status, body


async def until_not_ready(remote: Server, timeout: float = 5.0) -> Any:
    """Poll /readyz until it answers 503; its body."""
    async with asyncio.timeout(timeout):
        while True:
            status, body = await status_of(remote, "/readyz")
            if status == 503:
                return body
            assert status == 200, body
            await asyncio.sleep(0.05)


async def exit_code(process: ServeProcess, timeout: float = STOP_S) -> int:
    return await asyncio.to_thread(process.proc.wait, timeout)


async def next_of(client: MediaClient, kind: str) -> dict[str, Any]:
    async with asyncio.timeout(5):
        while True:
            message = await client.messages.get()
            if message["type"] == kind:
                return message


async def refused_join(remote: Server, token: str, job: int = JOB
                       ) -> tuple[dict[str, Any], int | None, str]:
    """Authenticate a new socket that the server refuses: its error, close code, reason."""
    ws = await remote.ws()
    await ws.send_json({"type": "auth", "token": token, "job": job})
    error = await receive(ws)
    closing = await ws.receive(timeout=5)
    assert closing.type == aiohttp.WSMsgType.CLOSE, closing
    return error, ws.close_code, closing.extra


async def test_sigterm_drains_until_the_last_call_ends_then_exits_0(serve: Any) -> None:
    process, remote = await serve(VIDEOASSIST_DRAIN_TIMEOUT_S="120")
    staff_token = await remote.sign_in("bob")
    customer_token = await remote.participant(staff_token, JOB)
    newcomer_token = await remote.participant(staff_token, JOB)  # redeemed, never joined
    other_job = await remote.job(staff_token, "Radiator cold")
    other_token = await remote.participant(staff_token, other_job)
    unused_link = await remote.invite(staff_token, JOB)
    expert = await MediaClient(remote, staff_token, JOB).start()
    customer = await MediaClient(remote, customer_token).start()
    try:
        await expert.wait_remote(customer.participant_id, "video", frames=10)
        await customer.wait_remote(expert.participant_id, "video", frames=10)

        process.proc.send_signal(signal.SIGTERM)
        assert await until_not_ready(remote) == {"status": "draining"}
        assert await status_of(remote, "/healthz") == (200, {"status": "ok"})

        # No new call: not for a redeemed token's holder, not through a link redeemed now.
        error, code, reason = await refused_join(remote, other_token, other_job)
        assert (error["code"], code, reason) == ("draining", 1013, "draining"), error
        assert "restarting" in error["message"]
        status, body = await remote.redeem(unused_link)
        assert (status, body["error"]["code"]) == (503, "draining"), body
        status, _, _ = await remote.request("POST", "/api/invites/inspect",
                                            json={"token": unused_link})
        assert status == 200  # the refused redeem left the link unused

        # The call goes on: chat both ways, media still flowing.
        assert expert.ws is not None and customer.ws is not None
        await expert.ws.send_json({"type": "chat.message", "text": "Still there?"})
        chat = await next_of(customer, "chat.message")
        assert chat["message"]["text"] == "Still there?"
        received = customer.remote(expert.participant_id)
        assert received is not None
        frames = received.frames
        await customer.wait_remote(expert.participant_id, "video", frames=frames + 15)

        # Into the call in progress: someone of the call coming back after a lost
        # connection, and someone new to it, are both let in.
        for token in (customer_token, newcomer_token):
            back, joined = await remote.join_call(token)
            while (await next_of(expert, "participant.joined"))["participant"]["id"] != \
                    joined["you"]["id"]:
                pass  # joins announced before
            await leave(back)
        assert process.proc.poll() is None
    finally:
        await customer.close()
        await expert.close()

    assert await exit_code(process) == 0, process.output
    out = process.output
    assert "SIGTERM: draining" in out
    assert "drain: no call in progress: stopping" in out
    assert "Traceback" not in out


async def test_the_drain_timeout_closes_the_calls_left_and_exits_0(serve: Any) -> None:
    process, remote = await serve(VIDEOASSIST_DRAIN_TIMEOUT_S="1.5")
    staff_token = await remote.sign_in("bob")
    expert, _ = await remote.join_call(staff_token, JOB)
    customer, _ = await remote.join_call(await remote.participant(staff_token, JOB))
    await receive(expert)  # participant.joined
    signalled = time.monotonic()
    process.proc.send_signal(signal.SIGTERM)
    await until_not_ready(remote)
    for ws in (expert, customer):
        notice = await receive(ws, timeout=10)
        assert (notice["type"], notice["code"]) == ("error", "server_shutdown"), notice
        closing = await ws.receive(timeout=5)
        assert closing.type == aiohttp.WSMsgType.CLOSE, closing
        assert (ws.close_code, closing.extra) == (1001, "server_shutdown")
    assert time.monotonic() - signalled >= 1.5  # not before the timeout
    assert await exit_code(process) == 0, process.output
    assert "drain: 1 calls still in progress after 1.5 s" in process.output


async def test_a_second_sigterm_exits_at_once(serve: Any) -> None:
    process, remote = await serve(VIDEOASSIST_DRAIN_TIMEOUT_S="600")
    staff_token = await remote.sign_in("bob")
    expert, _ = await remote.join_call(staff_token, JOB)
    process.proc.send_signal(signal.SIGTERM)
    await asyncio.to_thread(process.wait_for, r"SIGTERM: draining", 5)
    signalled = time.monotonic()
    process.proc.send_signal(signal.SIGTERM)
    assert await exit_code(process, 5) == 128 + signal.SIGTERM, process.output
    assert time.monotonic() - signalled < 3
    assert "SIGTERM again: exiting at once with status 143" in process.output
    closing = await expert.receive(timeout=5)  # cut, not closed politely
    assert closing.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSE,
                            aiohttp.WSMsgType.ERROR), closing
    assert expert.close_code != 1001


async def test_sigint_drains_like_sigterm(serve: Any) -> None:
    """Ctrl-C in a terminal: the same drain (and a second one exits at once)."""
    process, remote = await serve()
    expert, _ = await remote.join_call(await remote.sign_in("bob"), JOB)
    process.proc.send_signal(signal.SIGINT)
    await until_not_ready(remote)
    assert process.proc.poll() is None
    await leave(expert)  # (a socket closed without it: the call waits for it, away)
    assert await exit_code(process) == 0, process.output
    assert "SIGINT: draining" in process.output
    assert "drain: no call in progress: stopping" in process.output


async def _closed_by_server(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                            trickle: bool) -> float:
    """Wait until the server closes the connection (``trickle``: sending a header line
    every half second meanwhile, a request head that never ends); when, in seconds
    since the call."""
    start = time.monotonic()
    while True:
        if trickle:
            writer.write(b"X-Slow: 1\r\n")
        try:
            data = await asyncio.wait_for(reader.read(65536), 0.5)
        except TimeoutError:
            continue
        except ConnectionError:
            data = b""
        if not data:
            return time.monotonic() - start


async def test_idle_and_slow_connections_are_closed(serve: Any) -> None:
    """Issue 20 #13: 200 connections sending their headers a line at a time were held
    40 s, an idle one 200 s (aiohttp waits an hour by default). Now a connection that
    has not sent a whole request head within VIDEOASSIST_HTTP_IDLE_TIMEOUT_S of opening,
    or of its last response, is closed."""
    process, remote = await serve(VIDEOASSIST_HTTP_IDLE_TIMEOUT_S="2")
    idle = [await asyncio.open_connection("127.0.0.1", process.port) for _ in range(20)]
    slow = [await asyncio.open_connection("127.0.0.1", process.port) for _ in range(20)]
    for _, writer in slow:
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
    kept = await asyncio.open_connection("127.0.0.1", process.port)
    kept[1].write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    assert (await asyncio.wait_for(kept[0].readline(), 5)).startswith(b"HTTP/1.1 200")
    try:
        async with asyncio.timeout(20):  # the timeout, and time for a busy machine
            waits = await asyncio.gather(
                *(_closed_by_server(r, w, False) for r, w in idle),
                *(_closed_by_server(r, w, True) for r, w in slow),
                _closed_by_server(kept[0], kept[1], False))
    finally:
        for _, writer in [*idle, *slow, kept]:
            writer.close()
    assert waits[-1] >= 1.0, waits  # not before the timeout after a response...
    status, _ = await status_of(remote, "/healthz")  # ...and the server serves on
    assert status == 200
