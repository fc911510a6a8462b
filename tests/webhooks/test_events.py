"""The events of real actions arrive at a real receiver, as docs/api.md shows them."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from tests.support.databases import ServerDatabases
from tests.support.docs import fenced_blocks, json_examples, keys_match
from tests.support.peers import MediaClient
from tests.support.server import ServerFactory, Servers, leave, receive
from tests.support.webhooks import Receiver
from videoassist import keyfiles
from videoassist.actors import CLI
from videoassist.config import Secret
from videoassist.domain import apikeys
from videoassist.storage import Store
from videoassist.webhooks import EVENT_TYPES, emitter

SECRET = "receiver-shared-secret-0123456789abcdef"


def documented_events() -> list[dict[str, Any]]:
    return [example for _, example in json_examples("api.md", "json webhook")]


def test_every_event_type_is_documented_with_an_example() -> None:
    examples = documented_events()
    assert {e["type"] for e in examples} == set(EVENT_TYPES)
    for example in examples:
        assert set(example) == {"id", "type", "created_at", "data"}
        assert "job" in example["data"]


def test_the_documented_verification_snippet_checks_a_signature() -> None:
    [snippet] = [b.body for b in fenced_blocks("api.md")
                 if b.info == "python" and "def verify" in b.body]
    namespace: dict[str, Any] = {}
    exec(snippet, namespace)
    from videoassist.webhooks.signature import sign
    body = b'{"id":"x","type":"job.created","created_at":1,"data":{}}'
    header = sign(b"s3cret", body)
    assert namespace["verify"](b"s3cret", body, header)
    assert not namespace["verify"](b"s3cret", body + b" ", header)
    assert not namespace["verify"](b"other", body, header)


async def test_jobs_and_calls_reach_the_receiver_as_documented(
        server_factory: ServerFactory, receiver: Receiver) -> None:
    server = await server_factory(webhook_url=receiver.url, webhook_secret=Secret(SECRET))
    receiver.secret = SECRET.encode()
    _, token = await server.staff("expert")
    _, key = await apikeys.create(server.store, "CRM", ["jobs:create"], CLI)

    status, job, _ = await server.request(
        "POST", "/api/jobs", token=key, json={"title": "No hot water", "external_ref": "SF-0042"})
    assert status == 201, job
    ws, joined = await server.join_call(token, job["id"])
    call_id = joined["call"]["id"]
    await leave(ws)
    await receiver.wait_for(3)

    [created] = receiver.events("job.created")
    assert created["data"] == {"job": job}
    [started] = receiver.events("call.started")
    [ended] = receiver.events("call.ended")
    ref = {"id": job["id"], "external_ref": "SF-0042"}
    assert started["data"]["job"] == ended["data"]["job"] == ref
    assert started["data"]["call"]["id"] == ended["data"]["call"]["id"] == call_id
    assert (started["data"]["call"]["ended_at"], started["data"]["call"]["duration_s"]) == (
        None, None)
    call = ended["data"]["call"]
    assert call["started_at"] == started["data"]["call"]["started_at"]
    assert call["ended_at"] >= call["started_at"]
    assert call["duration_s"] == pytest.approx(call["ended_at"] - call["started_at"], abs=1e-3)
    assert started["created_at"] <= ended["created_at"]
    assert len({created["id"], started["id"], ended["id"]}) == 3

    examples = documented_events()
    for event in (created, started, ended):
        documented = [e for e in examples if e["type"] == event["type"]]
        assert any(keys_match(event, d) for d in documented), (
            f"{event['type']} arrived as {event}, unlike docs/api.md")


async def test_snapshots_and_closing_reach_the_receiver_as_documented(
        server_factory: ServerFactory, receiver: Receiver) -> None:
    server = await server_factory(webhook_url=receiver.url, webhook_secret=Secret(SECRET))
    receiver.secret = SECRET.encode()
    _, token = await server.staff("expert")
    job_id = await server.job(token)
    expert, _ = await server.join_call(token, job_id)
    customer = await MediaClient(server, await server.participant(token, job_id),
                                 audio=False).start()
    try:
        assert customer.video is not None
        async with asyncio.timeout(10):
            while customer.video.sent < 10:
                await asyncio.sleep(0.02)
        await expert.send_json({"type": "snapshot.request",
                                "camera": customer.participant_id})
        saved = await receive(expert, skip=("participant.joined", "media.tracks"))
        assert saved["type"] == "snapshot.saved", saved
        snapshot_id = saved["snapshot"]["id"]
        status, version, _ = await server.request(
            "POST", f"/api/snapshots/{snapshot_id}/versions", token=token, json={"shapes": []})
        assert status == 201, version
        status, closed, _ = await server.request("POST", f"/api/jobs/{job_id}/close",
                                                 token=token)
        assert status == 200, closed
        async with asyncio.timeout(10):
            while not receiver.events("job.closed") or len(receiver.events("snapshot.saved")) < 2:
                await receiver.wait_for(len(receiver.received) + 1)
    finally:
        await customer.close()
        await expert.close()
    first, second = sorted(receiver.events("snapshot.saved"),
                           key=lambda e: e["data"]["snapshot"]["version"])
    assert first["data"]["job"] == second["data"]["job"] == {"id": job_id, "external_ref": None}
    assert first["data"]["snapshot"]["id"] == snapshot_id
    assert first["data"]["snapshot"]["sha256"] == saved["snapshot"]["sha256"]
    assert (second["data"]["snapshot"]["id"], second["data"]["snapshot"]["original_id"]) == (
        version["id"], snapshot_id)
    [job_closed] = receiver.events("job.closed")
    assert job_closed["data"] == {"job": closed}
    examples = documented_events()
    for event in (first, second, job_closed):
        documented = [e for e in examples if e["type"] == event["type"]]
        assert any(keys_match(event, d) for d in documented), (
            f"{event['type']} arrived as {event}, unlike docs/api.md")


# One round of the server's webhook worker once it has seen the CLI's commit: look for
# due deliveries, POST one to the receiver on loopback and record the attempt, on a
# machine whose two cores other tests share (at a load average of 11 the whole delay
# was at most 1.01 s in 20 tries). Without its look at the database every
# ELSEWHERE_CHECK_S, the worker would wait up to IDLE_CHECK_S (60 s).
ONE_ROUND_S = 1.5


async def _delivered(receiver: Receiver, type_: str, count: int) -> tuple[dict[str, Any], float]:
    """The ``count``-th event of a type, once it has arrived, and how long after it was
    queued (its ``created_at``) it arrived; bounded by how late it may be."""
    async with asyncio.timeout(emitter.ELSEWHERE_CHECK_S + ONE_ROUND_S + 1.0):
        while len(receiver.events(type_)) < count:
            await receiver.wait_for(len(receiver.received) + 1, timeout=30)
    arrived = time.time()
    event = receiver.events(type_)[count - 1]
    return event, arrived - event["created_at"]


async def test_the_cli_sends_the_job_events_the_api_sends_and_ends_the_call(
        server_factory: ServerFactory, receiver: Receiver) -> None:
    """``videoassist job create`` and ``job close``, run beside the server as processes
    of their own, queue the same events as the API; the server sends them, and ends
    the call of the job closed."""
    server = await server_factory(webhook_url=receiver.url, webhook_secret=Secret(SECRET))
    receiver.secret = SECRET.encode()
    cli_env = {"VIDEOASSIST_WEBHOOK_URL": receiver.url}  # the same settings as the server's
    user, token = await server.staff("expert")
    status, api_job, _ = await server.request("POST", "/api/jobs", token=token,
                                              json={"title": "No hot water"})
    assert status == 201, api_job
    status, api_closed, _ = await server.request("POST", f"/api/jobs/{api_job['id']}/close",
                                                 token=token)
    assert status == 200, api_closed
    api_created, _ = await _delivered(receiver, "job.created", 1)
    api_job_closed, _ = await _delivered(receiver, "job.closed", 1)

    code, out, err = await server.cli("job", "create", "Leaking valve", "--external-ref",
                                      "SF-0042", **cli_env)
    assert code == 0, err
    job_id = int(out)
    job = (await server.store.jobs.get(job_id)).public()
    created, late = await _delivered(receiver, "job.created", 2)
    assert created["data"] == {"job": job}
    assert late < emitter.ELSEWHERE_CHECK_S + ONE_ROUND_S

    expert, joined = await server.join_call(token, job_id)
    customer, _ = await server.join_call(await server.participant(token, job_id))
    code, out, err = await server.cli("job", "close", str(job_id), **cli_env)
    assert code == 0, err
    for ws in (expert, customer):
        notice = await receive(ws, skip=("participant.joined", "participant.left"))
        assert notice["code"] == "job_closed", notice
    closed, late = await _delivered(receiver, "job.closed", 2)
    assert closed["data"] == {"job": (await server.store.jobs.get(job_id)).public()}
    assert closed["data"]["job"]["status"] == "closed"
    assert late < emitter.ELSEWHERE_CHECK_S + ONE_ROUND_S
    ended, _ = await _delivered(receiver, "call.ended", 1)
    assert ended["data"]["call"]["id"] == joined["call"]["id"]

    # The same events, shaped alike, and the same audit rows but for who did it.
    assert keys_match(created, api_created) and keys_match(closed, api_job_closed)
    audit = [(a["actor"], a["action"], a["target"], a["detail"])
             for a in reversed(await server.store.audit.recent(100))
             if a["action"] in ("job.created", "job.closed")]
    assert audit == [
        (f"user:{user.id}", "job.created", f"job:{api_job['id']}", {}),
        (f"user:{user.id}", "job.closed", f"job:{api_job['id']}", {}),
        ("cli", "job.created", f"job:{job_id}", {}),
        ("cli", "job.closed", f"job:{job_id}", {}),
    ]
    await expert.close()
    await customer.close()


async def test_a_call_ended_by_staff_reaches_the_receiver_once(
        server_factory: ServerFactory, receiver: Receiver) -> None:
    server = await server_factory(webhook_url=receiver.url, webhook_secret=Secret(SECRET))
    receiver.secret = SECRET.encode()
    _, token = await server.staff("expert")
    job_id = await server.job(token)
    expert, joined = await server.join_call(token, job_id)
    customer, _ = await server.join_call(await server.participant(token, job_id))
    await expert.send_json({"type": "call.end"})
    for ws in (expert, customer):
        assert (await receive(ws, skip=("participant.joined",)))["code"] == "call_ended"
    async with asyncio.timeout(5):
        while not receiver.events("call.ended"):
            await receiver.wait_for(len(receiver.received) + 1)
    [ended] = receiver.events("call.ended")
    assert ended["data"]["job"] == {"id": job_id, "external_ref": None}
    assert ended["data"]["call"]["id"] == joined["call"]["id"]
    assert ended["data"]["call"]["ended_at"] is not None
    await expert.close()
    await customer.close()


async def test_a_call_left_open_by_a_crash_ends_at_the_next_start(
        servers: Servers, receiver: Receiver, server_databases: ServerDatabases,
        tmp_path: Any) -> None:
    data_dir = tmp_path / "data"
    store = await Store.open(server_databases.url(data_dir) if server_databases.postgresql
                             else data_dir / "videoassist.sqlite3")
    try:
        job = await store.jobs.create("Radiator cold", "WO-7", None)
        call_id = await store.calls.start(job.id)  # and then the process was killed
    finally:
        await store.close()
    # The secret first: the server delivers the event as soon as it has started.
    receiver.secret = SECRET.encode()
    await servers.start(webhook_url=receiver.url, webhook_secret=Secret(SECRET))
    [received] = await receiver.wait_for(1)
    event = received.json
    assert received.verified and event["type"] == "call.ended"
    assert event["data"]["job"] == {"id": job.id, "external_ref": "WO-7"}
    assert event["data"]["call"]["id"] == call_id
    assert event["data"]["call"]["ended_at"] is not None


async def test_emit_is_silent_when_webhooks_are_off_and_strict_when_on(
        server_factory: ServerFactory, receiver: Receiver) -> None:
    from videoassist.appkeys import WEBHOOKS

    off = await server_factory()
    await off.app[WEBHOOKS].emit("snapshot.saved", {"job": {"id": 1}})
    await off.app[WEBHOOKS].emit("no.such.event", {"not json": object()})
    assert await off.store.webhooks.recent() == []
    assert not (off.settings.data_dir / keyfiles.WEBHOOK_SECRET_FILE).exists()

    on = await server_factory(webhook_url=receiver.url, webhook_secret=Secret(SECRET))
    with pytest.raises(ValueError, match="unknown webhook event type"):
        await on.app[WEBHOOKS].emit("snapshot.taken", {})
    receiver.secret = SECRET.encode()
    data = {"job": {"id": 999, "external_ref": None},
            "snapshot": {"id": 1, "version": 1, "call_id": None, "captured_at": 1.0,
                         "width": 640, "height": 360, "sha256": "0" * 64}}
    await on.app[WEBHOOKS].emit("snapshot.saved", data)  # an unknown job is not an error
    [received] = await receiver.wait_for(1)
    assert received.verified and received.json["data"] == data
