"""No token, password, link secret or key ever reaches a log line."""

from __future__ import annotations

import logging

import pytest

from tests.conftest import PASSWORD, Server, receive
from videoassist import keyfiles
from videoassist.logs import ACCESS_LOGGER


async def test_no_secret_in_any_log_line(server: Server, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    secrets: list[str] = [PASSWORD, keyfiles.turn_secret(server.settings)]
    secrets += [k.secret.decode() for k in keyfiles.signing_keys(server.settings)]

    admin = await server.add_user("admin")
    admin_token = await server.sign_in(admin.username)
    secrets.append(admin_token)
    await server.request("POST", "/api/session",
                         json={"username": admin.username, "password": "wrong but secret 1"})
    secrets.append("wrong but secret 1")

    status, created, _ = await server.request("POST", "/api/users", token=admin_token,
                                              json={"username": "tech", "role": "technician"})
    assert status == 201
    setup_token = created["password_link"]["url"].split("#")[1]
    secrets.append(setup_token)
    status, body, _ = await server.request(
        "POST", "/api/password", json={"token": setup_token, "password": "tech password 1"})
    assert status == 200
    secrets += ["tech password 1", body["token"]]

    job_id = await server.job(admin_token)
    link = await server.invite(admin_token, job_id)
    secrets.append(link)
    await server.request("GET", f"/join?token={link}")  # a mistyped link with a query
    await server.request("POST", "/api/invites/inspect", json={"token": link})
    status, redeemed = await server.redeem(link)
    secrets.append(redeemed["token"])
    await server.redeem(link)  # replay: 410

    staff_ws, _ = await server.join_call(admin_token, job_id)
    customer_ws, _ = await server.join_call(redeemed["token"])
    await customer_ws.send_json({"type": "auth", "token": redeemed["token"]})
    await receive(customer_ws)
    bad = await server.ws()
    await bad.send_json({"type": "auth", "token": admin_token + "x", "job": job_id})
    await bad.receive(timeout=5)
    await bad.receive(timeout=5)
    await staff_ws.close()
    await customer_ws.close()

    records = caplog.records
    assert any(r.name == ACCESS_LOGGER and "/api/invites/redeem" in r.getMessage()
               for r in records), "the access log was not captured"
    for record in records:
        text = record.getMessage() + (record.exc_text or "")
        for secret in secrets:
            assert secret not in text, f"{record.name}: a secret is in {text[:200]!r}"
