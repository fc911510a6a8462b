"""Attacks on the signalling socket: each gets a clear error; nothing else breaks."""

from __future__ import annotations

import asyncio
import json
import time

import aiohttp
import pytest

from tests.support.databases import raw_execute
from tests.support.server import Server, ServerFactory, receive
from videoassist.appkeys import HUB
from videoassist.config import Secret


async def _call(server: Server) -> tuple[str, int]:
    _, token = await server.staff("expert")
    return token, await server.job(token)


@pytest.mark.parametrize("origin", ["https://evil.example", "null",
                                    "http://127.0.0.1:1", None])
async def test_cross_origin_handshake_is_refused(server: Server, origin: str | None) -> None:
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await server.ws(origin=origin)
    assert refused.value.status == 403


# Origins that a comparison by prefix, suffix or substring would let through: each made
# from an allowed origin (``{o}``) or a part of it (``{host}``: host and port).
NEAR_ORIGINS = {
    "suffix": "{o}.evil.example",
    "suffix without a dot": "{o}evil.example",
    "another port beginning the same": "{o}0",
    "a path": "{o}/evil",
    "an empty path": "{o}/",
    "userinfo": "{o}@evil.example",
    "the origin as userinfo of another host": "http://{host}@evil.example",
    "a prefix of it": "{o_minus_one}",
    "no port": "{scheme}://{hostname}",
    "other scheme": "{other_scheme}://{host}",
    "inside another": "https://evil.example/{o}",
    "two origins": "{o} https://evil.example",
    "trailing dot": "{scheme}://{hostname}.:{port}",
}


def _near(allowed: str, template: str) -> str:
    scheme, host = allowed.split("://", 1)
    hostname, port = host.rsplit(":", 1)
    return template.format(o=allowed, o_minus_one=allowed[:-1], scheme=scheme, host=host,
                           hostname=hostname, port=port,
                           other_scheme="https" if scheme == "http" else "http")


@pytest.mark.parametrize("allowed", [None, "https://app.example.com:8443"],
                         ids=["public URL's origin", "configured origin"])
@pytest.mark.parametrize("template", NEAR_ORIGINS.values(), ids=NEAR_ORIGINS.keys())
async def test_an_origin_that_only_resembles_an_allowed_one_is_refused(
    server_factory: ServerFactory, allowed: str | None, template: str
) -> None:
    """Origins are compared whole: starting with, ending with or containing an allowed
    one is not being it."""
    server = await server_factory(**({} if allowed is None else
                                     {"allowed_origins": (allowed,)}))
    [origin] = server.settings.allowed_origins
    near = _near(origin, template)
    assert near != origin
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await server.ws(origin=near)
    assert refused.value.status == 403, near
    ws = await server.ws(origin=origin)  # a control: the allowed origin itself opens
    await ws.close()


async def test_allowed_origins_are_configurable(server_factory: ServerFactory) -> None:
    server = await server_factory(allowed_origins=("https://app.example.com",))
    ws = await server.ws(origin="https://app.example.com")
    await ws.close()
    with pytest.raises(aiohttp.WSServerHandshakeError):
        await server.ws()  # its own public URL is no longer on the list


async def test_auth_must_come_within_the_deadline(server_factory: ServerFactory) -> None:
    server = await server_factory(ws_auth_timeout_s=0.3)
    ws = await server.ws()
    message = await receive(ws)
    assert message == {"type": "error", "code": "auth_timeout",
                       "message": "Send an auth message first."}
    await ws.receive(timeout=5)
    assert ws.close_code == 4408


async def test_a_bad_token_is_closed_with_4401(server: Server) -> None:
    ws = await server.ws()
    await ws.send_json({"type": "auth", "token": "forged.token.here", "job": 1})
    message = await receive(ws)
    assert (message["type"], message["code"]) == ("error", "unauthorized")
    await ws.receive(timeout=5)
    assert ws.close_code == 4401


