"""A whole call in the real client: an expert in the console (desktop, a context of the
package's Chromium) and a customer on a phone-sized, touch page (a Chromium of its own,
whose profile on disk is scanned), each with a fake camera.

The expert signs in, creates a job and invites the customer; the customer opens the
link and joins; the expert sees live frames, draws an arrow that shows on the
customer's own camera view, chats both ways and takes a snapshot that appears in the
job panel; everyone leaves. Then the customer's browser profile is scanned: nothing of
the call (canaries in the job title, the chat and the snapshot caption) is on disk, and
no site storage exists for the server's origin. The phone's browser asks for each of
the join page's languages in turn (English, German, French, Spanish): the page speaks it,
and leaves nothing either.

Everything is found through the ``data-action`` and ``data-region`` handles of
docs/ui.md. The expert's page gets an init script that records its peer connections,
to read ``framesDecoded`` from getStats(); the customer's page gets nothing injected.
"""

from __future__ import annotations

import asyncio
import json
import re
import sqlite3
import time
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from playwright.async_api import Browser, BrowserContext, Playwright, expect

from tests.support.browser import (
    ARTIFACTS,
    CHROMIUM,
    DESKTOP,
    FLAGS,
    OVERLAY_PIXEL,
    PHONE,
    RECORD_PEER_CONNECTIONS,
    STOP_AT_ONCE,
    Served,
    assert_usable,
    drag,
    end_call_for_all,
    expert_joins,
    frames_grow,
    open_chat,
    scan_profile,
    screenshots,
    watch_errors,
)
from tests.support.process import ServeProcess, ok, post_json
from tests.support.server import PASSWORD, leave
from videoassist.i18n import catalogue

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="package")]

PHONES = {
    "iphone": {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 3,
               "user_agent": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) "
                             "AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 "
                             "Mobile/15E148 Safari/604.1"},
    "pixel": {"viewport": {"width": 412, "height": 915}, "device_scale_factor": 2.625,
              "user_agent": "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 "
                            "(KHTML, like Gecko) Chrome/156.0.0.0 Mobile Safari/537.36"},
}

TITLE_CANARY = "Boiler CANARY7f3a title"
CHAT_CANARY = "CANARY91be chat from the expert"
REPLY_CANARY = "CANARYc044 reply from the phone"
CAPTION_CANARY = "CANARY5d21 caption"

