"""One-time join links: previews do not burn them, exactly one redeem wins."""

from __future__ import annotations

import asyncio
import base64

import cv2
import numpy as np
import pytest

from tests.support.server import Server, receive

BOTS = [
    "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)",
    "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
    "Twitterbot/1.0",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (Outlook SafeLinks)",
]


async def _setup(server: Server) -> tuple[str, int]:
    _, token = await server.staff("expert")
    return token, await server.job(token)


async def test_invite_response_and_url_form(server: Server) -> None:
    token, job_id = await _setup(server)
    status, body, _ = await server.request("POST", f"/api/jobs/{job_id}/invites", token=token,
                                           json={"role": "customer", "ttl_s": 600})
    assert status == 201
    assert body["url"].startswith(server.settings.public_url + "/join#")
    assert len(body["url"].split("#")[1]) == 43  # 256 bits, URL-safe base64
    assert body["expires_at"] == pytest.approx(server.clock() + 600, abs=5)
    row = await server.store.db.fetchone("SELECT token_hash FROM invites WHERE id = ?",
                                         (body["id"],))
    assert row is not None and len(row[0]) == 32
    assert body["url"].split("#")[1].encode() not in bytes(row[0])
    # Its QR code says the very link (read by OpenCV's ArUco-based QR detector: its
    # classic one misreads about 1 code in 30 of these, which that one reads, 300 of 300).
    prefix = "data:image/png;base64,"
    assert body["qr"].startswith(prefix)
    png = np.frombuffer(base64.b64decode(body["qr"][len(prefix):]), np.uint8)
    picture = cv2.imdecode(png, cv2.IMREAD_GRAYSCALE)
    assert picture is not None and picture.shape[0] == picture.shape[1] >= 150
    said, _, _ = cv2.QRCodeDetectorAruco().detectAndDecode(picture)
    assert said == body["url"]


async def test_link_previewers_do_not_burn_a_link(server: Server) -> None:
    token, job_id = await _setup(server)
    link = await server.invite(token, job_id)
    for n in range(10):
        status, body, _ = await server.request(
            "GET", f"/join#{link}", headers={"User-Agent": BOTS[n % len(BOTS)]})
        assert status == 200
        assert "<html" in body
    # Inspecting (what the landing page does) changes nothing either.
    for _ in range(3):
        status, info, _ = await server.request("POST", "/api/invites/inspect",
                                               json={"token": link})
        assert status == 200
        assert info["role"] == "customer"
    status, body = await server.redeem(link)
    assert status == 200
    assert body["role"] == "customer"
    assert body["job"]["id"] == job_id


async def test_concurrent_redeems_exactly_one_wins(server: Server) -> None:
    token, job_id = await _setup(server)
    for _ in range(3):
        link = await server.invite(token, job_id)
        results = await asyncio.gather(*(server.redeem(link) for _ in range(8)))
        statuses = sorted(status for status, _ in results)
        assert statuses == [200] + [410] * 7


async def test_reuse_expiry_and_unknown_links_all_get_the_same_410(server: Server) -> None:
    token, job_id = await _setup(server)
    used = await server.invite(token, job_id)
    assert (await server.redeem(used))[0] == 200
    expiring = await server.invite(token, job_id, ttl_s=60)
    server.clock.advance(61)
    answers = [
        await server.redeem(used),
        await server.redeem(expiring),
        await server.redeem("A" * 43),  # well-formed, unknown
        await server.redeem("not a token"),
        await server.redeem(""),
    ]
    assert {status for status, _ in answers} == {410}
    assert len({str(body) for _, body in answers}) == 1
    status, body, _ = await server.request("POST", "/api/invites/redeem", json={"token": 7})
    assert (status, body) == answers[0]
    status, _, _ = await server.request("POST", "/api/invites/inspect", json={"token": expiring})
    assert status == 410


async def test_a_participant_token_joins_only_its_own_job(server: Server) -> None:
    token, job_id = await _setup(server)
    other_job = await server.job(token, "Another job")
    participant = await server.participant(token, job_id)
    ws = await server.ws()
    await ws.send_json({"type": "auth", "token": participant, "job": other_job})
    message = await ws.receive_json(timeout=5)
    assert message["type"] == "error"
    closed = await ws.receive(timeout=5)
    assert ws.close_code == 4403, closed