async def test_messages_before_auth_are_refused_but_auth_still_works(server: Server) -> None:
    token, job_id = await _call(server)
    ws = await server.ws()
    await ws.send_str("{not json")
    assert (await receive(ws))["code"] == "bad_request"
    await ws.send_json({"type": "chat.message", "text": "hi"})
    assert (await receive(ws))["code"] == "unauthorized"
    await ws.send_json({"type": "auth", "token": token, "job": job_id})
    assert (await receive(ws))["type"] == "joined"
    await ws.close()


@pytest.mark.parametrize("raw, code", [
    ("{not json", "bad_request"),
    ("[]", "bad_request"),
    ('"just a string"', "bad_request"),
    ('{"no": "type"}', "bad_request"),
    ('{"type": 5}', "bad_request"),
    ('{"type": "launch.missiles"}', "bad_request"),
    ('{"type": "chat.message"}', "bad_request"),
    ('{"type": "chat.message", "text": ""}', "bad_request"),
    ('{"type": "chat.message", "text": "' + "x" * 2001 + '"}', "bad_request"),
    ('{"type": "annotation.add", "target": 1, "shape": {"id": "a", "kind": "arrow",'
     ' "points": [[0, 0], [1.5, 0]], "color": "#ff0000", "width": 0.01}}', "bad_request"),
    ('{"type": "annotation.add", "target": 1, "shape": {"id": "a", "kind": "arrow",'
     ' "points": [[0, 0], [NaN, 0]], "color": "#ff0000", "width": 0.01}}', "bad_request"),
    ('{"type": "annotation.pointer", "target": -1, "x": 0.5, "y": 0.5}', "bad_request"),
    ('{"type": "annotation.clear", "target": 999999}', "not_found"),
    ('{"type": "sdp.offer", "sdp": "hello"}', "bad_request"),
    ('{"type": "sdp.offer"}', "bad_request"),
    ('{"type": "auth", "token": "x"}', "bad_request"),
    ('{"type": "media.mute", "kind": "screen", "muted": true}', "bad_request"),
    ('{"type": "media.mute", "kind": "audio", "muted": "yes"}', "bad_request"),
    ('{"type": "media.mute", "kind": "audio", "muted": true}', "conflict"),  # no media yet
    ('{"type": "camera.control", "target": 1, "action": "zoom", "value": 1e309}',
     "bad_request"),
    ('{"type": "camera.control", "target": 1, "action": "zoom", "value": 0}', "bad_request"),
    ('{"type": "camera.control", "target": 1, "action": "torch", "value": 1}', "bad_request"),
    ('{"type": "camera.control", "target": 1, "action": "switch", "value": "left"}',
     "bad_request"),
    ('{"type": "camera.control", "target": 1, "action": "self-destruct"}', "bad_request"),
    ('{"type": "camera.control", "target": 999999, "action": "torch", "value": true}',
     "not_found"),
    ('{"type": "camera.state", "facing": null, "torch": null, "zoom": null, "can": ["fly"]}',
     "bad_request"),
    ('{"type": "snapshot.request"}', "bad_request"),
    ('{"type": "snapshot.request", "camera": "me"}', "bad_request"),
    ('{"type": "snapshot.request", "camera": 1, "shapes": {"id": "a"}}', "bad_request"),
    ('{"type": "snapshot.request", "camera": 1, "shapes": [' + ",".join(
        f'{{"id": "p{i}", "kind": "pen", "points": [[0, 0]], "color": "#ffffff", "width": 0.01}}'
        for i in range(201)) + "]}", "bad_request"),
    ('{"type": "snapshot.request", "camera": 1, "shapes": [{"id": "a", "kind": "pen",'
     ' "points": [[0, 0]], "color": "#fff", "width": 0.01}]}', "bad_request"),
    ('{"type": "snapshot.request", "camera": 1, "shapes": [{"id": "a", "kind": "text",'
     ' "points": [[0, 0]], "color": "#ffffff", "width": 0.01}]}', "bad_request"),
    ('{"type": "snapshot.request", "camera": 1, "shapes": [{"id": "a", "kind": "pen",'
     ' "points": [[0, 0]], "color": "#ffffff", "width": 0.01}, {"id": "a", "kind": "pen",'
     ' "points": [[1, 1]], "color": "#ffffff", "width": 0.01}]}', "bad_request"),
    ('{"type": "snapshot.request", "camera": 1, "request": "../../etc"}', "bad_request"),
    ('{"type": "snapshot.request", "camera": 999999}', "not_found"),
])
async def test_malformed_messages_get_an_error_and_the_call_lives_on(
    server: Server, raw: str, code: str
) -> None:
    token, job_id = await _call(server)
    ws, _ = await server.join_call(token, job_id)
    await ws.send_str(raw)
    error = await receive(ws)
    assert (error["type"], error["code"]) == ("error", code), error
    assert error["message"]
    await ws.send_json({"type": "chat.message", "text": "still here"})
    assert (await receive(ws))["message"]["text"] == "still here"
    await ws.close()


