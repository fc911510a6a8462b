"""The indicators say what people get (docs/ui.md, "Indicators"): an expert in the console
(desktop) and a customer on a phone-sized page, in one Chromium with a fake camera, on
``videoassist serve``.

- A customer who joins before staff is "Customer is waiting" on the console (the job's
  item, the job's page, the tab title), until the expert joins. The customer's badge
  then says the connection in plain words, the expert's with the round trip.
- The expert's picture of the customer freezes for real: the customer's page stops
  sending video (``RTCRtpSender.replaceTrack(null)``, what a phone does when another
  app takes the camera), while the media connection stays up (audio flows). The
  badge says "Video frozen" and the picture is marked, then back when frames flow
  again. A camera turned off on purpose (``media.mute`` of video, sent on the page's
  own socket) is "Camera off", never frozen.
- The customer's phone loses its network (its socket closes; new ones fail until the
  page hears ``online``): the server keeps the customer in the call, away
  (``participant.away``), and the expert reads "Customer disconnected, reconnecting
  0:03" with the clock running, until the phone is back (``participant.back``, the same
  participant); then "Customer left the call." when it leaves.

One server for the module (as tests/browser/test_shapes.py); each test has its own job,
and its own browser context and pages.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.async_api import BrowserContext, Locator, Page, expect

from tests.support.browser import (
    DESKTOP,
    FRAMES_DECODED,
    RECORD_PEER_CONNECTIONS,
    end_call_for_all,
    frames_grow,
    join_page,
    serve_with_expert,
    sign_in_expert,
    watch_errors,
)
from tests.support.process import ServeProcess

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="package")]

LIVE = re.compile("^(good|fair|poor)$")

# The customer's page stops sending video, keeping the track to send again.
STOP_VIDEO = """async () => {
  const pc = window.__pcs.at(-1);
  const sender = pc.getSenders().find((s) => s.track && s.track.kind === "video");
  window.__heldTrack = sender.track;
  window.__heldSender = sender;
  await sender.replaceTrack(null);
}"""
RESUME_VIDEO = "async () => { await window.__heldSender.replaceTrack(window.__heldTrack); }"

# Every data-level the expert's badge takes from now on.
RECORD_LEVELS = """() => {
  const badge = document.querySelector('[data-region="quality"]');
  window.__levels = [badge.dataset.level];
  new MutationObserver(() => window.__levels.push(badge.dataset.level))
    .observe(badge, { attributes: true, attributeFilter: ["data-level"] });
}"""


@pytest.fixture(autouse=True)
def patient_actions(browser: BrowserContext) -> None:
    """The pages' actions (clicks, waits for a selector) wait 15 s here, as every expect
    does (``patient_expect``): what they wait for is paced by the pages in seconds (the
    console's 3 s poll, the 2 s without a frame that make a picture frozen, a
    reconnection's backoff of 1, 2 then 4 s)."""
    browser.set_default_timeout(15_000)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    yield from serve_with_expert(tmp_path_factory.mktemp("indicators") / "data")


async def _expert_with_link(browser: BrowserContext, server: ServeProcess, title: str,
                            errors: list[str]) -> tuple[Page, str]:
    """The expert signed in, on a new job of theirs, with a customer's link to it."""
    expert = await browser.new_page()
    await expert.set_viewport_size(DESKTOP)
    await expert.add_init_script(RECORD_PEER_CONNECTIONS)
    watch_errors(expert, errors)
    await sign_in_expert(expert, server)
    await expert.fill("#job-form [name=title]", title)
    await expert.click('[data-action="job-create"]')
    await expect(expert.locator("#job-heading")).to_have_text(title)
    await expert.click('[data-action="invite-customer"]')
    invite = expert.locator('[data-region="invite-link"]')
    await expect(invite).to_have_text(re.compile("^" + re.escape(f"{server.url}/join#")))
    return expert, (await invite.text_content()) or ""


async def test_a_customer_who_joins_first_is_waiting_then_reads_plain_words(
        browser: BrowserContext, server: ServeProcess) -> None:
    errors: list[str] = []
    expert, link = await _expert_with_link(browser, server, "Boiler waits", errors)
    base_title = await expert.title()
    sound = expert.locator('[data-action="waiting-sound"]')
    assert not await sound.is_checked()  # off unless asked for
    await sound.check()  # the chime plays when the customer comes, without errors
    customer = await join_page(browser, link)
    watch_errors(customer, errors)
    try:
        job = expert.locator('[data-region="jobs"] li', has_text="Boiler waits")
        # The console asks every 3 s while it is seen.
        await expect(job.locator('[data-region="waiting"]')).to_have_text("Customer is waiting")
        await expect(expert.locator('[data-region="job-waiting"]')).to_be_visible()
        await expect(expert).to_have_title(f"(1) Customer waiting — {base_title}")

        await expert.click('[data-action="join"]')
        await expect(job.locator('[data-region="waiting"]')).to_have_count(0)
        await expect(expert.locator('[data-region="job-waiting"]')).to_be_hidden()
        await expect(expert).to_have_title(base_title)

        # In the call: the customer's badge measures the connection in plain words,
        # the numbers in its tooltip only; the expert's says the round trip.
        badge = customer.locator('[data-region="quality"]')
        await expect(badge).to_have_attribute("data-level", LIVE)
        await expect(badge).to_have_text(re.compile("^(Good|Weak) connection$"))
        assert "ms" not in ((await badge.text_content()) or "")
        await expect(badge).to_have_attribute("title", re.compile(r"^\d+ ms round trip"))
        await expect(expert.locator('[data-region="quality"]')).to_have_text(
            re.compile(r"^(Good|Fair|Poor) connection \(\d+ ms"))
        await end_call_for_all(expert)
        await expect(expert.locator('[data-action="join"]')).to_be_visible()
        assert errors == []
    finally:
        await customer.close()
        await expert.close()


async def _frames_stopped(page: Page, for_s: float) -> None:
    """Until the page's decoded frame count has not grown for ``for_s`` seconds, as the
    test measures it (15 s at most)."""
    async with asyncio.timeout(15):
        last, since = await page.evaluate(FRAMES_DECODED), time.monotonic()
        while time.monotonic() - since < for_s:
            await asyncio.sleep(0.2)
            if (now := await page.evaluate(FRAMES_DECODED)) != last:
                last, since = now, time.monotonic()


async def test_a_frozen_picture_says_so_and_a_camera_turned_off_does_not(
        browser: BrowserContext, server: ServeProcess) -> None:
    errors: list[str] = []
    expert, link = await _expert_with_link(browser, server, "Valve freezes", errors)
    await expert.click('[data-action="join"]')
    customer = await join_page(browser, link)
    watch_errors(customer, errors)
    try:
        badge = expert.locator('[data-region="quality"]')
        remote = expert.locator('[data-region="remote-video"]')
        await frames_grow(expert)
        await expect(badge).to_have_attribute("data-level", LIVE)
        await expect(remote).to_have_attribute("data-picture", "live")

        # The customer's phone stops sending pictures; the connection stays up.
        await customer.evaluate(STOP_VIDEO)
        await expect(badge).to_have_attribute("data-level", "frozen")
        await expect(badge).to_have_text(re.compile(r"^Video frozen \(\d+ s\)$"))
        await expect(remote).to_have_attribute("data-picture", "frozen")
        await expect(expert.locator('[data-region="picture-note"]')).to_have_text(
            "Video frozen: no new picture from Customer.")
        assert await expert.evaluate("() => window.__pcs.at(-1).connectionState") == "connected"

        # Pictures again: back to the connection's words.
        await customer.evaluate(RESUME_VIDEO)
        await expect(badge).to_have_attribute("data-level", LIVE)
        await expect(remote).to_have_attribute("data-picture", "live")
        await expect(expert.locator('[data-region="picture-note"]')).to_be_hidden()

        # A camera turned off on purpose leaves the last picture still: not frozen.
        await expert.evaluate(RECORD_LEVELS)
        await customer.evaluate("""() => window.__sockets.at(-1).send(JSON.stringify(
            {type: "media.mute", kind: "video", muted: true}))""")
        await expect(badge).to_have_text(re.compile("^Camera off · "))
        await _frames_stopped(expert, 3.0)  # longer than the 2 s a frozen picture takes
        await expect(badge).to_have_text(re.compile("^Camera off · "))
        await expect(remote).to_have_attribute("data-picture", "off")
        levels: list[Any] = await expert.evaluate("() => window.__levels")
        assert "frozen" not in levels, levels
        await end_call_for_all(expert)
        await expect(expert.locator('[data-action="join"]')).to_be_visible()
        assert errors == []
    finally:
        await customer.close()
        await expert.close()


# After RECORD_PEER_CONNECTIONS: ``drop()`` closes a socket while its page sees what a
# dead connection gives, code 1006 (as tests/browser/test_rejoin.py does: Chromium
# cannot cut one page's socket); while ``window.__hold`` is set, the page's new sockets
# fail as they do without a network, with 1006: they ask the server for a path that is
# no WebSocket (another port would be refused by the page's CSP, connect-src 'self',
# without any close event); ``online`` ends the wait.
HOLDABLE = """
window.__hold = false;
const Recorded = window.WebSocket;
window.WebSocket = class extends Recorded {
  constructor(url, ...rest) {
    super(window.__hold ? String(url).replace(/\\/ws$/, "/no-network") : url, ...rest);
    // Registered before the page's own listeners: they get 1006 instead.
    this.addEventListener("close", (event) => {
      if (!this.dropped || event.code === 1006) return;
      event.stopImmediatePropagation();
      this.dispatchEvent(new CloseEvent("close", { code: 1006 }));
    });
  }
  drop() { this.dropped = true; this.close(); }
};
"""
LOSE_NETWORK = "() => { window.__hold = true; window.__sockets.at(-1).drop(); }"
NETWORK_BACK = """() => {
  window.__hold = false;
  window.dispatchEvent(new Event("online"));
}"""
AWAY = re.compile(r"^Customer disconnected, reconnecting 0:(\d\d)$")


async def _away_s(note: Locator) -> int:
    """The seconds the away clock in ``note`` shows."""
    found = AWAY.match((await note.text_content()) or "")
    assert found, await note.text_content()
    return int(found[1])


async def test_the_expert_sees_how_long_a_customer_has_been_away(
        browser: BrowserContext, server: ServeProcess) -> None:
    errors: list[str] = []
    expert, link = await _expert_with_link(browser, server, "Pump drops out", errors)
    customer = await browser.new_page()
    try:
        await expert.click('[data-action="join"]')
        await customer.add_init_script(RECORD_PEER_CONNECTIONS + HOLDABLE)
        await customer.goto(link)
        await customer.locator('[data-action="join"]').click()
        await frames_grow(expert)
        person = expert.locator('[data-region="participants"] li', has_text="Customer")
        participant = await person.get_attribute("data-participant")

        # The phone loses its network: the server keeps its place (participant.away).
        await customer.evaluate(LOSE_NETWORK)
        note = expert.locator('[data-region="picture-note"]')
        await expect(note).to_have_text(AWAY)
        await expect(person.locator('[data-region="away"]')).to_have_text(
            re.compile(r"^disconnected, reconnecting 0:\d\d$"))
        # The clock runs, a second at a time.
        first = await _away_s(note)
        async with asyncio.timeout(10):
            while await _away_s(note) < first + 2:
                await asyncio.sleep(0.2)

        # Back: the same participant (participant.back), the words gone.
        await customer.evaluate(NETWORK_BACK)
        await expect(person.locator('[data-region="away"]')).to_have_count(0)
        await expect(note).not_to_have_text(re.compile("disconnected"))
        assert await person.get_attribute("data-participant") == participant

        # Leaving on purpose: said where the picture was.
        await customer.locator('[data-action="leave"]').click()
        await expect(note).to_have_text("Customer left the call.")
        await end_call_for_all(expert)
        assert errors == []
    finally:
        await customer.close()
        await expert.close()
