"""Webhook deliveries to a real receiver: signed, retried, logged, kept over a restart."""

from __future__ import annotations

import asyncio
import logging
import stat
import time
from typing import Any

import pytest

from tests.support.server import ServerFactory, Servers, free_port
from tests.support.webhooks import HANG, Receiver
from videoassist import keyfiles
from videoassist.config import Secret
from videoassist.storage import Store
from videoassist.storage.webhooks import INTERRUPTED
from videoassist.webhooks import RetryPolicy

FAST = {"webhook_retry_base_s": 0.05, "webhook_retry_max_s": 0.2}
SECRET = "receiver-shared-secret-0123456789abcdef"


async def _log(server: Any, token: str, state: str, count: int = 1) -> list[dict[str, Any]]:
    """The delivery log once ``count`` deliveries are in ``state``, bounded in time."""
    async with asyncio.timeout(5):
        while True:
            status, body, _ = await server.request(
                "GET", f"/api/webhooks/deliveries?state={state}", token=token)
            assert status == 200, body
            if len(body["deliveries"]) >= count:
                deliveries: list[dict[str, Any]] = body["deliveries"]
                return deliveries
            await asyncio.sleep(0.02)  # the server records an attempt after the answer


async def test_a_failed_delivery_is_retried_with_the_same_signed_body(
        server_factory: ServerFactory, receiver: Receiver) -> None:
    server = await server_factory(webhook_url=receiver.url, **FAST)
    secret = keyfiles.webhook_secret(server.settings)
    path = server.settings.data_dir / keyfiles.WEBHOOK_SECRET_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    receiver.secret = secret.encode()
    receiver.answers = [500]
    _, token = await server.staff("admin")

    job_id = await server.job(token, "Boiler makes a noise")
    first, second = await receiver.wait_for(2)

    assert receiver.statuses == [500, 200]
    assert first.verified and second.verified
    assert first.body == second.body  # the same bytes, so the same signature
    assert first.headers["X-Videoassist-Signature"] == second.headers["X-Videoassist-Signature"]
    event = second.json
    assert set(event) == {"id", "type", "created_at", "data"}
    assert (event["type"], event["data"]["job"]["id"]) == ("job.created", job_id)
    for attempt, received in enumerate((first, second), start=1):
        assert received.headers["X-Videoassist-Event"] == "job.created"
        assert received.headers["X-Videoassist-Delivery"] == event["id"]
        assert received.headers["X-Videoassist-Attempt"] == str(attempt)
        assert received.headers["Content-Type"] == "application/json"
        assert secret.encode() not in received.body

    [delivery] = await _log(server, token, "delivered")
    assert delivery["id"] == event["id"]
    assert (delivery["type"], delivery["job_id"], delivery["attempts"]) == (
        "job.created", job_id, 2)
    assert delivery["next_attempt_at"] is None and delivery["failed_at"] is None
    assert delivery["delivered_at"] >= delivery["created_at"]
    assert [(a["attempt"], a["status_code"], a["error"]) for a in delivery["log"]] == [
        (1, 500, "HTTP 500"), (2, 200, None)]


async def test_a_receiver_that_refuses_the_signature_gets_nothing_else(
        server_factory: ServerFactory, receiver: Receiver) -> None:
    """The control for the receiver's check: another secret fails verification."""
    server = await server_factory(webhook_url=receiver.url, webhook_secret=Secret(SECRET),
                                  webhook_max_attempts=1, **FAST)
    receiver.secret = b"not the secret"
    _, token = await server.staff("admin")
    await server.job(token)
    [received] = await receiver.wait_for(1)
    assert not received.verified and receiver.statuses == [401]
    [delivery] = await _log(server, token, "failed")
    assert delivery["log"][0]["error"] == "HTTP 401"
    assert not (server.settings.data_dir / keyfiles.WEBHOOK_SECRET_FILE).exists()


async def test_timeouts_redirects_and_errors_are_retried_then_given_up(
        server_factory: ServerFactory, receiver: Receiver) -> None:
    server = await server_factory(webhook_url=receiver.url, webhook_secret=Secret(SECRET),
                                  webhook_timeout_s=0.3, webhook_max_attempts=3, **FAST)
    receiver.secret = SECRET.encode()
    receiver.answers = [HANG, 302, 503]
    _, token = await server.staff("admin")
    await server.job(token)
    await receiver.wait_for(3)
    [delivery] = await _log(server, token, "failed")
    assert [(a["status_code"], a["error"]) for a in delivery["log"]] == [
        (None, "timeout"), (302, "HTTP 302"), (503, "HTTP 503")]
    assert (delivery["state"], delivery["attempts"], delivery["next_attempt_at"]) == (
        "failed", 3, None)
    assert delivery["failed_at"] is not None and delivery["delivered_at"] is None
    assert len(receiver.received) == 3  # a redirect is not followed