async def test_oversized_message_gets_an_error_and_the_next_one_works(server: Server) -> None:
    token, job_id = await _call(server)
    ws, _ = await server.join_call(token, job_id)
    too_big = json.dumps({"type": "chat.message", "text": "x" * (64 * 1024)})
    await ws.send_str(too_big)
    error = await receive(ws)
    assert (error["type"], error["code"]) == ("error", "too_large")
    await ws.send_bytes(b"\x00\x01")
    assert (await receive(ws))["code"] == "bad_request"
    await ws.send_json({"type": "ping"})
    assert await receive(ws) == {"type": "pong"}
    await ws.close()


async def test_a_huge_frame_is_cut_off_without_harming_others(server: Server) -> None:
    token, job_id = await _call(server)
    other, _ = await server.join_call(token, job_id)
    attacker, _ = await server.join_call(token, job_id)
    await receive(other)  # participant.joined for the attacker
    await attacker.send_str("x" * (2 * 1024 * 1024))
    await attacker.receive(timeout=5)
    assert attacker.close_code == 1009
    # Its connection was cut, not ended on purpose: the attacker's participant is away
    # (the one it was may come back), the others go on.
    away = await receive(other)
    assert away["type"] == "participant.away"
    await other.send_json({"type": "ping"})
    assert await receive(other) == {"type": "pong"}
    await other.close()


async def test_flooding_is_rate_limited_with_one_notice(server_factory: ServerFactory) -> None:
    server = await server_factory(ws_rate_per_s=5, ws_rate_burst=10)
    token, job_id = await _call(server)
    ws, _ = await server.join_call(token, job_id)
    for _ in range(50):
        await ws.send_json({"type": "ping"})
    answers = []
    while True:
        try:
            answers.append(await receive(ws, timeout=0.5))
        except TimeoutError:
            break
    pongs = [a for a in answers if a["type"] == "pong"]
    limited = [a for a in answers if a.get("code") == "rate_limited"]
    assert 10 <= len(pongs) <= 13
    assert len(limited) == 1
    await asyncio.sleep(0.4)
    await ws.send_json({"type": "ping"})
    assert await receive(ws) == {"type": "pong"}
    await ws.close()


async def _assert_closed_within(ws: aiohttp.ClientWebSocketResponse, seconds: float) -> float:
    start = time.monotonic()
    error = await receive(ws, timeout=seconds)
    assert (error["type"], error["code"]) == ("error", "account_disabled")
    closing = await ws.receive(timeout=seconds)
    # The frame itself, not ws.close_code: a client that reads after the server has
    # dropped the TCP connection cannot echo the close and records 1006 (on PostgreSQL
    # the database's notification may close it while the disable is still answering).
    assert (closing.type, closing.data) == (aiohttp.WSMsgType.CLOSE, 4401), closing
    return time.monotonic() - start


async def test_a_user_disabled_through_the_api_is_closed_at_once(server: Server) -> None:
    _, admin_token = await server.staff("admin")
    user, token = await server.staff("technician")
    job_id = await server.job(admin_token)
    ws, _ = await server.join_call(token, job_id)
    status, body, _ = await server.request("POST", f"/api/users/{user.id}/disable",
                                           token=admin_token)
    assert status == 200
    assert body["connections_closed"] == 1
    assert await _assert_closed_within(ws, 1.0) < 1.0
    assert server.app[HUB].members() == []


