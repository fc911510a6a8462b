"""A customer's phone drops off and comes back, three times, while an expert watches in
the console: the expert's Chromium shows each new connection's camera, under the
right participant, through the same m-sections (videoassist/media/slot.py).

The customer's page loses its socket as a phone does when it changes network, and the
real client (call.js) reconnects by itself with the same link: each time a new
participant, with a new peer connection. Chromium cannot cut one page's open socket
(offline emulation leaves WebSockets open), so the customer's page gets a socket that
``drop()`` closes while its page sees what a dead connection gives, code 1006: the
server sees the socket close, the client takes the path of a lost connection. Both
pages get the init script ``RECORD_PEER_CONNECTIONS`` (tests/support/browser.py), which
records their peer connections, sockets and messages.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import BrowserContext, Page, expect

from tests.support.browser import (
    DESKTOP,
    DROPPABLE_SOCKETS,
    RECEIVED,
    RECORD_PEER_CONNECTIONS,
    sign_in_expert,
    watch_errors,
)
from tests.support.process import ServeProcess, ok
from tests.support.server import PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="package")]

REJOINS = 3
# The expert's own audio and video, and one audio and one video of the customer.
BOUND = 4

# The big picture's track, its decoded frames and m-section, and the connection's size.
REMOTE = """async () => {
  const video = document.querySelector('[data-region="remote-video"]');
  const track = video.srcObject ? video.srcObject.getVideoTracks()[0] : null;
  const pc = window.__pcs[window.__pcs.length - 1];
  let frames = 0;
  if (track) (await pc.getStats(track)).forEach((r) => {
    if (r.type === "inbound-rtp") frames = r.framesDecoded || 0;
  });
  const transceiver = track && pc.getTransceivers().find((t) => t.receiver.track === track);
  return {
    frames,
    mid: transceiver ? transceiver.mid : null,
    sections: ((pc.remoteDescription && pc.remoteDescription.sdp) || "")
      .split("\\r\\n").filter((line) => line.startsWith("m=")).length,
    transceivers: pc.getTransceivers().length,
    pcs: window.__pcs.length,
  };
}"""


async def _remote(page: Page) -> dict[str, Any]:
    result: dict[str, Any] = await page.evaluate(REMOTE)
    return result


async def _customer_id(customer: Page, joins: int) -> int:
    """The participant id of the customer's ``joins``-th connection."""
    async with asyncio.timeout(15):
        while len(joined := await customer.evaluate(RECEIVED, "joined")) < joins:
            await asyncio.sleep(0.1)
    return int(joined[joins - 1]["you"]["id"])


async def test_the_expert_sees_a_customer_who_rejoins_three_times(
        browser: BrowserContext, serve: ServeProcess, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    serve.wait_ready()
    ok(data_dir, "user", "add", "dana", "--role", "expert", "--password-stdin",
       stdin=PASSWORD + "\n")
    errors: list[str] = []
    expert = await browser.new_page()
    await expert.set_viewport_size(DESKTOP)
    await expert.add_init_script(RECORD_PEER_CONNECTIONS)
    watch_errors(expert, errors)
    await sign_in_expert(expert, serve)
    await expert.fill("#job-form [name=title]", "Heat pump trips")
    await expert.click('[data-action="job-create"]')
    await expert.click('[data-action="invite-customer"]')
    invite = expert.locator('[data-region="invite-link"]')
    await expect(invite).to_have_text(re.compile("^" + re.escape(f"{serve.url}/join#")))
    link = (await invite.text_content()) or ""
    await expert.click('[data-action="join"]')
    await expect(expert.locator('[data-region="remote-video"]')).to_be_visible()

    customer = await browser.new_page()
    await customer.add_init_script(RECORD_PEER_CONNECTIONS + DROPPABLE_SOCKETS)
    await customer.goto(link)
    await customer.locator('[data-action="join"]').click()

    people = expert.locator('[data-region="participants"]')
    mids = []
    for joins in range(1, REJOINS + 2):
        customer_id = await _customer_id(customer, joins)
        # The client put the video under this participant (a button that shows it: it
        # sends video; beside Remove), and nobody else: the ones before it have left.
        view = "button:not([data-action])"
        button = people.locator(f'[data-participant="{customer_id}"] {view}')
        await expect(button).to_be_visible(timeout=15_000)
        await expect(people.locator(view)).to_have_count(1)
        # The big picture is that participant's camera, decoding now.
        start = await _remote(expert)
        async with asyncio.timeout(10):
            while (now := await _remote(expert))["frames"] < start["frames"] + 20:
                await asyncio.sleep(0.2)
        assert now["mid"] == start["mid"] is not None, (start, now)
        assert now["sections"] <= BOUND and now["transceivers"] <= BOUND, now
        assert now["pcs"] == 1, now  # one connection all along, grown by nothing
        mids.append(now["mid"])
        if joins <= REJOINS:
            # The phone's network changes: its connection is lost.
            await customer.evaluate("() => window.__sockets.at(-1).drop()")
    assert len(set(mids)) == 1, mids  # the same m-section, every time
    # The expert saw each new connection's stream by its own participant's name.
    assert errors == []
