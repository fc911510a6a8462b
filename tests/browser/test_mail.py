"""Invites the server e-mails itself, from the console, received by a real SMTP server
(aiosmtpd on loopback, STARTTLS with a certificate the server verifies:
tests/support/smtp.py).

The expert types the customer's name and e-mail address and invites them: the console
says the link was e-mailed. The SMTP server is busy at first (451, try again later): the
server tries again and the message arrives, holding the link the console shows. "Send a
new link" e-mails a new one in its place: the first no longer opens, the new one greets
the customer by name.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from email.message import EmailMessage
from pathlib import Path

import pytest
import pytest_asyncio
from playwright.async_api import Browser, BrowserContext, expect

from tests.support.browser import (
    DESKTOP,
    PHONE,
    Served,
    assert_accessible,
    sign_in_expert,
    watch_errors,
)
from tests.support.process import ok
from tests.support.server import PASSWORD as STAFF_PASSWORD
from tests.support.smtp import PASSWORD, SENDER, USER, Inbox, smtp_server

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="package")]


@pytest_asyncio.fixture(loop_scope="package")
async def inbox(tmp_path: Path) -> AsyncIterator[Inbox]:
    async for served in smtp_server(tmp_path / "smtp", "starttls"):
        yield served


def _link(message: EmailMessage) -> str:
    body = message.get_body(("plain",))
    assert body is not None
    found = re.findall(r"https?://\S+/join#\S+", body.get_content())
    assert len(found) == 1, body.get_content()
    return str(found[0])


async def test_an_e_mailed_invite_arrives_after_a_busy_server_and_is_sent_again_in_its_place(
        browser: BrowserContext, chromium: Browser, served: Served, inbox: Inbox) -> None:
    assert inbox.ca_file is not None
    serve = served(env={
        "VIDEOASSIST_COMPANY_NAME": "Acme Heating",
        "VIDEOASSIST_SMTP_HOST": "127.0.0.1", "VIDEOASSIST_SMTP_PORT": str(inbox.port),
        "VIDEOASSIST_SMTP_USERNAME": USER, "VIDEOASSIST_SMTP_PASSWORD": PASSWORD,
        "VIDEOASSIST_SMTP_FROM": SENDER, "VIDEOASSIST_SMTP_CA_FILE": str(inbox.ca_file)})
    ok(serve.data_dir, "user", "add", "dana", "--role", "expert", "--password-stdin",
       stdin=STAFF_PASSWORD + "\n")
    job_id = ok(serve.data_dir, "job", "create", "Boiler pressure drops").strip()
    errors: list[str] = []
    expert = await browser.new_page()
    await expert.set_viewport_size(DESKTOP)
    watch_errors(expert, errors)
    await sign_in_expert(expert, serve)
    await expert.click(f'[data-job="{job_id}"]')
    await expect(expert.locator('[data-region="invite-channels"]')).to_have_text(
        "This server sends links by e-mail; no text message gateway is set up.")

    inbox.refuse = 1  # busy at first: 451
    await expert.fill("#invite-form [name=name]", "Mr Keller")
    await expert.fill("#invite-form [name=to]", "keller@example.com")
    await expert.click('[data-action="invite-customer"]')
    status = expert.locator('[data-region="status"]')
    await expect(status).to_have_text(re.compile(
        r"^Link for Mr Keller \(customer\) e-mailed to keller@example\.com; valid until "))
    shown = expert.locator('[data-region="invite-link"]')
    first_link = (await shown.text_content()) or ""
    envelope, message = await inbox.one(timeout=15)  # after a retry a second later
    assert inbox.refused == 1
    assert envelope.rcpt_tos == ["keller@example.com"]
    assert _link(message) == first_link
    assert ("assist", True) in inbox.logins  # signed in inside TLS

    listed = expert.locator('[data-region="invites"] li').first
    await expect(listed).to_contain_text("Mr Keller · Customer · sent to keller@example.com")
    await assert_accessible(expert, "console, a link e-mailed")
    await listed.locator('[data-action="invite-resend"]').click()
    await expect(status).to_have_text(
        "A new link sent to keller@example.com; the old one no longer works.")
    _, again = await inbox.one(timeout=15, index=1)
    second_link = _link(again)
    assert second_link != first_link
    await expect(shown).to_have_text(second_link)
    await expect(expert.locator('[data-region="invites"] li[data-state="withdrawn"]')
                 ).to_have_count(1)
    await expect(expert.locator('[data-region="invites"] li[data-state="open"]')
                 ).to_have_count(1)

    phone = await chromium.new_context(viewport=PHONE, is_mobile=True, has_touch=True)
    try:
        customer = await phone.new_page()  # the first link's 410 is a console error
        await customer.goto(first_link)
        await expect(customer.locator('[data-region="status"]')).to_have_text(
            "This link is no longer valid. Ask for a new one.")
        await customer.goto(second_link)
        await expect(customer.locator('[data-region="greeting"]')).to_contain_text(
            "Hello Mr Keller.")
        await expect(customer.locator('[data-action="join"]')).to_be_enabled()
    finally:
        await phone.close()
        await expert.close()
    assert errors == [], errors