@pytest.mark.parametrize("body, message", [
    ({"role": "admin"}, "role"),
    ({"role": "customer", "ttl_s": 10}, "ttl_s"),
    ({"role": "customer", "ttl_s": 24 * 3600 + 1}, "ttl_s"),
    ({"role": "customer", "ttl_s": "3600"}, "ttl_s"),
    ({"role": "customer", "ttl_s": True}, "ttl_s"),
])
async def test_bad_invite_requests_get_400(server: Server, body: dict[str, object],
                                           message: str) -> None:
    token, job_id = await _setup(server)
    status, answer, _ = await server.request("POST", f"/api/jobs/{job_id}/invites",
                                             token=token, json=body)
    assert status == 400
    assert message in answer["error"]["message"]


async def test_invites_need_a_staff_session_and_a_real_job(server: Server) -> None:
    token, job_id = await _setup(server)
    status, _, _ = await server.request("POST", f"/api/jobs/{job_id}/invites",
                                        json={"role": "customer"})
    assert status == 401
    status, _, _ = await server.request("POST", "/api/jobs/9999/invites", token=token,
                                        json={"role": "customer"})
    assert status == 404


async def test_a_jobs_links_are_listed_and_withdrawn_and_whoever_came_by_one_leaves(
        server: Server) -> None:
    token, job_id = await _setup(server)
    unused = await server.invite(token, job_id, name="Mr Keller")
    used = await server.invite(token, job_id, role="technician")
    status, redeemed = await server.redeem(used)
    assert status == 200, redeemed
    ws, _ = await server.join_call(redeemed["token"])
    status, body, _ = await server.request("GET", f"/api/jobs/{job_id}/invites", token=token)
    assert status == 200, body
    assert [(i["role"], i["name"], i["state"]) for i in body["invites"]] == [
        ("technician", None, "used"), ("customer", "Mr Keller", "open")]
    used_id, unused_id = (i["id"] for i in body["invites"])
    assert "url" not in body["invites"][0]  # the server has only the link's hash

    # Withdrawn unused: it no longer opens. Withdrawn used: its technician is out.
    status, body, _ = await server.request("POST", f"/api/invites/{unused_id}/withdraw",
                                           token=token)
    assert (status, body["invite"]["state"], body["participants_removed"]) == (
        200, "withdrawn", 0)
    assert (await server.redeem(unused))[0] == 410
    status, body, _ = await server.request("POST", f"/api/invites/{used_id}/withdraw",
                                           token=token)
    assert (status, body["participants_removed"]) == (200, 1), body
    error = await receive(ws, skip=("participant.joined",))
    assert error["code"] == "link_revoked", error
    # Again: nothing changes. Neither can be resent (the server sent neither).
    status, again, _ = await server.request("POST", f"/api/invites/{used_id}/withdraw",
                                            token=token)
    assert (status, again["invite"]["revoked_at"]) == (200, body["invite"]["revoked_at"])
    for invite_id in (used_id, unused_id):
        status, body, _ = await server.request("POST", f"/api/invites/{invite_id}/resend",
                                               token=token)
        assert status == 409, body
    # The timeline says who withdrew them; no name in the audit log.
    status, job, _ = await server.request("GET", f"/api/jobs/{job_id}", token=token)
    withdrawn = [e for e in job["events"] if e["type"] == "invite.withdrawn"]
    assert len(withdrawn) == 2 and all(e["who"] for e in withdrawn), withdrawn
    rows = await server.store.db.fetchall(
        "SELECT detail FROM audit_log WHERE action = 'invite.withdrawn'")
    assert len(rows) == 2 and not any("Keller" in str(r) for r in rows)
    # Not a link of a job: someone's set-password link, or none, is no join link; the
    # set-password link still works after both tries.
    user = await server.add_user("technician", password=None)
    password_link = await server.password_link(user)
    [(password_id,)] = await server.store.db.fetchall(
        "SELECT id FROM invites WHERE purpose = 'password' AND user_id = ?", (user.id,))
    for path in (f"/api/invites/{password_id}/withdraw", f"/api/invites/{password_id}/resend",
                 "/api/invites/999999/withdraw", "/api/invites/0/resend"):
        status, _, _ = await server.request("POST", path, token=token)
        assert status == 404, path
    status, body, _ = await server.request(
        "POST", "/api/password", json={"token": password_link, "password": "a long new password"})
    assert status == 200, body
    status, _, _ = await server.request("GET", f"/api/jobs/{job_id}/invites")
    assert status == 401
