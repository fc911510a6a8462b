"""Invites e-mailed by the server itself, received by a real SMTP server (aiosmtpd) on
loopback: STARTTLS with a certificate the server verifies, a password sent only inside
TLS; a server whose certificate is not trusted, or that offers no STARTTLS, gets
nothing, and the live link is never in a log. Addresses that could add a header or a
recipient are refused before any link is made."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.server import Server, ServerFactory
from tests.support.smtp import PASSWORD, SENDER, USER, Inbox, smtp_server
from videoassist import mail
from videoassist.config import ConfigError, Secret, load_settings


@pytest.fixture
async def inbox(tmp_path: Path) -> AsyncIterator[Inbox]:
    async for served in smtp_server(tmp_path / "starttls", "starttls"):
        yield served


@pytest.fixture
async def plain_inbox(tmp_path: Path) -> AsyncIterator[Inbox]:
    async for served in smtp_server(tmp_path / "plain", "none"):
        yield served


@pytest.fixture
async def tls_inbox(tmp_path: Path) -> AsyncIterator[Inbox]:
    async for served in smtp_server(tmp_path / "tls", "tls"):
        yield served


def smtp(inbox: Inbox, **extra: Any) -> dict[str, Any]:
    return {"smtp_host": "127.0.0.1", "smtp_port": inbox.port, "smtp_username": USER,
            "smtp_password": Secret(PASSWORD), "smtp_from": SENDER,
            "smtp_ca_file": inbox.ca_file, "company_name": "Acme Heating"} | extra


async def _invite(server: Server, to: str, **extra: Any) -> tuple[int, Any]:
    _, token = await server.staff("expert")
    job_id = await server.job(token, "Boiler pressure drops")
    status, body, _ = await server.request(
        "POST", f"/api/jobs/{job_id}/invites", token=token,
        json={"role": "customer", "to": to, **extra})
    return status, body


async def test_an_invite_to_an_address_is_e_mailed_over_starttls(
        server_factory: ServerFactory, inbox: Inbox, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    server = await server_factory(**smtp(inbox))
    status, body = await _invite(server, "keller@example.com", name="Mr Keller")
    assert status == 201, body
    assert (body["notified"], body["sent_by"]) == (True, "smtp")
    envelope, message = await inbox.one()
    assert envelope.mail_from == "assist@acme.example"
    assert envelope.rcpt_tos == ["keller@example.com"]
    assert message["From"] == SENDER and message["To"] == "keller@example.com"
    assert message["Subject"] == "Acme Heating: show us the problem on camera"
    assert message["Message-ID"] and message["Date"]
    text = message.get_content()
    assert text.startswith("Hello Mr Keller,")
    assert "Boiler pressure drops" in text and body["url"] in text
    assert f"for the next {server.settings.invite_ttl_s // 60} minutes" in text
    # Signed in with the password, inside TLS only.
    assert inbox.logins == [(USER, True)]
    # The link (a live one-time token) is in no log line of the server's (the SMTP
    # server's own debug log has it: it received it).
    link_token = body["url"].split("#", 1)[1]
    async with asyncio.timeout(5):  # the thread sending it returns after the QUIT
        while not [r for r in caplog.records if "e-mail accepted" in r.getMessage()]:
            await asyncio.sleep(0.02)
    assert not [r for r in caplog.records
                if r.name.startswith("videoassist") and link_token in r.getMessage()]
    # The session says how links go out.
    status, session, _ = await server.request("GET", "/api/session",
                                              token=(await server.staff("expert"))[1])
    assert session["sending"] == {"email": "smtp", "sms": None}


async def test_a_link_sent_is_resent_to_the_same_address_in_its_place(
        server_factory: ServerFactory, inbox: Inbox) -> None:
    server = await server_factory(**smtp(inbox))
    _, token = await server.staff("expert")
    job_id = await server.job(token, "Boiler pressure drops")
    status, first, _ = await server.request(
        "POST", f"/api/jobs/{job_id}/invites", token=token,
        json={"role": "customer", "to": "keller@example.com", "name": "Mr Keller"})
    assert status == 201, first
    await inbox.one()
    status, listed, _ = await server.request("GET", f"/api/jobs/{job_id}/invites",
                                             token=token)
    assert [(i["id"], i["sent_to"], i["state"]) for i in listed["invites"]] == [
        (first["id"], "keller@example.com", "open")]
    status, second, _ = await server.request("POST", f"/api/invites/{first['id']}/resend",
                                             token=token)
    assert status == 201, second
    assert (second["replaces"], second["name"], second["sent_by"]) == (
        first["id"], "Mr Keller", "smtp")
    async with asyncio.timeout(10):
        while len(inbox.messages) < 2:
            await asyncio.sleep(0.02)
    envelope, message = inbox.messages[1]
    assert envelope.rcpt_tos == ["keller@example.com"]
    assert second["url"] in message.get_content() and first["url"] != second["url"]
    old, new = (url.split("#", 1)[1] for url in (first["url"], second["url"]))
    assert (await server.redeem(old))[0] == 410
    assert (await server.redeem(new))[0] == 200
    # A used link is not resent.
    status, _, _ = await server.request("POST", f"/api/invites/{second['id']}/resend",
                                        token=token)
    assert status == 409


async def test_a_server_not_trusted_or_without_starttls_gets_nothing(
        server_factory: ServerFactory, inbox: Inbox, plain_inbox: Inbox,
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr(mail, "RETRY_DELAYS_S", (0.05, 0.05))
    caplog.set_level(logging.INFO, logger="videoassist.mail")
    # Its certificate checked against the system's CAs, which do not know it.
    untrusting = await server_factory(**smtp(inbox, smtp_ca_file=None))
    # Plain text only: the password would travel in clear; starttls is required.
    unprotected = await server_factory(**smtp(plain_inbox))
    for server in (untrusting, unprotected):
        status, body = await _invite(server, "keller@example.com")
        assert (status, body["sent_by"]) == (201, "smtp")
    async with asyncio.timeout(10):  # each tries once: trying again cannot mend it
        while len([r for r in caplog.records if "not tried again" in r.getMessage()]) < 2:
            await asyncio.sleep(0.05)
    await asyncio.sleep(0.3)  # a retry would be 0.05 s later
    assert not [r for r in caplog.records if "attempt" in r.getMessage()]
    assert inbox.messages == [] and plain_inbox.messages == []
    assert inbox.logins == [] and plain_inbox.logins == []
    failures = " ".join(r.getMessage() for r in caplog.records)
    assert "SSLCertVerificationError" in failures and "SMTPNotSupportedError" in failures


async def test_tls_from_the_first_byte_and_a_wrong_password_not_tried_again(
        server_factory: ServerFactory, tls_inbox: Inbox, inbox: Inbox,
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr(mail, "RETRY_DELAYS_S", (0.05, 0.05))
    caplog.set_level(logging.INFO, logger="videoassist.mail")
    server = await server_factory(**smtp(tls_inbox, smtp_security="tls"))
    status, body = await _invite(server, "keller@example.com")
    assert (status, body["sent_by"]) == (201, "smtp")
    envelope, _ = await tls_inbox.one()
    assert envelope.rcpt_tos == ["keller@example.com"]
    # A password the server refuses (535) is not tried again: once, then given up.
    refused = await server_factory(**smtp(inbox, smtp_password=Secret("not-the-password")))
    status, body = await _invite(refused, "keller@example.com")
    assert status == 201
    async with asyncio.timeout(10):
        while not [r for r in caplog.records if "not tried again" in r.getMessage()]:
            await asyncio.sleep(0.05)
    await asyncio.sleep(0.3)  # a retry would be 0.05 s later
    said = " ".join(r.getMessage() for r in caplog.records)
    assert "SMTPAuthenticationError 535" in said and "not sent (attempt" not in said
    # One connection: smtplib tries each mechanism offered (PLAIN, LOGIN), inside TLS.
    assert inbox.logins == [(USER, True), (USER, True)] and inbox.messages == []


async def test_addresses_that_could_add_a_header_or_a_recipient_are_refused(
        server_factory: ServerFactory, inbox: Inbox) -> None:
    server = await server_factory(**smtp(inbox))
    for bad in ("keller@example.com\r\nBcc: thief@example.net",
                "keller@example.com, thief@example.net", "Keller <keller@example.com>",
                "keller@localhost", "@example.com", "not a number"):
        status, body = await _invite(server, bad)
        assert status == 400, (bad, body)
    # A phone number with only SMTP set up: the link is made, and not sent.
    status, body = await _invite(server, "+44 7700 900123")
    assert (status, body["notified"], body["sent_by"]) == (201, False, None)
    await asyncio.sleep(0.3)
    assert inbox.messages == []


def test_smtp_settings_that_cannot_work_are_refused_at_start(tmp_path: Path) -> None:
    base = {"VIDEOASSIST_DATA_DIR": str(tmp_path), "VIDEOASSIST_SMTP_HOST": "127.0.0.1"}
    for extra, words in (
            ({}, "SMTP_FROM"),
            ({"VIDEOASSIST_SMTP_FROM": "Acme Heating"}, "SMTP_FROM"),
            ({"VIDEOASSIST_SMTP_FROM": SENDER, "VIDEOASSIST_SMTP_SECURITY": "maybe"},
             "SMTP_SECURITY"),
            ({"VIDEOASSIST_SMTP_FROM": SENDER, "VIDEOASSIST_SMTP_SECURITY": "none",
              "VIDEOASSIST_SMTP_USERNAME": USER}, "plain text"),
            ({"VIDEOASSIST_SMTP_FROM": SENDER, "VIDEOASSIST_SMTP_SECURITY": "none",
              "VIDEOASSIST_SMTP_HOST": "smtp.acme.example"}, "only to a relay on this machine"),
            ({"VIDEOASSIST_SMTP_FROM": "a@acme.example, b@acme.example"}, "SMTP_FROM"),
            ({"VIDEOASSIST_SMTP_FROM": "a@acme.example\r\nBcc: b@acme.example"}, "SMTP_FROM"),
            ({"VIDEOASSIST_SMTP_FROM": SENDER, "VIDEOASSIST_SMTP_PASSWORD": PASSWORD},
             "SMTP_USERNAME"),
            ({"VIDEOASSIST_SMTP_FROM": SENDER,
              "VIDEOASSIST_SMTP_CA_FILE": str(tmp_path / "missing.pem")}, "SMTP_CA_FILE")):
        with pytest.raises(ConfigError, match=words):
            load_settings(base | extra)
    settings = load_settings(base | {"VIDEOASSIST_SMTP_FROM": SENDER})
    assert (settings.smtp_port, settings.smtp_security) == (587, "starttls")
    # Plain text to a relay on this machine, without a password: allowed.
    settings = load_settings(base | {"VIDEOASSIST_SMTP_FROM": SENDER,
                                     "VIDEOASSIST_SMTP_SECURITY": "none"})
    assert settings.smtp_security == "none"
