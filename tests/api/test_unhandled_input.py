"""Input that used to escape the error hierarchy (issue 20, finding 12): JSON nested past
the recursion limit, integers too large for a float, non-ASCII digits in a path, and the
same on /ws before and after auth. Each must be a clear ``bad_request`` (HTTP 400), and
the server must log no traceback."""

from __future__ import annotations

import json
import logging

import aiohttp
import pytest

from tests.support.server import Server, receive, two_parties

HUGE = "1" + "0" * 400  # a JSON integer no float holds
DEEP_ARRAY = "[" * 30_000 + "]" * 30_000  # under 64 KiB, far past Python's recursion limit
DEEP_OBJECT = '{"a":' * 6_000 + "1" + "}" * 6_000


def no_tracebacks(caplog: pytest.LogCaptureFixture) -> None:
    failed = [r for r in caplog.records if r.exc_info is not None or r.levelno >= logging.ERROR]
    assert not failed, [r.getMessage() for r in failed]


async def test_http_bad_input_is_a_400_without_traceback(
        server: Server, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    json_headers = {"Content-Type": "application/json"}
    for path in ("/api/session", "/api/invites/redeem", "/api/invites/inspect"):
        for body in (DEEP_ARRAY, DEEP_OBJECT, '{"x": ' + DEEP_ARRAY + "}"):
            status, answer, _ = await server.request("POST", path, data=body,
                                                     headers=json_headers)
            assert (status, answer["error"]["code"]) == (400, "bad_request"), (path, answer)
    _, token = await server.staff("expert")
    for digits in ("²", "٣", "\uff11", "¹²"):
        status, answer, _ = await server.request("GET", f"/api/jobs/{digits}", token=token)
        assert (status, answer["error"]["code"]) == (400, "bad_request"), (digits, answer)
    shapes = ('{"shapes": [{"id": "a", "kind": "pen", "points": [[' + HUGE + ', 0.5]], '
              '"color": "#ff0000", "width": 0.01}]}')
    for body in (shapes, shapes.replace('"width": 0.01', '"width": ' + HUGE)
                 .replace(HUGE + ", 0.5", "0.5, 0.5")):
        status, answer, _ = await server.request("POST", "/api/snapshots/1/versions",
                                                 token=token, data=body, headers=json_headers)
        assert (status, answer["error"]["code"]) == (400, "bad_request"), answer
    no_tracebacks(caplog)


async def test_ws_bad_input_is_bad_request_before_and_after_auth(
        server: Server, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    staff_token, customer_token, job_id = await two_parties(server)
    ws = await server.ws()
    for raw in (DEEP_ARRAY, DEEP_OBJECT, '{"type": "auth", "token": ' + DEEP_ARRAY + "}"):
        await ws.send_str(raw)
        error = await receive(ws)
        assert (error["type"], error["code"]) == ("error", "bad_request"), error
    await ws.send_json({"type": "auth", "token": staff_token, "job": job_id})
    assert (await receive(ws))["type"] == "joined"  # the socket lived through it all

    customer, joined = await server.join_call(customer_token)
    target = joined["you"]["id"]
    def huge(message: dict[str, object]) -> str:
        return json.dumps(message).replace('"HUGE"', HUGE)

    pen = {"id": "s", "kind": "pen", "points": [[0.5, "HUGE"]], "color": "#ff0000",
           "width": 0.01}
    arrow = {"id": "s", "kind": "arrow", "points": [[0.1, 0.1], [0.2, 0.2]],
             "color": "#ff0000", "width": "HUGE"}
    messages = [
        DEEP_ARRAY,
        huge({"type": "annotation.pointer", "target": target, "x": "HUGE", "y": 0.5}),
        huge({"type": "annotation.add", "target": target, "shape": pen}),
        huge({"type": "camera.control", "target": target, "action": "zoom", "value": "HUGE"}),
        huge({"type": "camera.state", "facing": None, "torch": None, "zoom": "HUGE",
              "can": []}),
        huge({"type": "snapshot.request", "camera": target, "shapes": [arrow]}),
    ]
    for raw in messages:
        await ws.send_str(raw)
        error = await receive(ws, skip=("participant.joined", "media.tracks"))
        assert (error["type"], error["code"]) == ("error", "bad_request"), (raw[:80], error)
    await ws.send_json({"type": "ping"})
    assert (await receive(ws, skip=("participant.joined",)))["type"] == "pong"
    for socket in (ws, customer):
        await socket.close()
    assert ws.close_code == aiohttp.WSCloseCode.OK
    no_tracebacks(caplog)


async def test_ws_lone_surrogate_is_bad_request_not_a_database_error(
        server: Server, caplog: pytest.LogCaptureFixture) -> None:
    """JSON may escape a lone surrogate ("\\ud800"), which no UTF-8 text, and so no
    database, can hold: found by tests/signalling/test_fuzz_messages.py as an
    ``internal`` error from note.add. A surrogate pair (an emoji) is fine."""
    caplog.set_level(logging.INFO)
    staff_token, _, job_id = await two_parties(server)
    ws, _ = await server.join_call(staff_token, job_id)
    for raw in ('{"type": "note.add", "text": "valve \\ud800"}',
                '{"type": "chat.message", "text": "\\udfff\\ud800"}',
                '{"type": "ping", "x": "\\ud83d"}'):
        await ws.send_str(raw)
        error = await receive(ws)
        assert (error["type"], error["code"]) == ("error", "bad_request"), (raw, error)
    await ws.send_str('{"type": "note.add", "text": "valve \\ud83d\\ude00"}')
    assert (await receive(ws))["type"] == "note.added"
    await ws.close()
    no_tracebacks(caplog)


@pytest.mark.parametrize("server_backend", ["sqlite", "postgresql"])
async def test_a_nul_character_is_bad_request_on_every_database(
        server: Server, caplog: pytest.LogCaptureFixture) -> None:
    """PostgreSQL's text holds no NUL character: "\\u0000" in a note, a job's title, a
    caption, a username or a key's name was a database error there (500, a traceback),
    and in a chat or note message an ``internal`` error; found by the route fuzz on
    PostgreSQL. It is a bad_request on both databases, as no one types it."""
    caplog.set_level(logging.INFO)
    _, admin_token = await server.staff("admin")
    staff_token, _, job_id = await two_parties(server)
    json_headers = {"Content-Type": "application/json"}
    for method, path, token, body in (
            ("POST", f"/api/jobs/{job_id}/notes", staff_token, '{"text": "valve\\u0000"}'),
            ("POST", "/api/jobs", staff_token, '{"title": "\\u0000"}'),
            ("POST", "/api/keys", admin_token, '{"name": "CRM\\u0000", "scopes": ["jobs:read"]}'),
            ("POST", "/api/session", None, '{"username": "a\\u0000b", "password": "x"}'),
            ("POST", "/api/invites/redeem", None, '{"token": "\\u0000"}')):
        status, answer, _ = await server.request(method, path, token=token, data=body,
                                                 headers=json_headers)
        assert (status, answer["error"]["code"]) == (400, "bad_request"), (path, answer)
    for path, token in (("/api/jobs?q=a%00", staff_token),
                        ("/api/audit?actor=%00", admin_token),
                        ("/api/audit?format=jsonl&target=x%00", admin_token)):
        status, answer, _ = await server.request("GET", path, token=token)
        assert (status, answer["error"]["code"]) == (400, "bad_request"), (path, answer)
    ws, _ = await server.join_call(staff_token, job_id)
    for raw in ('{"type": "note.add", "text": "valve \\u0000"}',
                '{"type": "chat.message", "text": "\\u0000"}'):
        await ws.send_str(raw)
        error = await receive(ws)
        assert (error["type"], error["code"]) == ("error", "bad_request"), (raw, error)
    await ws.send_str('{"type": "note.add", "text": "a backslash: \\\\u0000"}')
    assert (await receive(ws))["note"]["text"] == "a backslash: \\u0000"
    await ws.close()
    no_tracebacks(caplog)
