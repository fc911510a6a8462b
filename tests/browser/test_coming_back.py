"""Coming back into a call in the real client (docs/protocol.md, Coming back;
docs/security.md, Coming back after a reload): a customer who reloads the page mid-call
is back in the same call, with the chat and the drawings, and the browser's profile
holds nothing of the call afterwards, not even the token that let the page back in; a
customer who left on purpose does not get back in by reloading; a chat message typed
while the socket is down arrives once when it is back, or is marked "not sent" when the
call ends first; a signed-in expert is asked before a reload throws them out of a call;
a customer who allows the camera 20 s after tapping Join gets into the call all the same.

One server for the module, and the package's Chromium (a server and a browser per test
cost seconds each); each test has contexts of its own, and the phone whose profile is
scanned has a Chromium and a profile of its own.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.async_api import (
    Browser,
    BrowserContext,
    Dialog,
    Page,
    Playwright,
    expect,
)

from tests.support.browser import (
    CHROMIUM,
    DROPPABLE_SOCKETS,
    FLAGS,
    FRAMES_DECODED,
    PHONE,
    RECEIVED,
    RECORD_PEER_CONNECTIONS,
    customer_joins,
    drag,
    end_call_for_all,
    expert_in_a_call,
    frames_grow,
    open_chat,
    scan_profile,
    serve_with_expert,
    watch_errors,
)
from tests.support.process import ServeProcess, ok

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="package")]

PIXEL = {"viewport": {"width": 412, "height": 915}, "device_scale_factor": 2.625,
         "user_agent": "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 "
                       "(KHTML, like Gecko) Chrome/156.0.0.0 Mobile Safari/537.36"}
TITLE_CANARY = "Boiler CANARY3e81 title"
CHAT_CANARY = "CANARY6b0d chat before the reload"
REPLY_CANARY = "CANARYa27f reply before the reload"
AFTER_CANARY = "CANARY0c95 chat after the reload"
# What join.js keeps in window.name while in a call, and the token it masks there.
KEPT = "videoassist-call:"
KEPT_TOKEN = """() => {
  const { masked } = JSON.parse(window.name.slice(window.name.indexOf(":") + 1));
  const bytes = (text) => Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
  const pad = bytes(history.state.videoassistPad);
  return [masked, new TextDecoder().decode(bytes(masked).map((x, i) => x ^ pad[i]))];
}"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    """``videoassist serve`` for the module, with dana, an expert."""
    yield from serve_with_expert(tmp_path_factory.mktemp("coming-back") / "data")


async def phone_with(playwright: Playwright, profile: Path) -> BrowserContext:
    """The customer's Chromium: a Pixel with touch, on a profile the test scans."""
    phone = await playwright.chromium.launch_persistent_context(
        profile, executable_path=CHROMIUM, headless=True, args=FLAGS, is_mobile=True,
        has_touch=True, **PIXEL)
    phone.set_default_timeout(15_000)
    return phone