async def test_a_user_disabled_by_another_process_is_closed_within_a_second(
    server: Server,
) -> None:
    """The CLI writes to the database; the server notices by itself."""
    user, token = await server.staff("technician")
    job_id = await server.job(token)
    ws, _ = await server.join_call(token, job_id)
    # What `videoassist user disable` does, through a second connection to the database.
    await raw_execute(server.settings.database,
                      f"UPDATE users SET disabled_at = {time.time()} WHERE id = {user.id}")
    assert await _assert_closed_within(ws, 1.0) < 1.0
    assert server.app[HUB].members() == []


async def test_a_disabled_user_who_keeps_sending_is_refused_within_a_second(
        server_factory: ServerFactory, server_backend: str) -> None:
    """The account is disabled in the database alone, as another process does, while
    its user sends a chat line every 50 ms. Without notifications (SQLite; on
    PostgreSQL the server's listening connection cannot reach the database) the
    watcher's next look closes them: refused within its poll and what is left of a
    second, and nothing stored after the refusal. A message sent after the disable
    while the watcher is late: tests/signalling/test_message_checks.py; with
    notifications: tests/signalling/test_notified.py."""
    server = await server_factory(**({} if server_backend == "sqlite" else {
        "database_listen_url": Secret("postgresql://postgres@127.0.0.1:1/nowhere")}))
    user, token = await server.staff("technician")
    job_id = await server.job(token)
    ws, _ = await server.join_call(token, job_id)
    loop = asyncio.get_running_loop()
    await server.store.users.set_disabled(user.id, True)
    committed = loop.time()

    async def keep_sending() -> None:
        for n in range(200):  # 10 s at most
            if ws.closed:
                return
            await ws.send_json({"type": "chat.message", "text": f"still here? {n}"})
            await asyncio.sleep(0.05)

    sender = asyncio.create_task(keep_sending())
    try:
        while (message := await receive(ws))["type"] == "chat.message":
            pass
    finally:
        sender.cancel()
    refused_after = loop.time() - committed
    assert message["code"] == "account_disabled", message
    assert refused_after < server.settings.revocation_poll_s + 0.75, refused_after
    stored = len(await server.store.calls.messages_of_job(job_id))
    await asyncio.sleep(0.3)
    assert len(await server.store.calls.messages_of_job(job_id)) == stored


async def test_a_client_that_never_reads_is_closed_not_buffered(
    server_factory: ServerFactory,
) -> None:
    """A peer whose TCP window stays shut stalls its own writer, never the others.

    Filling real kernel socket buffers takes megabytes, so the stalled peer is made by
    replacing its server-side send with one that never completes: the one fake here.
    """
    # The stalled client reads nothing, so it answers no ping either: the heartbeat
    # (a defence of its own, 15 s) would close it first where the 300 chat lines below
    # take longer than that to store (19.6 s on PostgreSQL beside two CPU hogs).
    server = await server_factory(ws_rate_per_s=10_000, ws_rate_burst=10_000,
                                  ws_heartbeat_s=600.0)
    token, job_id = await _call(server)
    stalled_ws, stalled_joined = await server.join_call(token, job_id)
    reader, _ = await server.join_call(token, job_id)
    stalled = next(m for m in server.app[HUB].members()
                   if m.id == stalled_joined["you"]["id"])

    async def never(*args: object, **kwargs: object) -> None:
        await asyncio.Event().wait()

    stalled.ws.send_json = never  # type: ignore[method-assign]
    for n in range(stalled.outbox.maxsize + 50):
        await reader.send_json({"type": "chat.message", "text": f"m{n}"})
        message = await receive(reader, skip=("participant.away",))
        assert message["message"]["text"] == f"m{n}"  # the reader is never held up
        assert stalled.outbox.qsize() <= stalled.outbox.maxsize
    # Closed (4409): what was queued for it is dropped; its participant is away (a
    # client on a slow link reconnects), sent nothing more.
    async with asyncio.timeout(5):
        while not stalled.away:
            await asyncio.sleep(0.05)
    assert stalled.closing and stalled.close_reason == "too_slow"
    assert stalled.writer is not None and stalled.writer.done()
    assert not stalled.send({"type": "pong"}) and stalled.outbox.qsize() == 0
    await reader.close()
    await stalled_ws.close()


