"""GET /metrics through a real call: real aiortc peers through the real server, the
answer parsed with prometheus_client's own parser."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from aiortc import RTCConfiguration, RTCPeerConnection
from prometheus_client.parser import text_string_to_metric_families

from tests.support.metrics import scrape, value
from tests.support.peers import MediaClient
from tests.support.server import Server, ServerFactory, receive, two_parties
from videoassist.appkeys import HUB, MEDIA
from videoassist.config import Secret
from videoassist.media import session as session_module


async def wait_until_empty(server: Server) -> None:
    """Until every call, media session and signalling socket handler has ended (a
    handler ends after its call and media, later still on a busy machine)."""
    router = server.app[MEDIA]
    async with asyncio.timeout(10):
        while server.app[HUB].rooms or router.sessions:  # type: ignore[attr-defined]
            await asyncio.sleep(0.02)
        while value(await scrape(server), "videoassist_websocket_connections"):
            await asyncio.sleep(0.02)


def packets_lost(server: Server) -> int:
    """Packets the server's receivers found missing from what the publishers sent
    (gaps in RTP sequence numbers, retransmitted later or not). aiortc's getStats gives
    a receiver's streams one id, so its RTX stream's figures can hide the media one's."""
    lost = 0
    for session in server.app[MEDIA].sessions.values():  # type: ignore[attr-defined]
        for _, transceiver in session.publications.values():
            streams = transceiver.receiver._RTCRtpReceiver__remote_streams
            lost += sum(stream.packets_lost for stream in streams.values())
    return lost


async def snapshot(client: MediaClient, camera: int) -> dict[str, Any]:
    assert client.ws is not None
    await client.ws.send_json({"type": "snapshot.request", "camera": camera, "shapes": [],
                               "request": "m1"})
    async with asyncio.timeout(10):
        while True:
            message = await client.messages.get()
            assert message["type"] != "error", message
            if message["type"] == "snapshot.saved":
                return message


async def test_a_call_is_counted_and_the_gauges_fall_back_to_zero(server: Server) -> None:
    staff_token, customer_token, job_id = await two_parties(server)
    before = await scrape(server)
    assert value(before, "videoassist_calls") == 0
    assert value(before, "videoassist_calls_started_total") == 0
    assert value(before, "videoassist_draining") == 0

    expert = await MediaClient(server, staff_token, job_id).start()
    customer = await MediaClient(server, customer_token).start()
    try:
        await expert.wait_remote(customer.participant_id, "video", frames=30)
        await expert.wait_remote(customer.participant_id, "audio", frames=25)
        await customer.wait_remote(expert.participant_id, "video", frames=30)
        asked = time.monotonic()
        saved = await snapshot(expert, customer.participant_id)
        answered = time.monotonic()
        assert saved["snapshot"]["camera"] == customer.participant_id
        during = await scrape(server)
        lost = packets_lost(server)
    finally:
        await customer.close()
        await expert.close()

    assert value(during, "videoassist_calls") == 1
    assert value(during, "videoassist_calls_started_total") == 1
    assert value(during, "videoassist_participants", role="customer") == 1
    assert value(during, "videoassist_participants", role="expert") == 1
    assert value(during, "videoassist_participants_joined_total", role="customer") == 1
    assert value(during, "videoassist_websocket_connections") == 2
    assert value(during, "videoassist_websocket_connections_opened_total") == 2
    assert value(during, "videoassist_peer_connections", state="connected") == 2
    assert value(during, "videoassist_peer_connections_opened_total") == 2
    assert value(during, "videoassist_peer_connections_timed_out_total") == 0
    for kind in ("audio", "video"):
        assert value(during, "videoassist_received_frames_total", kind=kind) > 0, kind
        assert value(during, "videoassist_forwarded_frames_total", kind=kind) > 0, kind
        # Each frame forwarded is at least a byte, and was received first.
        assert (value(during, "videoassist_forwarded_bytes_total", kind=kind)
                >= value(during, "videoassist_forwarded_frames_total", kind=kind)), kind
    # ~30 fps both ways for the seconds the call lasted: frames, not a handful.
    assert value(during, "videoassist_forwarded_frames_total", kind="video") >= 60
    assert value(during, "videoassist_transcoded_streams_total") == 0
    # Frames are given up on only after packets lost on their way to the server: none
    # on a quiet machine's loopback; beside CPU hogs that keep the event loop from
    # reading its sockets for a while, some.
    assert value(during, "videoassist_skipped_frames_total") == 0 or lost > 0
    assert value(during, "videoassist_snapshot_seconds_count") == 1
    # The server's time for it lies within the time the expert waited for it.
    assert 0 < value(during, "videoassist_snapshot_seconds_sum") <= answered - asked

    await wait_until_empty(server)
    after = await scrape(server)
    assert value(after, "videoassist_calls") == 0
    for role in ("customer", "expert"):
        assert value(after, "videoassist_participants", role=role) == 0, role
    assert value(after, "videoassist_websocket_connections") == 0
    assert not [key for key, v in after.items()
                if key[0] == "videoassist_peer_connections" and v != 0]
    # The totals outlive the call, its sessions and its tracks.
    assert value(after, "videoassist_calls_started_total") == 1
    assert value(after, "videoassist_websocket_closes_total", reason="left") == 2  # leave
    for kind in ("audio", "video"):
        for name in ("videoassist_forwarded_frames_total", "videoassist_forwarded_bytes_total",
                     "videoassist_received_frames_total"):
            assert value(after, name, kind=kind) >= value(during, name, kind=kind) > 0
    assert value(after, "videoassist_snapshot_seconds_count") == 1