async def test_a_customer_who_reloads_is_back_in_the_call_and_nothing_stays_on_the_phone(
        playwright: Playwright, chromium: Browser, server: ServeProcess,
        tmp_path: Path) -> None:
    """Reloaded mid-call: back in the same call, chat and drawing included; the browser
    closed mid-call: nothing in the profile, the token that let the page back in
    included, and a new browser does not get back in; left on purpose: a reload does
    not get back in."""
    browser = chromium
    errors: list[str] = []
    expert, link = await expert_in_a_call(browser, server, TITLE_CANARY, errors)
    profile = tmp_path / "phone-profile"
    people = expert.locator('[data-region="participants"] li')
    secrets = [TITLE_CANARY, CHAT_CANARY, REPLY_CANARY, AFTER_CANARY]
    phone = await phone_with(playwright, profile)
    try:
        customer = phone.pages[0] if phone.pages else await phone.new_page()
        watch_errors(customer, errors)
        await customer_joins(customer, link)
        status = customer.locator('[data-region="status"]')
        await frames_grow(expert)
        # Chat both ways and an arrow on the customer's camera, before the reload.
        await expert.fill("#call [name=message]", CHAT_CANARY)
        await expert.click('[data-action="chat-send"]')
        chat = customer.locator('[data-region="chat"]')
        await expect(chat).to_contain_text(CHAT_CANARY)
        await open_chat(customer)
        await customer.locator("[name=message]").fill(REPLY_CANARY)
        await customer.locator('[data-action="chat-send"]').tap()
        await expect(expert.locator('#call [data-region="chat"]')).to_contain_text(REPLY_CANARY)
        await expert.click('[data-action="tool-arrow"]')
        # In view again (typing in the chat scrolled it away), with its size.
        await expert.locator('[data-region="annotations"]').scroll_into_view_if_needed()
        await expert.wait_for_function(
            "() => document.querySelector('[data-region=\"remote-video\"]').videoWidth > 0")
        await drag(expert, [0.3, 0.3], [0.6, 0.6])
        overlay = customer.locator('[data-region="annotations"]')
        await expect(overlay).to_have_attribute("data-shapes", "1")
        kept = await customer.evaluate("() => window.name")
        assert kept.startswith(KEPT), kept
        masked, token = await customer.evaluate(KEPT_TOKEN)
        assert token.count(".") == 2 and token not in kept, token  # a JWT, masked
        secrets += [masked, token]
        first = (await customer.evaluate(RECEIVED, "joined"))[0]["you"]["id"]
        frames = await expert.evaluate(FRAMES_DECODED)

        # The phone's browser reloads the page: back in the same call, within seconds.
        started = time.monotonic()
        await customer.reload()
        await expect(status).to_have_text("Connected")
        back_s = time.monotonic() - started
        assert customer.url == f"{server.url}/join"  # no token in the address, or History
        await expect(customer.locator("#call")).to_be_visible()
        await expect(customer.locator("#landing")).to_be_hidden()
        joined = (await customer.evaluate(RECEIVED, "joined"))[0]
        assert joined["call"]["id"] == (await expert.evaluate(RECEIVED, "joined"))[0]["call"]["id"]
        if joined["resumed"]:  # the server still held the participant (branch `away`)
            assert joined["you"]["id"] == first
        # On main, the server saw the page's socket close and the customer joins anew:
        # either way the expert has one customer, and sees their camera again.
        await expect(people.filter(has_text="Customer")).to_have_count(1)
        back = joined["you"]["id"]
        await expect(expert.locator(f'[data-region="participants"] [data-participant="{back}"]')
                     ).to_be_visible()
        async with asyncio.timeout(15):
            while await expert.evaluate(FRAMES_DECODED) < frames + 20:
                await asyncio.sleep(0.2)
        # The chat, and the drawing, as the call has them: the arrow was on this
        # participant's video, and is shown again when the server kept the participant
        # (branch `away`); on main the new participant's video has none (a participant
        # who left takes its shapes with it).
        await expect(chat).to_contain_text(CHAT_CANARY)
        await expect(chat).to_contain_text(REPLY_CANARY)
        await expect(overlay).to_have_attribute("data-shapes", "1" if joined["resumed"] else "0")
        await expert.fill("#call [name=message]", AFTER_CANARY)
        await expert.click('[data-action="chat-send"]')
        await expect(chat).to_contain_text(AFTER_CANARY)
        for text in (CHAT_CANARY, REPLY_CANARY, AFTER_CANARY):  # each line once
            await expect(chat.locator("p", has_text=text)).to_have_count(1)
        assert errors == [], errors
    finally:
        await phone.close()  # in the call: the browser is closed (or killed)

    # Nothing of the call, and nothing that lets anyone back in, was written.
    await asyncio.to_thread(scan_profile, profile, server.url, secrets)
    phone = await phone_with(playwright, profile)
    try:
        customer = phone.pages[0] if phone.pages else await phone.new_page()
        watch_errors(customer, errors)
        status = customer.locator('[data-region="status"]')
        await customer.goto(f"{server.url}/join")
        await expect(status).to_have_text(
            "This link is incomplete. Open the whole link from your message.")

        # Another link (made from the job's record, the call staying on), joined and
        # left on purpose: a reload does not get back in.
        await expert.click('[data-action="call-record"]')
        await expert.click('[data-action="invite-customer"]')
        invite = expert.locator('[data-region="invite-link"]')
        await expect(invite).not_to_have_text(link)
        await customer.goto("about:blank")  # /join#TOKEN from /join would not load anew
        await customer_joins(customer, (await invite.text_content()) or "")
        secrets += await customer.evaluate(KEPT_TOKEN)
        second = (await customer.evaluate(RECEIVED, "joined"))[0]["you"]["id"]
        await expect(expert.locator(f'[data-participant="{second}"]')).to_be_visible()
        await customer.locator('[data-action="leave"]').tap()
        await expect(status).to_have_text("You left the call.")
        assert await customer.evaluate("() => [window.name, history.state]") == ["", None]
        await expect(expert.locator(f'[data-participant="{second}"]')).to_have_count(0)
        await customer.reload()
        await expect(status).to_have_text(
            "This link is incomplete. Open the whole link from your message.")
        assert await customer.locator("#call").is_hidden()
        assert await customer.evaluate("() => window.__sockets.length") == 0
        assert customer.url == f"{server.url}/join"

        # The expert, still in the call, is asked before a reload or close ends it.
        dialogs: list[str] = []

        async def answer(dialog: Dialog) -> None:
            dialogs.append(dialog.type)
            await dialog.dismiss()

        expert.on("dialog", answer)
        await expert.close(run_before_unload=True)
        async with asyncio.timeout(10):
            while not dialogs:
                await asyncio.sleep(0.1)
        assert dialogs == ["beforeunload"], dialogs
        assert not expert.is_closed()  # dismissed: the expert stays in the call
        await end_call_for_all(expert)
        assert errors == [], errors
    finally:
        await phone.close()
        await expert.context.close()

    await asyncio.to_thread(scan_profile, profile, server.url, secrets)
    with sqlite3.connect(f"file:{profile / 'Default/History'}?mode=ro", uri=True) as db:
        urls = [row[0] for row in db.execute("SELECT url FROM urls")]
    assert f"{server.url}/join" in urls, urls
    print(f"back in the call {back_s:.1f} s after the reload began")