async def test_a_customer_cannot_steer_a_camera_and_nobody_steers_their_own(
        server: Server) -> None:
    token, job_id = await _call(server)
    expert, joined = await server.join_call(token, job_id)
    customer, customer_joined = await server.join_call(await server.participant(token, job_id))
    expert_id, customer_id = joined["you"]["id"], customer_joined["you"]["id"]
    assert (await receive(expert))["type"] == "participant.joined"
    await customer.send_json({"type": "camera.control", "target": expert_id,
                              "action": "torch", "value": True})
    error = await receive(customer)
    assert (error["code"], error["ref"]) == ("forbidden", "camera.control"), error
    await expert.send_json({"type": "camera.control", "target": expert_id,
                            "action": "torch", "value": True})
    assert (await receive(expert))["code"] == "not_found"
    # Nothing reached the expert's camera; a proper request reaches the customer's.
    await expert.send_json({"type": "camera.control", "target": customer_id,
                            "action": "switch", "value": None})
    assert await receive(customer) == {"type": "camera.control", "from": expert_id,
                                       "action": "switch", "value": None}
    await expert.send_json({"type": "ping"})
    assert (await receive(expert))["type"] == "pong"
    await expert.close()
    await customer.close()


async def test_snapshots_are_refused_to_customers_and_to_cameras_that_send_nothing(
        server: Server) -> None:
    token, job_id = await _call(server)
    expert, joined = await server.join_call(token, job_id)
    customer, customer_joined = await server.join_call(await server.participant(token, job_id))
    expert_id, customer_id = joined["you"]["id"], customer_joined["you"]["id"]
    assert (await receive(expert))["type"] == "participant.joined"
    # A customer may not take snapshots, not even of its own camera.
    for camera in (expert_id, customer_id):
        await customer.send_json({"type": "snapshot.request", "camera": camera,
                                  "request": "mine"})
        error = await receive(customer)
        assert (error["code"], error["ref"]) == ("forbidden", "snapshot.request"), error
    # A participant without a camera: a clear error, naming the request; nothing stored.
    await expert.send_json({"type": "snapshot.request", "camera": customer_id, "request": "x1"})
    error = await receive(expert)
    assert (error["code"], error["ref"], error["request"]) == (
        "not_found", "snapshot.request", "x1"), error
    assert await server.store.snapshots.of_job(job_id) == []
    # The customer's participant token opens no snapshot route.
    customer_token = await server.participant(token, job_id)
    for path in ("/api/snapshots/1", "/api/snapshots/1/image", f"/api/jobs/{job_id}",
                 f"/api/jobs/{job_id}/export"):
        status, body, _ = await server.request("GET", path, token=customer_token)
        assert status == 401, (path, body)
    await expert.send_json({"type": "ping"})
    assert (await receive(expert))["type"] == "pong"
    await expert.close()
    await customer.close()


@pytest.mark.parametrize("role", ["customer", "technician"])
async def test_a_participant_from_a_join_link_cannot_end_the_call(
        server: Server, role: str) -> None:
    token, job_id = await _call(server)
    expert, joined = await server.join_call(token, job_id)
    sender, _ = await server.join_call(await server.participant(token, job_id, role))
    assert (await receive(expert))["type"] == "participant.joined"
    await sender.send_json({"type": "call.end"})
    error = await receive(sender)
    assert (error["type"], error["code"], error["ref"]) == ("error", "forbidden", "call.end")
    # The call goes on for both.
    for ws in (sender, expert):
        await ws.send_json({"type": "ping"})
        assert await receive(ws) == {"type": "pong"}
    assert len(server.app[HUB].rooms[job_id].members) == 2
    assert (await server.store.calls.get(joined["call"]["id"])).ended_at is None
    await sender.close()
    await expert.close()