async def test_a_viewer_without_the_codec_is_counted_as_a_transcoding_fallback(
        server: Server) -> None:
    staff_token, customer_token, job_id = await two_parties(server)
    customer = await MediaClient(server, customer_token, video_codec="H264", audio=False).start()
    expert = await MediaClient(server, staff_token, job_id, video=False, audio=False,
                               offer_codecs=("VP8",)).start()
    try:
        await expert.wait_remote(customer.participant_id, "video", frames=10)
        samples = await scrape(server)
    finally:
        await expert.close()
        await customer.close()
    assert value(samples, "videoassist_transcoded_streams_total") == 1
    # Re-encoded video is not forwarded video.
    assert value(samples, "videoassist_forwarded_frames_total", kind="video") == 0
    assert value(samples, "videoassist_received_frames_total", kind="video") > 0


async def test_a_peer_connection_that_never_connects_is_counted(
        server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    """One client offers and never starts ICE; another connects. Only the first is
    closed and counted when the (shortened) connect timeout passes."""
    staff_token, customer_token, job_id = await two_parties(server)
    customer = await MediaClient(server, customer_token, audio=False).start()
    ws, _ = await server.join_call(staff_token, job_id)
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    router = server.app[MEDIA]
    try:
        # Shortened once the customer is connected, however long that took.
        async with asyncio.timeout(10):
            while not router.connected(customer.participant_id):  # type: ignore[attr-defined]
                await asyncio.sleep(0.02)
        monkeypatch.setattr(session_module, "CONNECT_TIMEOUT_S", 1.0)
        pc.addTransceiver("video", direction="recvonly")
        await pc.setLocalDescription(await pc.createOffer())
        await ws.send_json({"type": "sdp.offer", "sdp": pc.localDescription.sdp})
        assert (await receive(ws, skip=("media.tracks",)))["type"] == "sdp.answer"
        assert value(await scrape(server), "videoassist_peer_connections_opened_total") == 2
        async with asyncio.timeout(5):
            while len(router.sessions) != 1:  # type: ignore[attr-defined]
                await asyncio.sleep(0.05)
        samples = await scrape(server)
        assert list(router.sessions) == [customer.participant_id]  # type: ignore[attr-defined]
        assert value(samples, "videoassist_peer_connections_timed_out_total") == 1
        assert value(samples, "videoassist_peer_connections", state="connected") == 1
    finally:
        await pc.close()
        await ws.close()
        await customer.close()


async def test_errors_are_counted_by_code(server: Server) -> None:
    _, staff_token = await server.staff("expert")
    job_id = await server.job(staff_token)
    status, _, _ = await server.request("GET", "/api/nothing-here")
    assert status == 404
    ws, _ = await server.join_call(staff_token, job_id)
    await ws.send_str("{not json")
    assert (await ws.receive_json(timeout=5))["code"] == "bad_request"
    await ws.send_json({"type": "leave"})
    await ws.receive(timeout=5)
    refused = await server.ws()
    await refused.send_json({"type": "auth", "token": staff_token + "x", "job": job_id})
    assert (await refused.receive_json(timeout=5))["code"] == "unauthorized"
    await refused.receive(timeout=5)
    await wait_until_empty(server)
    samples = await scrape(server)
    assert value(samples, "videoassist_http_errors_total", status="404", code="not_found") == 1
    assert value(samples, "videoassist_websocket_errors_total", code="bad_request") == 1
    assert value(samples, "videoassist_websocket_errors_total", code="unauthorized") == 1
    assert value(samples, "videoassist_websocket_closes_total", reason="left") == 1
    assert value(samples, "videoassist_websocket_closes_total", reason="unauthorized") == 1
    assert value(samples, "videoassist_unhandled_errors_total", where="http") == 0


async def test_the_metrics_token_is_required_when_set(server_factory: ServerFactory) -> None:
    token = "a metrics token of some length"
    server = await server_factory(metrics_token=Secret(token))
    for given in (None, "wrong", token + "x", token[:-1]):
        status, body, _ = await server.request("GET", "/metrics", token=given)
        assert status == 401, given
        assert body["error"]["code"] == "unauthorized"
    status, _, _ = await server.request("GET", "/metrics",
                                        headers={"Authorization": f"Basic {token}"})
    assert status == 401
    samples = await scrape(server, token)
    assert value(samples, "videoassist_http_errors_total", status="401", code="unauthorized") == 5


async def test_no_customer_data_in_the_metrics(server: Server) -> None:
    """Labels come from fixed sets: no username, job title, address or id."""
    staff, staff_token = await server.staff("expert")
    job_id = await server.job(staff_token, "Leaking valve at 12 Acacia Avenue")
    ws, _ = await server.join_call(staff_token, job_id)
    try:
        status, text, _ = await server.request("GET", "/metrics")
    finally:
        await ws.close()
    assert status == 200
    assert value(await scrape(server), "videoassist_calls_started_total") == 1
    for secret in (staff.username, "Acacia", "127.0.0.1", staff_token):
        assert secret not in text, secret
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            assert set(sample.labels) <= {"role", "state", "kind", "reason", "code", "status",
                                          "where", "table", "le"}, sample


def burn_cpu(seconds: float) -> None:
    """Keep the calling thread busy for ``seconds`` of its own CPU time."""
    until = time.thread_time() + seconds
    while time.thread_time() < until:
        pass


async def test_the_event_loops_cpu_is_its_own_threads_not_the_processes(
        server: Server) -> None:
    """The test runs on the server's event loop: its work there counts, the same work
    in another thread of the process does not."""
    name = "videoassist_event_loop_cpu_seconds_total"
    at_start = value(await scrape(server), name)
    burn_cpu(0.3)
    after_loop_work = value(await scrape(server), name)
    await asyncio.to_thread(burn_cpu, 0.3)
    after_thread_work = value(await scrape(server), name)
    assert at_start > 0  # the loop ran the server's start-up
    assert after_loop_work - at_start >= 0.3
    assert after_thread_work - after_loop_work < 0.15  # two scrapes, and waiting