async def test_a_new_link_opened_in_a_tab_already_on_the_join_page_is_the_one_read(
        chromium: Browser, server: ServeProcess) -> None:
    """Before: the new link changed only the fragment, the page did not load again, and
    it went on showing (and would have redeemed) the first link."""
    browser = chromium
    links = []
    for title in ("Boiler in the cellar", "Leak under the sink"):
        job_id = ok(server.data_dir, "job", "create", title).strip()
        printed = ok(server.data_dir, "invite", job_id, "--role", "customer")
        links.append(f"{server.url}/join#{printed.strip().rsplit('#', 1)[1]}")
    context = await browser.new_context(**PIXEL)
    context.set_default_timeout(15_000)
    try:
        page = await context.new_page()
        errors: list[str] = []
        watch_errors(page, errors)
        await page.goto(links[0])
        await expect(page.locator("#job-title")).to_have_text("Boiler in the cellar")
        await page.goto(links[1])  # as a tap on the second link in a message does
        await expect(page.locator("#job-title")).to_have_text("Leak under the sink")
        await expect(page).to_have_url(f"{server.url}/join")  # its token taken out too
        assert errors == [], errors
    finally:
        await context.close()


async def test_what_the_expert_draws_while_its_socket_is_down_reaches_the_customer(
        chromium: Browser, server: ServeProcess) -> None:
    """The expert's network drops mid-call; meanwhile it undoes its arrow and draws
    another (both shown at once on its own screen). Back in the call, the customer gets
    both, in order, and the expert's screen still shows what it drew."""
    errors: list[str] = []
    expert, link = await expert_in_a_call(chromium, server, "Fan coil rattles", errors,
                                          DROPPABLE_SOCKETS)
    context = await chromium.new_context(viewport=PHONE)
    context.set_default_timeout(15_000)
    try:
        customer = await context.new_page()
        await customer_joins(customer, link)
        await frames_grow(expert)
        await expert.click('[data-action="tool-arrow"]')
        drawn = expert.locator('#call [data-region="annotations"]')
        await drawn.scroll_into_view_if_needed()
        await expert.wait_for_function(
            "() => document.querySelector('[data-region=\"remote-video\"]').videoWidth > 0")
        await drag(expert, [0.2, 0.2], [0.4, 0.4])
        seen = customer.locator('[data-region="annotations"]')
        await expect(seen).to_have_attribute("data-shapes", "1")
        first = (await customer.evaluate(RECEIVED, "annotation.add"))[0]["shape"]["id"]

        await set_offline(expert, True)
        await expect(expert.locator("#call")).to_have_attribute("data-state", "reconnecting")
        await expert.click('[data-action="undo"]')
        await drag(expert, [0.5, 0.5], [0.7, 0.6])
        await expect(drawn).to_have_attribute("data-shapes", "1")  # shown at once here
        assert len(await customer.evaluate(RECEIVED, "annotation.add")) == 1
        await set_offline(expert, False)
        await expect(expert.locator("#call")).to_have_attribute(
            "data-state", "connected", timeout=30_000)  # retries back off

        async with asyncio.timeout(15):
            while len(await customer.evaluate(RECEIVED, "annotation.add")) < 2:
                await asyncio.sleep(0.1)
        removed = await customer.evaluate(RECEIVED, "annotation.remove")
        added = await customer.evaluate(RECEIVED, "annotation.add")
        assert [m["id"] for m in removed] == [first], removed
        assert len(added) == 2 and added[1]["shape"]["id"] != first, added
        await expect(seen).to_have_attribute("data-shapes", "1")
        await expect(drawn).to_have_attribute("data-shapes", "1")
        assert errors == [], errors
    finally:
        await context.close()
        await expert.context.close()