async def test_a_receiver_that_is_down_gets_the_delivery_when_it_is_back(
        server_factory: ServerFactory) -> None:
    port = free_port()
    server = await server_factory(webhook_url=f"http://127.0.0.1:{port}/hook",
                                  webhook_secret=Secret(SECRET), webhook_max_attempts=2, **FAST)
    _, token = await server.staff("admin")
    await server.job(token)
    [delivery] = await _log(server, token, "failed")
    assert [a["status_code"] for a in delivery["log"]] == [None, None]
    assert all(a["error"].startswith("cannot connect") for a in delivery["log"])


async def test_deliveries_pending_at_shutdown_go_out_after_a_restart(
        servers: Servers, receiver: Receiver) -> None:
    settings = {"webhook_url": receiver.url, "webhook_timeout_s": 30.0, **FAST}
    first = await servers.start(**settings)
    receiver.secret = keyfiles.webhook_secret(first.settings).encode()
    receiver.answers = [HANG]  # the first attempt is cut short by the shutdown
    admin, token = await first.staff("admin")
    job_id = await first.job(token, "Leaking valve")
    [cut_short] = await receiver.wait_for(1)
    await servers.stop(first)

    store = await Store.open(first.settings.database)
    try:
        [(pending, attempts)] = await store.webhooks.recent()
    finally:
        await store.close()
    # The attempt cut short is recorded (the receiver had it), and due again at once.
    assert (pending.state, pending.attempts) == ("pending", 1)
    assert pending.next_attempt_at is not None and pending.next_attempt_at <= time.time()
    assert [(a.attempt, a.status_code, a.error) for a in attempts] == [
        (1, None, INTERRUPTED)]
    receiver.release.set()

    second = await servers.start(**settings)  # the same data dir, so the same secret
    [_, resent] = await receiver.wait_for(2)
    assert resent.verified and resent.body == cut_short.body
    assert resent.json["data"]["job"]["id"] == job_id
    assert (cut_short.headers["X-Videoassist-Attempt"],
            resent.headers["X-Videoassist-Attempt"]) == ("1", "2")
    [delivery] = await _log(second, await second.sign_in(admin.username), "delivered")
    assert (delivery["id"], delivery["attempts"]) == (pending.uuid, 2)


async def test_without_a_url_nothing_is_queued_or_generated(server_factory: ServerFactory) -> None:
    server = await server_factory()
    _, token = await server.staff("admin")
    await server.job(token)
    status, body, _ = await server.request("GET", "/api/webhooks/deliveries", token=token)
    assert (status, body) == (200, {"enabled": False, "deliveries": []})
    assert not (server.settings.data_dir / keyfiles.WEBHOOK_SECRET_FILE).exists()


async def test_only_admins_read_the_delivery_log(server_factory: ServerFactory) -> None:
    server = await server_factory()
    _, token = await server.staff("expert")
    status, body, _ = await server.request("GET", "/api/webhooks/deliveries", token=token)
    assert (status, body["error"]["code"]) == (403, "forbidden")
    status, body, _ = await server.request("GET", "/api/webhooks/deliveries")
    assert status == 401
    _, admin = await server.staff("admin")
    for query in ("state=lost", "limit=0", "limit=201", "limit=x"):
        status, body, _ = await server.request("GET", f"/api/webhooks/deliveries?{query}",
                                               token=admin)
        assert (status, body["error"]["code"]) == (400, "bad_request"), query


def test_the_backoff_doubles_up_to_its_ceiling() -> None:
    policy = RetryPolicy(max_attempts=10, base_s=30.0, max_s=3600.0)
    assert [policy.delay(n) for n in range(1, 10)] == [
        30, 60, 120, 240, 480, 960, 1920, 3600, 3600]


async def test_no_body_secret_key_or_url_reaches_the_log(
        server_factory: ServerFactory, receiver: Receiver,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    server = await server_factory(webhook_url=receiver.url + "?token=in-the-url", **FAST)
    receiver.secret = keyfiles.webhook_secret(server.settings).encode()
    receiver.answers = [500]
    _, admin = await server.staff("admin")
    status, created, _ = await server.request(
        "POST", "/api/keys", token=admin, json={"name": "CRM", "scopes": ["jobs:create"]})
    assert status == 201
    status, _, _ = await server.request(
        "POST", "/api/jobs", token=created["key"],
        json={"title": "Mrs Example's boiler", "external_ref": "WO-PRIVATE-7"})
    assert status == 201
    [_, second] = await receiver.wait_for(2)
    await _log(server, admin, "delivered")

    ours = [r for r in caplog.records if r.name.startswith("videoassist")]
    assert any("delivered" in r.getMessage() for r in ours), "the log was not captured"
    secrets = [receiver.secret.decode(), created["key"], "in-the-url", "Mrs Example",
               "WO-PRIVATE-7", second.headers["X-Videoassist-Signature"]]
    for record in ours:
        text = record.getMessage() + (record.exc_text or "")
        for secret in secrets:
            assert secret not in text, f"{record.name}: {secret!r} is in {text[:200]!r}"
