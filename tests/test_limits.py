"""Every bound on what one client may cost the server, driven to its edge (issue 20).

docs/configuration.md's Limits table lists each limit (a setting, or a value fixed in
the code) with its value and what happens at the edge; docs/security.md's names what
it defends against and the test that drives it to its edge: at the limit it works, one
past it is refused the documented way. Most of those tests live beside the feature
(the floods in tests/api/test_floods.py and tests/signalling/test_ws_floods.py, the
media ones in tests/media/test_candidates.py...); the edges nothing else drove are
here. The first tests hold the two tables to each other, to the code and to the
tests they name, so that a new limit cannot go undocumented or untested.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
from aiortc import RTCConfiguration, RTCPeerConnection

from tests.support.docs import DOCS
from tests.support.server import Server, ServerFactory, receive, two_parties
from videoassist.api.body import MAX_BODY_BYTES
from videoassist.api.ws import HARD_FRAME_LIMIT
from videoassist.appkeys import MEDIA
from videoassist.auth.apikeys import new_api_key
from videoassist.config import Settings
from videoassist.domain.refusals import MAX_TEXT, cut

ROOT = Path(__file__).resolve().parents[1]
ROW = re.compile(r"^\| (.+?) \| (.+?) \| (.+?) \| (.+?) \|$", re.M)
CODE = re.compile(r"`([^`]+)`")
TEST = re.compile(r"`(tests/[\w/]+\.py)::(\w+)`")
# Settings whose names say they bound something: each must be a row of the tables.
LIMIT_NAME = re.compile(r"(^|_)(max|timeout|window|rate|burst|per_min|per_s)(_|$)")
NOT_LIMITS = {  # named like limits, but bound no client's use of the server
    "invite_max_ttl_s", "node_timeout_s", "notify_timeout_s", "smtp_timeout_s",
    "webhook_timeout_s",
    "webhook_max_attempts", "webhook_retry_max_s", "drain_timeout_s",
}


def limits_table(doc: str) -> dict[str, list[str]]:
    """The rows of a doc's ``## Limits`` table, by the first code span of their second
    column (the setting or the constant): the cells."""
    text = (DOCS / doc).read_text(encoding="utf-8")
    assert "\n## Limits\n" in text, f"docs/{doc} has no ## Limits section"
    section = text.split("\n## Limits\n", 1)[1].split("\n## ", 1)[0]
    rows: dict[str, list[str]] = {}
    for cells in ROW.findall(section):
        if cells[0] in ("Limit", "---") or set(cells[0]) <= {"-"}:
            continue
        key = CODE.search(cells[1])
        assert key, f"docs/{doc} Limits: no setting in {cells[1]!r}"
        assert key[1] not in rows, f"docs/{doc} Limits: {key[1]} twice"
        rows[key[1]] = list(cells)
    assert rows, f"docs/{doc}: an empty Limits table"
    return rows


def test_every_limit_is_in_both_tables_with_its_value_and_a_test_that_exists() -> None:
    configuration = limits_table("configuration.md")
    security = limits_table("security.md")
    assert set(configuration) == set(security), (
        "limits in only one of configuration.md and security.md: "
        f"{set(configuration) ^ set(security)}")
    defaults = {f"VIDEOASSIST_{f.name.upper()}": f.default for f in dataclasses.fields(Settings)}
    for key, cells in configuration.items():
        value = CODE.search(cells[2])
        assert value, f"configuration.md Limits, {key}: no value"
        if key.startswith("VIDEOASSIST_"):
            assert key in defaults, f"configuration.md Limits: {key} is not a setting"
            assert float(value[1]) == defaults[key], (key, value[1], defaults[key])
        elif key.startswith("videoassist."):  # a value fixed in the code
            module, _, name = key.rpartition(".")
            assert float(value[1]) == getattr(importlib.import_module(module), name), key
        assert len(cells[3]) > 20, f"configuration.md Limits, {key}: what happens at the edge?"
    for key, cells in security.items():
        named = TEST.findall(cells[3])
        assert named, f"security.md Limits, {key}: no test named"
        for path, function in named:
            assert function in _test_functions(ROOT / path), f"{key}: no {path}::{function}"


def test_every_setting_that_bounds_a_client_is_in_the_limits_table() -> None:
    documented = set(limits_table("configuration.md"))
    for f in dataclasses.fields(Settings):
        if LIMIT_NAME.search(f.name) and f.name not in NOT_LIMITS:
            assert f"VIDEOASSIST_{f.name.upper()}" in documented, (
                f"{f.name} looks like a limit: add it to the Limits tables of "
                "docs/configuration.md and docs/security.md (or to NOT_LIMITS)")


def _test_functions(path: Path) -> set[str]:
    assert path.is_file(), path
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {node.name for node in tree.body
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            and node.name.startswith("test_")}


# -- edges that no other test drove ----------------------------------------------------


async def test_a_message_of_the_largest_size_is_taken_one_byte_more_is_too_large(
        server_factory: ServerFactory) -> None:
    """VIDEOASSIST_WS_MAX_MESSAGE_BYTES counts UTF-8 bytes, not characters."""
    limit = 1024  # the least it may be: a chat message of that size is within 2000 characters
    server = await server_factory(ws_max_message_bytes=limit)
    staff_token, _, job_id = await two_parties(server)
    ws, _ = await server.join_call(staff_token, job_id)
    head = len(json.dumps({"type": "chat.message", "text": ""}))

    def chat(text: str) -> str:
        raw = json.dumps({"type": "chat.message", "text": text}, ensure_ascii=False)
        assert len(raw.encode()) in (limit, limit + 1)
        return raw

    await ws.send_str(chat("x" * (limit - head)))
    assert (await receive(ws))["type"] == "chat.message"
    for raw in (chat("x" * (limit - head + 1)),  # one byte more
                chat("é" + "x" * (limit - head - 1))):  # as many characters, one more byte
        await ws.send_str(raw)
        error = await receive(ws)
        assert (error["type"], error["code"]) == ("error", "too_large"), error
    await ws.send_json({"type": "ping"})
    assert (await receive(ws))["type"] == "pong"
    await ws.close()


async def test_a_frame_under_one_mib_gets_an_error_one_of_a_mib_closes_the_socket(
        server: Server) -> None:
    """Above WS_MAX_MESSAGE_BYTES and below the fixed HARD_FRAME_LIMIT (1 MiB) a frame
    is read and answered too_large; from 1 MiB on, aiohttp closes the socket (1009)
    without reading it (its ``max_msg_size`` is the first size refused)."""
    staff_token, _, job_id = await two_parties(server)
    ws, _ = await server.join_call(staff_token, job_id)
    await ws.send_str("x" * (HARD_FRAME_LIMIT - 1))
    assert (await receive(ws))["code"] == "too_large"
    await ws.send_str("x" * HARD_FRAME_LIMIT)
    closing = await ws.receive(timeout=10)
    assert closing.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED), closing
    assert ws.close_code == aiohttp.WSCloseCode.MESSAGE_TOO_BIG


async def test_a_json_body_of_64_kib_is_read_one_byte_more_is_413(server: Server) -> None:
    """MAX_BODY_BYTES, with a Content-Length and without one (chunked)."""
    def body(size: int) -> bytes:
        head, tail = b'{"token": "not-a-link", "pad": "', b'"}'
        return head + b" " * (size - len(head) - len(tail)) + tail

    async def chunked(data: bytes) -> AsyncIterator[bytes]:
        for start in range(0, len(data), 8192):
            yield data[start:start + 8192]

    for sized in (True, False):
        for size, status, code in ((MAX_BODY_BYTES, 410, "gone"),
                                   (MAX_BODY_BYTES + 1, 413, "too_large")):
            data = body(size)
            assert len(data) == size
            async with server.http.post(
                    server.url + "/api/invites/inspect",
                    data=data if sized else chunked(data),
                    headers={"Content-Type": "application/json"}) as response:
                answer = await response.json()
            assert (response.status, answer["error"]["code"]) == (status, code), (sized, size)


async def test_the_sdp_m_line_limit_takes_that_many_and_refuses_one_more(
        server_factory: ServerFactory) -> None:
    """VIDEOASSIST_SDP_MAX_M_LINES: exactly at it an offer is answered; one more m-line
    and it is refused before aiortc parses it, leaving no media session."""
    server = await server_factory(sdp_max_m_lines=2)
    router = server.app[MEDIA]
    _, customer_token, _ = await two_parties(server)
    for m_lines, answer in ((3, "bad_request"), (2, "sdp.answer")):
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        try:
            for _ in range(m_lines):
                pc.addTransceiver("video", direction="recvonly")
            await pc.setLocalDescription(await pc.createOffer())
            ws, joined = await server.join_call(customer_token)
            await ws.send_json({"type": "sdp.offer", "sdp": pc.localDescription.sdp})
            reply = await receive(ws, 20, skip=("media.tracks",))
            assert reply.get("code", reply["type"]) == answer, reply
            if answer == "bad_request":
                assert "VIDEOASSIST_SDP_MAX_M_LINES" in reply["message"]
                assert joined["you"]["id"] not in router.sessions  # type: ignore[attr-defined]
            await ws.close()
        finally:
            await pc.close()


async def _refused(server: Server, client: str) -> None:
    status, _, _ = await server.request("GET", "/api/jobs", token=new_api_key(),
                                        headers={"X-Forwarded-For": client})
    assert status == 401


async def _refusal_rows(server: Server) -> list[dict[str, Any]]:
    return [e for e in await server.store.audit.recent(100) if e["action"] == "apikey.refused"]


async def test_a_refusal_window_counts_until_its_end_then_writes_the_count(
        server_factory: ServerFactory) -> None:
    """VIDEOASSIST_AUDIT_REFUSALS_WINDOW_S: the first refusal is a row; the next ones
    within the window only a count; the first past it writes the count and opens a new
    window with a row of its own."""
    window = 60.0
    server = await server_factory(trust_forwarded_for=True, audit_refusals_window_s=window)
    await _refused(server, "198.51.100.7")
    assert len(await _refusal_rows(server)) == 1
    server.clock.advance(window - 2)
    for _ in range(3):
        await _refused(server, "198.51.100.7")
    assert len(await _refusal_rows(server)) == 1  # within the window: counted
    server.clock.advance(2.5)
    await _refused(server, "198.51.100.7")
    rows = await _refusal_rows(server)
    assert [e["detail"].get("repeated") for e in rows] == [None, 3, None], rows


async def test_refusal_windows_of_their_own_for_so_many_clients_then_one_for_the_rest(
        server_factory: ServerFactory) -> None:
    """VIDEOASSIST_AUDIT_REFUSALS_MAX_CLIENTS: that many clients get a row each; the
    next one's refusals are counted under client:*."""
    server = await server_factory(trust_forwarded_for=True, audit_refusals_max_clients=2)
    for n in range(4):
        await _refused(server, f"198.51.100.{n}")
    actors = [e["actor"] for e in reversed(await _refusal_rows(server))]
    assert actors == ["client:198.51.100.0", "client:198.51.100.1", "client:*"], actors


async def test_an_analytics_period_of_366_days_is_served_367_are_refused(
        server: Server) -> None:
    """analytics.MAX_DAYS: a year of calls grouped per day is the longest read."""
    _, token = await server.staff("admin")
    status, body, _ = await server.request(
        "GET", "/api/analytics?from=2025-01-01&to=2026-01-01", token=token)
    assert status == 200 and len(body["calls_per_day"]) == 366
    status, body, _ = await server.request(
        "GET", "/api/analytics?from=2025-01-01&to=2026-01-02", token=token)
    assert (status, body["error"]["message"]) == (400, "The period is at most 366 days.")



def test_refusal_text_of_256_characters_is_kept_longer_is_cut() -> None:
    """refusals.MAX_TEXT: what a refusal row stores of a path or username."""
    assert cut("p" * MAX_TEXT) == "p" * MAX_TEXT
    assert cut("p" * (MAX_TEXT + 1)) == "p" * (MAX_TEXT - 1) + "…"