async def set_offline(page: Page, offline: bool) -> None:
    """The page's network goes (or comes back), its socket with it. Chromium's offline
    emulation fails new sockets and says offline (navigator.onLine, the "online" event
    when it comes back) but leaves an open socket open (checked with Chromium 156):
    that one is dropped as a lost network would."""
    await page.context.set_offline(offline)
    if offline:
        await page.evaluate("() => window.__sockets.forEach((ws) => ws.drop())")


async def test_a_message_typed_while_the_socket_is_down_arrives_once_or_is_marked_unsent(
        chromium: Browser, server: ServeProcess) -> None:
    browser = chromium
    errors: list[str] = []
    expert, link = await expert_in_a_call(browser, server, "Radiator is cold", errors)
    context = await browser.new_context(viewport=PHONE)
    context.set_default_timeout(15_000)
    try:
        customer = await context.new_page()
        await customer_joins(customer, link, DROPPABLE_SOCKETS)
        status = customer.locator('[data-region="status"]')
        chat = customer.locator('[data-region="chat"]')
        expert_chat = expert.locator('#call [data-region="chat"]')

        await set_offline(customer, True)
        await expect(status).to_have_text(re.compile("No network|Connection lost|Reconnecting"))
        await open_chat(customer)
        await customer.locator("[name=message]").fill("Typed in the cellar")
        await customer.locator('[data-action="chat-send"]').click()
        line = chat.locator("p", has_text="Typed in the cellar")
        await expect(line).to_have_attribute("data-state", "sending")
        await expect(line).to_contain_text("sending")
        await set_offline(customer, False)
        await expect(status).to_have_text("Connected", timeout=30_000)  # retries back off
        await expect(expert_chat.locator("p", has_text="Typed in the cellar")).to_have_count(1)
        await expect(line).to_have_attribute("data-message", re.compile(r"^\d+$"))
        await expect(line).not_to_have_attribute("data-state", "sending")
        await expect(chat.locator("p", has_text="Typed in the cellar")).to_have_count(1)
        sent = [m for m in await expert.evaluate(RECEIVED, "chat.message")
                if m["message"]["text"] == "Typed in the cellar"]
        assert len(sent) == 1, sent

        # Down again, and the job is closed meanwhile: the call ends before the message
        # can go, and it says so.
        await set_offline(customer, True)
        await expect(status).to_have_text(re.compile("No network|Connection lost|Reconnecting"))
        await open_chat(customer)
        await customer.locator("[name=message]").fill("Typed as the job closed")
        await customer.locator('[data-action="chat-send"]').click()
        job = (await customer.evaluate(RECEIVED, "joined"))[0]["job"]["id"]
        ok(server.data_dir, "job", "close", str(job))
        await expect(expert.locator("#call")).to_be_hidden()
        await set_offline(customer, False)
        await expect(customer.locator("#ended")).to_be_visible(timeout=30_000)
        late = chat.locator("p", has_text="Typed as the job closed")
        await expect(late).to_have_attribute("data-state", "unsent")
        await expect(late).to_contain_text("not sent")
        assert await customer.evaluate("() => window.name") == ""
        assert "Typed as the job closed" not in (await expert_chat.text_content() or "")
        assert errors == [], errors
    finally:
        await context.close()
        await expert.context.close()


