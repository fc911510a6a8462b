"""Floods of the signalling socket, performed against the real server on 127.0.0.1 and
bounded in count and time: what they cost the server is bounded too (issue 20)."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp

from tests.support.server import Server, ServerFactory


async def _drain(ws: aiohttp.ClientWebSocketResponse, seconds: float = 10.0
                 ) -> tuple[list[dict[str, Any]], bool]:
    """Every message until the socket closes or is quiet for 2 s (bounded by
    ``seconds`` in all); and whether it closed."""
    answers: list[dict[str, Any]] = []
    async with asyncio.timeout(seconds):
        while True:
            try:
                msg = await ws.receive(timeout=2.0)
            except TimeoutError:
                return answers, False
            if msg.type == aiohttp.WSMsgType.TEXT:
                answers.append(msg.json())
            else:
                return answers, msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)


async def test_messages_before_auth_close_the_socket_after_a_few(server: Server) -> None:
    """Issue 20 #15: 20,000 messages before auth were each answered on one socket in
    3 s. Now a few are answered, then the socket is closed (4400)."""
    limit = server.settings.ws_preauth_max_messages
    ws = await server.ws()
    sent = 0
    async with asyncio.timeout(30):
        for n in range(2000):
            try:
                await ws.send_json({"type": "chat.message", "text": f"{n}"})
            except ConnectionError:
                break
            sent += 1
            if ws.closed:
                break
    answers, closed = await _drain(ws)
    assert closed, (len(answers), sent)
    assert ws.close_code == 4400
    errors = [a["code"] for a in answers]
    assert errors == ["unauthorized"] * limit + ["auth_required"], errors


async def test_bad_frames_before_auth_count_too_and_auth_still_works(
        server_factory: ServerFactory) -> None:
    server = await server_factory(ws_preauth_max_messages=3)
    _, token = await server.staff("expert")
    job_id = await server.job(token)
    # At the edge: three bad messages of any kind are answered, then auth works.
    ws = await server.ws()
    await ws.send_str("{not json")
    await ws.send_bytes(b"\x00")
    await ws.send_json({"type": "ping"})
    await ws.send_json({"type": "auth", "token": token, "job": job_id})
    answers, closed = await _drain(ws)
    assert [a.get("code", a["type"]) for a in answers][:4] == [
        "bad_request", "bad_request", "unauthorized", "joined"], answers
    await ws.close()
    # One more, and the socket is closed before auth is read.
    ws = await server.ws()
    for _ in range(4):
        await ws.send_json({"type": "ping"})
    await ws.send_json({"type": "auth", "token": token, "job": job_id})
    answers, closed = await _drain(ws)
    assert closed and ws.close_code == 4400
    assert [a["code"] for a in answers] == ["unauthorized"] * 3 + ["auth_required"]


async def test_the_rate_limit_holds_before_auth(server_factory: ServerFactory) -> None:
    """The connection's token bucket is taken from before auth too: past the burst,
    messages are dropped unanswered (one rate_limited notice) and still count."""
    server = await server_factory(ws_rate_per_s=1, ws_rate_burst=3, ws_preauth_max_messages=50)
    ws = await server.ws()
    for _ in range(40):
        await ws.send_json({"type": "ping"})
    answers, _ = await _drain(ws)
    codes = [a["code"] for a in answers]
    assert codes.count("rate_limited") == 1, codes
    assert 3 <= codes.count("unauthorized") <= 6, codes
    await ws.close()