@pytest.fixture(scope="module")
def serve(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    """``videoassist serve`` for the module's tests but the full call's (which needs a
    server of its own settings), with dana, an expert: a server each cost seconds. Each
    test works in a job of its own, and scans a phone's profile of its own."""
    data_dir = tmp_path_factory.mktemp("call") / "data"
    process = ServeProcess(data_dir, env=STOP_AT_ONCE)
    try:
        process.wait_ready()
        ok(data_dir, "user", "add", "dana", "--role", "expert", "--password-stdin",
           stdin=PASSWORD + "\n")
        yield process
    finally:
        process.stop()


# The whole call's phones: a model, and the language its browser asks for where not
# English ("pixel-de"): the zero-storage scan holds in each of the join page's languages.
WHOLE_CALL_PHONES = ["iphone", "pixel-de", "iphone-fr", "pixel-es"]


def _model_and_language(param: str) -> tuple[str, str]:
    model, _, language = param.partition("-")
    return model, language or "en"


@pytest_asyncio.fixture(loop_scope="package")
async def phone(request: pytest.FixtureRequest, playwright: Playwright, tmp_path: Path
                ) -> AsyncIterator[tuple[BrowserContext, Path, str]]:
    """The customer's Chromium: a phone with touch, in its language (``pixel-de``: a
    Pixel whose browser asks for German), and a profile the test scans."""
    model, language = _model_and_language(request.param)
    profile = tmp_path / "phone-profile"
    context = await playwright.chromium.launch_persistent_context(
        profile, executable_path=CHROMIUM, headless=True, args=FLAGS,
        is_mobile=True, has_touch=True, locale=language, **PHONES[model])
    context.set_default_timeout(15_000)
    try:
        yield context, profile, request.param
    finally:
        await context.close()


@pytest.mark.parametrize("phone", WHOLE_CALL_PHONES, indirect=True)
async def test_a_whole_call_leaves_nothing_on_the_phone(
        browser: BrowserContext, phone: tuple[BrowserContext, Path, str],
        serve: ServeProcess) -> None:
    phone_context, profile, name = phone
    model, language = _model_and_language(name)
    say = catalogue(language).gettext  # the phone's words
    errors: list[str] = []

    # The expert, at a desk: sign in, create the job, invite the customer.
    expert = await browser.new_page()
    await expert.set_viewport_size(DESKTOP)
    await expert.add_init_script(RECORD_PEER_CONNECTIONS)
    watch_errors(expert, errors)
    link = await expert_joins(expert, serve, TITLE_CANARY)

    # The customer, on a phone: the landing page, then one tap.
    customer = (phone_context.pages or [await phone_context.new_page()])[0]
    watch_errors(customer, errors)
    await customer.goto(link)
    await expect(customer.locator("#job-title")).to_have_text(TITLE_CANARY)
    await expect(customer.locator("html")).to_have_attribute("lang", language)
    await expect(customer.locator('[data-action="join"]')).to_have_text(say("Join the call"))
    await expect(customer.locator('[data-action="join"]')).to_be_enabled()
    await assert_usable(customer, "landing")
    # Keyboard users reach the one thing to do first.
    await customer.keyboard.press("Tab")
    await expect(customer.locator('[data-action="join"]')).to_be_focused()
    await screenshots(customer, f"customer-landing-{name}")
    await customer.set_viewport_size(PHONES[model]["viewport"])
    await customer.locator('[data-action="join"]').tap()
    await expect(customer.locator('[data-region="status"]')).to_have_text(say("Connected"))
    await expect(customer.locator('[data-action="snapshot"]')).to_be_hidden()

    # The expert sees the customer's camera, live.
    await frames_grow(expert)
    # The phone's small picture is the expert's camera: it can be hidden and moved.
    await expect(customer.locator('[data-action="self-view"]')).to_be_visible()
    await expect(customer.locator('[data-action="self-view-move"]')).to_be_visible()
    await expect(expert.locator('[data-region="participants"]')).to_contain_text("Customer")

    # The expert draws an arrow; the customer's own camera view shows it.
    await expert.click('[data-action="tool-arrow"]')
    await drag(expert, [0.3, 0.3], [0.6, 0.6])
    overlay = customer.locator('[data-region="annotations"]')
    await expect(overlay).to_have_attribute("data-shapes", "1")
    red = await customer.evaluate(OVERLAY_PIXEL, [0.45, 0.45])  # on the shaft
    assert red[0] > 200 and red[1] < 90 and red[2] < 90 and red[3] > 200, red
    clear = await customer.evaluate(OVERLAY_PIXEL, [0.45, 0.2])
    assert clear[3] == 0, clear

    # Chat both ways.
    await expert.fill("#call [name=message]", CHAT_CANARY)
    await expert.click('[data-action="chat-send"]')
    await expect(customer.locator('[data-region="chat"]')).to_contain_text(CHAT_CANARY)
    await open_chat(customer)
    await customer.locator("[name=message]").fill(REPLY_CANARY)
    await customer.locator('[data-action="chat-send"]').tap()
    await expect(expert.locator('#call [data-region="chat"]')).to_contain_text(REPLY_CANARY)

    # A snapshot of the customer's camera, arrow burned in, in the expert's job panel.
    await expert.click('[data-action="snapshot"]')
    figure = expert.locator('[data-region="snapshots"] [data-snapshot]')
    await expect(figure).to_have_count(1)
    await expect(figure.locator("img")).to_have_attribute("src", re.compile(r"^blob:"))
    await figure.locator("[name=caption]").fill(CAPTION_CANARY)
    await figure.locator('[data-action="snapshot-caption"]').click()
    await expect(expert.locator('[data-region="status"]')).to_have_text("Caption saved")
    await expect(customer.locator('[data-region="snapshots"] li')).to_have_count(1)

    for page in (customer, expert):  # the indicator measures the media connection
        await expect(page.locator('[data-region="quality"]')).to_have_attribute(
            "data-level", re.compile("^(good|fair|poor)$"))
    await assert_usable(customer, "customer call")
    await assert_usable(expert, "expert console")
    await screenshots(customer, f"customer-call-{name}")
    await expert.screenshot(path=ARTIFACTS / "expert-call-desktop.png", full_page=True)
    await expert.set_viewport_size(PHONE)
    await expert.screenshot(path=ARTIFACTS / "expert-call-phone.png", full_page=True)
    await expert.set_viewport_size(DESKTOP)

    # Everyone leaves: the customer first, then the expert ends the call.
    await customer.locator('[data-action="leave"]').tap()
    await expect(customer.locator("#ended")).to_be_visible()
    await expect(customer.locator('[data-region="status"]')).to_have_text(
        say("You left the call."))
    await screenshots(customer, f"customer-ended-{name}")
    await expect(expert.locator('[data-region="participants"]')).not_to_contain_text("Customer")
    # Ending the call for everyone is asked again; Cancel leaves the call as it was.
    await expert.click('[data-action="end-call"]')
    confirm = expert.locator('[data-region="end-call-confirm"]')
    await expect(confirm).to_be_visible()
    await expect(confirm).to_contain_text("End the call for everyone in it?")
    await expect(expert.locator('[data-action="end-call"]')).to_be_hidden()
    await expect(expert.locator('[data-action="end-call-cancel"]')).to_be_focused()
    await expert.click('[data-action="end-call-cancel"]')
    await expect(confirm).to_be_hidden()
    await expect(expert.locator('[data-action="end-call"]')).to_be_visible()
    await expect(expert.locator("#call")).to_be_visible()  # still in it
    await end_call_for_all(expert)
    await expect(expert.locator('[data-action="join"]')).to_be_visible()
    assert errors == []

    origin = serve.url
    await phone_context.close()
    await asyncio.to_thread(scan_profile, profile, origin,
                            [TITLE_CANARY, CHAT_CANARY, REPLY_CANARY, CAPTION_CANARY])


def _inspect(serve: ServeProcess, token: str) -> dict[str, Any]:
    """POST /api/invites/inspect: what the join page asks about its link."""
    request = urllib.request.Request(
        serve.url + "/api/invites/inspect", json.dumps({"token": token}).encode(),
        method="POST", headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        answer: dict[str, Any] = json.load(response)
    return answer


def _holding(profile: Path, secret: str) -> list[str]:
    """The files of the profile that hold ``secret`` (as UTF-8 or UTF-16)."""
    needles = (secret.encode(), secret.encode("utf-16-le"))
    return sorted(path.relative_to(profile).as_posix() for path in profile.rglob("*")
                  if path.is_file() and any(n in path.read_bytes() for n in needles))


@pytest.mark.parametrize("phone", ["pixel"], indirect=True)
async def test_a_link_opened_but_not_used_stays_in_history_until_it_expires(
        phone: tuple[BrowserContext, Path, str], serve: ServeProcess) -> None:
    """Issue 20 #14: the customer opens the link and does not join. The page takes the
    token out of its URL at once, before anyone touches it, and keeps it in memory; but
    Chromium has already recorded the URL as opened, and keeps it in the profile's
    History (and its session, favicon and metrics files) after the browser is closed, whatever the
    page does: a link opened but not used can be taken from there until it expires,
    which is why links live 15 minutes unless asked otherwise (docs/security.md)."""
    data_dir = serve.data_dir
    phone_context, profile, _ = phone
    job_id = ok(data_dir, "job", "create", "Boiler makes a noise").strip()
    link = ok(data_dir, "invite", job_id, "--role", "customer").strip()
    token = link.split("#", 1)[1]
    page = await phone_context.new_page()
    await page.goto(f"{serve.url}/join#{token}")
    await expect(page.locator('[data-action="join"]')).to_be_enabled()  # inspected
    assert page.url == f"{serve.url}/join"  # no token in the address bar or the tab
    await phone_context.close()

    holding = await asyncio.to_thread(_holding, profile, token)
    assert "Default/History" in holding, holding
    records = ("Default/History", "Default/Sessions/", "Default/Favicons",
               "segmentation_platform/ukm_db")
    assert all(path.startswith(records) for path in holding), holding  # only Chromium's
    with sqlite3.connect(f"file:{profile / 'Default/History'}?mode=ro", uri=True) as db:
        urls = [row[0] for row in db.execute("SELECT url FROM urls")]
    assert f"{serve.url}/join#{token}" in urls and f"{serve.url}/join" in urls, urls
    # Whoever reads the profile holds a live link, until it expires (by default in
    # 15 minutes from its making) or is used.
    assert _inspect(serve, token)["expires_at"] <= time.time() + 15 * 60
    assert post_json(serve.url + "/api/invites/redeem", {"token": token}) == 200
    assert post_json(serve.url + "/api/invites/redeem", {"token": token}) == 410


REFUSALS = """async () => {
  const { refusal } = await import("/static/js/call.js");
  return [[4429, "too_many_connections", false], [4429, "too_many_connections", true],
    [4429, "rate_limited", false], [4400, "auth_required", false],
    [4401, "unauthorized", false], [1006, "", false]].map((a) => refusal(...a));
}"""


async def test_a_full_call_says_so_and_lets_the_customer_in_when_there_is_room(
        chromium: Browser, served: Served, tmp_path: Path) -> None:
    """A join the server refuses for now (close 4429, 4400) is said in words, not as a
    lost connection, and tried again every 10 s: here the call is full (two
    participants at most), and the customer gets in once someone has left."""
    data_dir = tmp_path / "data"
    serve = served(data_dir, env={"VIDEOASSIST_CALL_MAX_PARTICIPANTS": "2"})
    # A phone with touch, in a context of the package's Chromium: no profile to scan.
    phone_context = await chromium.new_context(is_mobile=True, has_touch=True,
                                               **PHONES["pixel"])
    phone_context.set_default_timeout(15_000)
    try:
        ok(data_dir, "user", "add", "dana", "--role", "expert", "--password-stdin",
           stdin=PASSWORD + "\n")
        job_id = int(ok(data_dir, "job", "create", "Boiler makes a noise"))
        token = ok(data_dir, "invite", str(job_id), "--role", "customer").strip().split("#")[1]
        async with aiohttp.ClientSession() as http:
            async with http.post(serve.url + "/api/session",
                                 json={"username": "dana", "password": PASSWORD}) as answer:
                staff_token = (await answer.json())["token"]
            experts = []  # the expert in the call twice (a desk and a laptop): it is full
            for _ in range(2):
                ws = await http.ws_connect(serve.url + "/ws", headers={"Origin": serve.url})
                await ws.send_json({"type": "auth", "token": staff_token, "job": job_id})
                assert (await ws.receive_json(timeout=10))["type"] == "joined"
                experts.append(ws)
            page = await phone_context.new_page()
            # The page's clock, not the test, waits out the 10 s (fast_forward below);
            # it runs as real time otherwise.
            await page.clock.install()
            await page.goto(f"{serve.url}/join#{token}")
            await page.locator('[data-action="join"]').click()
            status = page.locator('[data-region="status"]')
            await expect(status).to_have_text("This call is full. Trying again in 10 s…")
            assert await page.locator("#call").is_hidden()
            assert await page.evaluate(REFUSALS) == [
                "Too many connections from this link: close the other tabs or windows "
                "where it is open.",
                "Too many connections from your account: close the call in your other tabs "
                "or windows.",
                "Too many joins in a short time.",
                "The server did not accept this page's messages.",
                None, None]
            await leave(experts[0])  # room for one
            while (await experts[1].receive_json(timeout=10))["type"] != "participant.left":
                pass  # the server has let it go
            await page.clock.fast_forward(10_000)  # the next try gets in
            await expect(page.locator("#call")).to_be_visible(timeout=30_000)
            await leave(experts[1])
    finally:
        await phone_context.close()