# The camera and microphone answered CAMERA_LATE_S after the page asked (see the test),
# and every text of the page's status line, with when, to catch one that came and went.
CAMERA_LATE_S = 20
LATE_CAMERA = """
window.__cameraAsked = [];
window.__statuses = [];
const askCamera = navigator.mediaDevices.getUserMedia.bind(navigator.mediaDevices);
navigator.mediaDevices.getUserMedia = (constraints) => {
  window.__cameraAsked.push(Date.now());
  return new Promise((resolve, reject) => setTimeout(() => {
    window.__cameraAnswered = Date.now();
    askCamera(constraints).then(resolve, reject);
  }, LATE_MS));
};
addEventListener("DOMContentLoaded", () => {
  const status = document.querySelector('[data-region="status"]');
  const seen = () => window.__statuses.push([status.textContent, Date.now()]);
  seen();
  new MutationObserver(seen).observe(status, { childList: true, characterData: true,
    subtree: true });
});
""".replace("LATE_MS", str(CAMERA_LATE_S * 1000))


async def test_a_customer_who_allows_the_camera_20_s_late_is_in_the_call(
        chromium: Browser, server: ServeProcess) -> None:
    """The customer opens the link and taps Join; the camera and microphone are allowed
    only 20 s later. ``LATE_CAMERA`` makes the page's getUserMedia answer 20 s after it
    is called: it stands in for the browser's permission prompt, which headless
    Chromium does not show and a test cannot answer (``--use-fake-ui-for-media-stream``
    allows at once), and what the page sees of a prompt is just that, a getUserMedia
    that answers late. Meanwhile the phone says it starts the camera,
    and the expert, in the call, is told nobody has joined yet (the customer is not in
    the call before it has a camera to show); then the customer is in the call and the
    expert sees their camera live. The link, spent at Join, is never said to be
    incomplete or no longer valid."""
    browser = chromium
    errors: list[str] = []
    expert, link = await expert_in_a_call(browser, server, "Boiler, camera allowed late",
                                          errors)
    context = await browser.new_context(viewport=PHONE)
    context.set_default_timeout(15_000)
    try:
        customer = await context.new_page()
        watch_errors(customer, errors)
        await customer.add_init_script(RECORD_PEER_CONNECTIONS + LATE_CAMERA)
        await customer.goto(link)
        await customer.locator('[data-action="join"]').click()
        status = customer.locator('[data-region="status"]')
        await customer.wait_for_function("() => window.__cameraAsked.length === 1")
        asked = time.monotonic()
        await expect(status).to_have_text("Starting the camera…")
        note = expert.locator('[data-region="picture-note"]')
        remote = expert.locator('[data-region="remote-video"]')
        await expect(note).to_have_text("Waiting for someone to join…")
        people = expert.locator('[data-region="participants"]')
        await expect(people).to_have_text("Nobody else yet.")
        assert time.monotonic() - asked < CAMERA_LATE_S  # all seen before the answer

        await expect(status).to_have_text("Connected", timeout=(CAMERA_LATE_S + 15) * 1000)
        await expect(customer.locator("#call")).to_be_visible()
        await expect(people.locator("[data-participant]", has_text="Customer")
                     ).to_have_count(1)
        await frames_grow(expert)
        await expect(remote).to_have_attribute("data-picture", "live")
        await expect(note).to_be_hidden()
        answered = await customer.evaluate("() => window.__cameraAnswered")
        statuses = [(text, (at - answered) / 1000) for text, at in
                    await customer.evaluate("() => window.__statuses")]
        assert not [s for s, _ in statuses if "incomplete" in s or "no longer" in s], statuses
        assert await customer.locator("#ended").is_hidden()
        assert await customer.evaluate("() => window.__cameraAsked.length") == 1
        assert errors == [], errors
        print(f"camera allowed {CAMERA_LATE_S} s after it was asked for; the phone's "
              f"statuses, in seconds from then: {[(s, round(t, 2)) for s, t in statuses]}")
        await end_call_for_all(expert)
    finally:
        await context.close()
        await expert.context.close()
