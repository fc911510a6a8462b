"""First run, end to end: ``videoassist serve`` prints a one-time /setup link, the admin
sets a password in Chromium, signs in, creates a job and invites a customer."""

from __future__ import annotations

import re

import cv2
import numpy as np
import pytest
from playwright.async_api import BrowserContext, Page, expect

from tests.support.browser import DESKTOP, PHONE, screenshots, watch_errors
from tests.support.process import LINK_TOKEN, ServeProcess
from tests.support.server import PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="package")]


def setup_link(serve: ServeProcess) -> tuple[str, str]:
    """The link ``serve`` prints on first run, and its token; waits until it answers."""
    match = serve.wait_for(rf"({re.escape(serve.url)}/setup#({LINK_TOKEN}))(?![A-Za-z0-9_-])")
    serve.wait_ready()
    return match[1], match[2]


async def set_password(page: Page, link: str) -> None:
    await page.goto(link)
    await page.fill("[name=password]", PASSWORD)
    await page.fill("[name=password2]", PASSWORD)
    await page.click('[data-action="set-password"]')


def assert_token_only_printed_once(serve: ServeProcess, token: str) -> None:
    """After the run: the token is on the line printed on purpose, never in a log line."""
    assert serve.stop() == 0, serve.output
    assert "Traceback" not in serve.output, serve.output
    assert re.search(r"GET /setup 200 ", serve.output), serve.output  # the access log ran
    assert re.search(r"POST /api/password \d{3} ", serve.output), serve.output
    printed = [line for line in serve.lines if token in line]
    assert len(printed) == 1, printed
    assert printed[0].strip().startswith(f"{serve.url}/setup#{token}"), printed
    assert serve.output.count(token) == 1


async def width_at_a_desk(page: Page, selector: str) -> float:
    """How wide the element is on a desktop-sized window, in CSS pixels."""
    await page.set_viewport_size(DESKTOP)
    width: float = await page.locator(selector).evaluate(
        "(e) => e.getBoundingClientRect().width")
    await page.set_viewport_size(PHONE)
    assert 0 < width < DESKTOP["width"] * 0.75, width
    return width


async def test_first_run_setup_sign_in_job_and_invite(
    serve: ServeProcess, browser: BrowserContext
) -> None:
    link, token = setup_link(serve)
    page = await browser.new_page()
    errors: list[str] = []
    watch_errors(page, errors)

    await page.goto(link)
    await expect(page).to_have_url(f"{serve.url}/setup")  # the token left the address bar
    await expect(page.locator("#setup h1")).to_have_text("Set your password")
    await screenshots(page, "setup")
    setup_width = await width_at_a_desk(page, "[name=password]")
    await page.fill("[name=password]", PASSWORD)
    await page.fill("[name=password2]", PASSWORD)
    async with page.expect_response(f"{serve.url}/api/password") as answer:
        await page.click('[data-action="set-password"]')
    assert (await answer.value).status == 200
    await expect(page.locator("#done")).to_be_visible()
    await expect(page.locator("#done")).to_contain_text("password is set")
    await expect(page.locator('#done [data-region="username"]')).to_have_text("admin")
    await expect(page.locator("#setup-form")).to_be_hidden()
    await screenshots(page, "setup-done")

    await page.goto(serve.url + "/")
    await expect(page.locator('[data-action="sign-in"]')).to_be_visible()
    await screenshots(page, "sign-in")
    # Laid out as the setup page: the same narrow column, not the desk's whole width.
    assert abs(await width_at_a_desk(page, "#signin [name=username]") - setup_width) <= 1
    await page.fill("[name=username]", "admin")
    await page.fill("[name=password]", PASSWORD)
    await page.click('[data-action="sign-in"]')
    await expect(page.locator("#jobs")).to_be_visible()
    await expect(page.locator("#signin")).to_be_hidden()
    await expect(page.locator("#who")).to_have_text("admin · Admin")

    await page.fill("[name=title]", "Boiler makes a noise")
    await page.fill("[name=external_ref]", "WO-1")
    await page.click('[data-action="job-create"]')
    await expect(page.locator('[data-region="jobs"] button')).to_have_text(
        ["Boiler makes a noise · WO-1"])
    await expect(page.locator("#job-heading")).to_have_text("Boiler makes a noise")
    await page.click('[data-action="invite-customer"]')
    invite = page.locator('[data-region="invite-link"]')
    await expect(invite).to_have_text(re.compile(rf"^{re.escape(serve.url)}/join#{LINK_TOKEN}$"))
    join_link = await invite.text_content()
    assert join_link is not None
    # Its QR code on the screen, for a phone beside it: a camera reads the very link.
    qr = page.locator('[data-region="invite-qr"]')
    await expect(qr).to_be_visible()
    await expect(qr).to_have_js_property("complete", True)
    shot = cv2.imdecode(np.frombuffer(await qr.screenshot(), np.uint8), cv2.IMREAD_GRAYSCALE)
    assert cv2.QRCodeDetectorAruco().detectAndDecode(shot)[0] == join_link
    await screenshots(page, "console-job")
    # Copied with one click.
    await browser.grant_permissions(["clipboard-read", "clipboard-write"], origin=serve.url)
    await page.click('[data-action="copy-invite"]')
    await expect(page.locator('[data-region="status"]')).to_have_text("Link copied.")
    assert await page.evaluate("navigator.clipboard.readText()") == join_link
    # A number typed where this server has no SMS gateway is not dropped in silence:
    # the page says it was not sent, and why; the number stays where it was typed.
    await page.fill("#invite-form [name=to]", "+44 7700 900123")
    await page.click('[data-action="invite-technician"]')
    await expect(page.locator('[data-region="status"]')).to_contain_text(
        "Not sent to +44 7700 900123: this server has no text message gateway set up")
    await expect(page.locator('[data-region="invite-channels"]')).to_have_text(
        "This server sends no links itself: copy the link or show the QR code.")
    await expect(page.locator("#invite-form [name=to]")).to_have_value("+44 7700 900123")
    await expect(invite).not_to_have_text(join_link)  # a new link, the technician's

    customer = await browser.new_page()
    watch_errors(customer, errors)
    await customer.goto(join_link)  # opening it consumes nothing
    await expect(customer.locator('[data-action="join"]')).to_be_enabled()
    await expect(customer.locator("#job-title")).to_have_text("Boiler makes a noise")
    await screenshots(customer, "join")

    assert errors == []
    assert_token_only_printed_once(serve, token)


async def test_a_used_setup_link_says_it_is_no_longer_valid(
    serve: ServeProcess, browser: BrowserContext
) -> None:
    link, token = setup_link(serve)
    first = await browser.new_page()
    async with first.expect_response(f"{serve.url}/api/password") as answer:
        await set_password(first, link)
    assert (await answer.value).status == 200
    await expect(first.locator("#done")).to_be_visible()

    again = await browser.new_page()
    async with again.expect_response(f"{serve.url}/api/password") as answer:
        await set_password(again, link)
    assert (await answer.value).status == 410
    status = again.locator('[data-region="status"]')
    await expect(status).to_contain_text("no longer valid")
    await expect(again.locator("#done")).to_be_hidden()
    await expect(again.locator("#setup-form")).to_be_hidden()  # no dead form left to fill
    await expect(again.locator("#dead h1")).to_have_text("This link is no longer valid")
    await screenshots(again, "setup-used")

    assert_token_only_printed_once(serve, token)
