"""Degrade, do not drop (docs/ui.md, "Degrading"): an expert in the console and a
customer on a phone-sized page, in one Chromium with a fake camera, on ``videoassist
serve``.

The customer's page reports a thin, lossy link: its ``getStats()`` answers with the
figures the test sets (``CONTROLLED_LINK``: the send estimate, and packets lost in the
share asked of those really sent), everything else as measured. What adapt.js decides
from them is real, and so is everything after: the page stops sending video, sends
stills of its real camera over its real socket, the server relays them, the expert's
page shows them with the mode and why; a snapshot then is of the newest still. When
the link recovers the phone goes back to video on its own, one step at a time. The
thin link itself is a real one in ``test_a_real_thin_link_...`` below.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import re
import socket
import struct
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import pytest_asyncio
from playwright.async_api import BrowserContext, Page, async_playwright, expect

from tests.support.browser import (
    CHROMIUM,
    DESKTOP,
    FLAGS,
    PHONE,
    RECORD_PEER_CONNECTIONS,
    frames_grow,
    join_page,
    open_chat,
    scan_profile,
    sign_in_expert,
    watch_errors,
)
from tests.support.netns import SUBNETS, Netns, unavailable
from tests.support.peers import MediaClient, Received
from tests.support.process import ServeProcess, ok
from tests.support.server import PASSWORD, ServerFactory, local_peers

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="package")]

# The page's getStats() reports the link the test sets in window.__link ({kbps, loss}),
# or the real one while it is null. Loss: of the packets each stream really sent since
# the figure was set, that share is reported lost (remote-inbound-rtp.packetsLost).
CONTROLLED_LINK = """
window.__link = null;
const lostSoFar = new Map();  // remote-inbound-rtp id: [packets sent, lost reported]
const measured = RTCPeerConnection.prototype.getStats;
RTCPeerConnection.prototype.getStats = async function (...args) {
  const report = await measured.apply(this, args);
  const link = window.__link;
  if (!link || args.length) return report;
  const out = new Map();
  report.forEach((r, id) => {
    let copy = r;
    if (r.type === "candidate-pair") copy = { ...r, availableOutgoingBitrate: link.kbps * 1000 };
    if (r.type === "remote-inbound-rtp") {
      const sent = (report.get(r.localId) || {}).packetsSent || 0;
      const [before, lost] = lostSoFar.get(id) || [sent, r.packetsLost || 0];
      const now = lost + link.loss * Math.max(0, sent - before);
      lostSoFar.set(id, [sent, now]);
      copy = { ...r, packetsLost: Math.round(now) };
    }
    out.set(id, copy);
  });
  return out;
};
"""

# When the expert's still changes (data-seq), and its picture's size then.
RECORD_STILLS = """() => {
  const img = document.querySelector('[data-region="still"]');
  window.__stills = [];
  new MutationObserver(() => {
    if (!img.dataset.seq) return;
    const seen = () => window.__stills.push({ seq: img.dataset.seq, at: performance.now(),
      width: img.naturalWidth, height: img.naturalHeight });
    if (img.complete && img.naturalWidth) seen();
    else img.addEventListener("load", seen, { once: true });
  }).observe(img, { attributes: true, attributeFilter: ["data-seq"] });
}"""

AUDIO_RECEIVED = """async () => {
  let packets = 0;
  (await window.__pcs.at(-1).getStats()).forEach((r) => {
    if (r.type === "inbound-rtp" && r.kind === "audio") packets += r.packetsReceived || 0;
  });
  return packets;
}"""

VIDEO_SENT = """async () => {
  let bytes = 0;
  (await window.__pcs.at(-1).getStats()).forEach((r) => {
    if (r.type === "outbound-rtp" && r.kind === "video") bytes += r.bytesSent || 0;
  });
  return bytes;
}"""


async def _in_a_call(browser: BrowserContext, serve: ServeProcess, data_dir: Path,
                     errors: list[str]) -> tuple[Page, Page]:
    """The expert in the console, in a job's call with a customer on a phone whose link
    the test controls; the expert sees the customer's video."""
    serve.wait_ready()
    ok(data_dir, "user", "add", "dana", "--role", "expert", "--password-stdin",
       stdin=PASSWORD + "\n")
    expert = await browser.new_page()
    await expert.set_viewport_size(DESKTOP)
    await expert.add_init_script(RECORD_PEER_CONNECTIONS)
    watch_errors(expert, errors)
    await sign_in_expert(expert, serve)
    await expert.fill("#job-form [name=title]", "Boiler in the basement")
    await expert.click('[data-action="job-create"]')
    await expert.click('[data-action="invite-customer"]')
    invite = expert.locator('[data-region="invite-link"]')
    await expect(invite).to_have_text(re.compile("^" + re.escape(f"{serve.url}/join#")))
    link = (await invite.text_content()) or ""
    await expert.click('[data-action="join"]')
    customer = await join_page(browser, link, CONTROLLED_LINK)
    watch_errors(customer, errors)
    await frames_grow(expert)
    return expert, customer


async def test_a_lossy_link_goes_to_stills_the_expert_sees_why_and_it_comes_back(
        browser: BrowserContext, serve: ServeProcess, tmp_path: Path) -> None:
    errors: list[str] = []
    expert, customer = await _in_a_call(browser, serve, tmp_path / "data", errors)
    mode = expert.locator('[data-region="media-mode"]')
    still = expert.locator('[data-region="still"]')
    quality = expert.locator('[data-region="quality"]')
    try:
        await expect(mode).to_be_hidden()
        await expert.evaluate(RECORD_STILLS)

        # 300 kbit/s with 12% lost: past the floor, held 3 s, the phone goes to stills.
        await customer.evaluate("() => { window.__link = { kbps: 300, loss: 0.12 }; }")
        await expect(mode).to_have_text(re.compile(
            r"^Still pictures: packets lost on the way \(300 kbit/s, \d+% lost\)$"),
            timeout=15_000)
        await expect(mode).to_have_attribute("data-mode", "stills")
        await expect(customer.locator('[data-region="media-mode"]')).to_have_text(
            "Weak connection: sending still pictures")
        await expect(still).to_be_visible()
        await expect(quality).to_have_text(re.compile(r"^Still pictures · "))
        await expect(expert.locator('[data-region="remote-video"]')).to_have_attribute(
            "data-picture", "stills")

        # Stills of the real camera, at least 640x480, at least every 2 s; no video
        # sent meanwhile, and the sound goes on.
        audio_before = await expert.evaluate(AUDIO_RECEIVED)
        video_before = await customer.evaluate(VIDEO_SENT)
        await expert.wait_for_function("() => window.__stills.length > 3", timeout=15_000)
        stills: list[dict[str, Any]] = await expert.evaluate("() => window.__stills")
        gaps = [b["at"] - a["at"] for a, b in itertools.pairwise(stills)]
        assert max(gaps) <= 2000, stills
        assert all(s["width"] >= 640 and s["height"] >= 480 for s in stills), stills
        assert await expert.evaluate(AUDIO_RECEIVED) > audio_before
        assert await customer.evaluate(VIDEO_SENT) == video_before

        # A snapshot now is of the newest still (its size, not the video's).
        await expert.click('[data-action="snapshot"]')
        await expect(expert.locator('[data-region="status"]')).to_have_text(
            "Snapshot saved to the job record.")
        [saved] = await expert.evaluate(
            "() => window.__received.filter((m) => m.type === 'snapshot.saved')")
        newest = (await expert.evaluate("() => window.__stills")).pop()
        assert (saved["snapshot"]["width"], saved["snapshot"]["height"]) == (
            newest["width"], newest["height"]), (saved, newest)

        # The link recovers: reduced video first, then full video, on their own, in
        # seconds (5 s of good link for each step up).
        recovered = time.monotonic()
        await customer.evaluate("() => { window.__link = { kbps: 2500, loss: 0 }; }")
        await expect(mode).to_have_text(re.compile(r"^Reduced video: "), timeout=15_000)
        await expect(still).to_be_hidden()
        await expect(mode).to_be_hidden(timeout=15_000)
        assert time.monotonic() - recovered < 20
        await frames_grow(expert)
        await expect(expert.locator('[data-region="remote-video"]')).to_have_attribute(
            "data-picture", "live")
        assert errors == []
    finally:
        await customer.close()
        await expert.close()


THIN_KBIT = 300  # the thin link: 300 kbit/s each way, 10% of packets lost
LOSS_PERCENT = 10
AUDIO_RATE = 48_000  # Opus's RTP clock
STILLS_WANTED = 5  # stills timed after the phone went to stills mode
# Bounds: the phone decides in 3 s of its 1 s ticks once the loss shows in the server's
# receiver reports (about a second each) over a 3 s window: 8 s from the impairment,
# allowed 25 s on 2 loaded cores, with Chromium and the server sharing them.
STILLS_MODE_WITHIN_S = 25.0
# Back up takes 5 s of good link to reduced video, then 5 s more to full video (plus
# the loss window's 3 s, and the server's receiver reports' second): allowed 25 s on 2
# loaded cores. The last version of this feature took 41 to 65 s; this one, before it
# tried full video on loss alone, 34.5 s (the estimate, following the capped reduced
# stream, grew slowly past the limit).
BACK_TO_VIDEO_WITHIN_S = 25.0


@dataclass
class PhoneBehindALink:
    """A customer's Chromium in a network namespace of its own, in a call with an
    aiortc expert (no camera) here; the expert already gets the phone's audio."""

    net: Netns
    page: Page
    expert: MediaClient
    customer: int  # the phone's participant id
    errors: list[str]  # the page's errors so far
    url: str  # the server's origin
    profile: Path  # the phone's Chromium profile, to scan once ``close_browser`` returns
    close_browser: Callable[[], Awaitable[None]]  # closes the phone's Chromium (once)
    # What the phone's page said of its link (adapt.js, stills.js: the console's verbose
    # "videoassist ..." lines), with when (monotonic): shown when a mode did not come.
    trace: list[tuple[float, str]]


# Its own loop, as the in-process server's fixture (``server_factory``) has: the
# package's loop is for the shared Chromium, which these tests do not use.
@pytest_asyncio.fixture(loop_scope="function")
async def phone_behind_a_link(server_factory: ServerFactory, tmp_path: Path
                              ) -> AsyncIterator[PhoneBehindALink]:
    """The customer's Chromium in a network namespace of its own (its executable run by
    ``ip netns exec``), behind a veth pair the test shapes; the server in this process
    on the pair's address here; the expert an aiortc client here."""
    reason = unavailable(loss=True)
    if reason is not None:
        if os.environ.get("CI"):
            pytest.fail(f"impaired-network tests: {reason}")
        pytest.skip(reason)
    with Netns() as net:
        address = net.server_address
        sock = socket.socket()
        sock.bind((address, 0))
        port = sock.getsockname()[1]
        server = await server_factory(sock=sock, host=address, media_addresses=(address,),
                                      ice_allowed_peers=(*local_peers(), SUBNETS))
        server.url = f"http://{address}:{port}"
        _, staff_token = await server.staff("expert")
        job_id = await server.job(staff_token)
        link = await server.invite(staff_token, job_id)
        expert = await MediaClient(server, staff_token, job_id, video=False).start()
        wrapper = tmp_path / "chromium-in-namespace"
        wrapper.write_text(f'#!/bin/sh\nexec ip netns exec {net.name} {CHROMIUM} "$@"\n')
        wrapper.chmod(0o755)
        errors: list[str] = []
        trace: list[tuple[float, str]] = []
        async with async_playwright() as playwright:
            context = await playwright.chromium.launch_persistent_context(
                tmp_path / "profile", executable_path=str(wrapper), headless=True,
                args=[*FLAGS, f"--unsafely-treat-insecure-origin-as-secure={server.url}"],
                viewport=PHONE)
            closed = asyncio.Event()

            async def close_browser() -> None:
                if not closed.is_set():
                    closed.set()
                    await context.close()

            try:
                page = await context.new_page()
                watch_errors(page, errors)
                page.on("console", lambda message: trace.append(
                    (time.monotonic(), message.text))
                    if message.text.startswith("videoassist ") else None)
                await page.goto(f"{server.url}/join#{link}")
                await page.locator('[data-action="join"]').click()
                await page.locator('[data-region="local-video"]').wait_for(state="visible")
                joined = await expert.next_message("participant.joined", timeout=15)
                customer = joined["participant"]["id"]
                await expert.wait_remote(customer, "audio")
                yield PhoneBehindALink(net, page, expert, customer, errors, server.url,
                                       tmp_path / "profile", close_browser, trace)
            finally:
                await close_browser()
                await expert.close()


def audio_per_second(sound: Received, start: float, end: float) -> list[int]:
    """The audio frames that arrived between ``start`` and ``end`` (monotonic), counted
    by the whole second of the sender's RTP clock they were sent in (which seconds of
    what the phone sent arrived, not when the expert's loop read them)."""
    audio = [pts for t, pts in zip(list(sound.times), list(sound.pts), strict=False)
             if start <= t <= end]
    seconds = int(end - start)
    per_second = [0] * seconds
    for pts in audio:
        second = (pts - audio[0]) % 2**32 // AUDIO_RATE
        if second < seconds:
            per_second[second] += 1
    return per_second


@pytest.mark.asyncio(loop_scope="function")
async def test_a_real_thin_lossy_link_gets_stills_every_2_s_and_the_audio_goes_on(
        phone_behind_a_link: PhoneBehindALink) -> None:
    """The phone's link shaped to 300 kbit/s each way with 10% of the packets lost on
    the link. The phone goes to stills by itself; the expert gets a still of at least
    640x480 at least every 2 s, and the phone's audio every second meanwhile."""
    net, expert, customer = (phone_behind_a_link.net, phone_behind_a_link.expert,
                             phone_behind_a_link.customer)
    net.rate(THIN_KBIT)
    net.loss(LOSS_PERCENT, on_link=True)
    impaired = time.monotonic()
    async with asyncio.timeout(STILLS_MODE_WITHIN_S):
        while (mode := await expert.next_message("media.mode", timeout=30)
               )["mode"] != "stills":
            pass
    in_stills = time.monotonic()
    async with asyncio.timeout(STILLS_WANTED * 4):
        while len([t for t, _ in expert.stills if t >= in_stills]) < STILLS_WANTED:
            await asyncio.sleep(0.1)
    done = time.monotonic()
    timed = [(t, frame) for t, frame in expert.stills if t >= in_stills]
    gaps = [b[0] - a[0] for a, b in itertools.pairwise(timed)]
    sizes = []
    for _, frame in timed:
        (length,) = struct.unpack_from(">H", frame)
        header = json.loads(frame[2:2 + length])
        image = cv2.imdecode(np.frombuffer(frame[2 + length:], np.uint8), cv2.IMREAD_COLOR)
        assert image is not None and image.shape[:2] == (
            header["height"], header["width"]), header
        sizes.append((header["width"], header["height"]))
    sound = expert.remote(customer, "audio")
    assert sound is not None
    per_second = audio_per_second(sound, in_stills, done)
    print(f"{THIN_KBIT} kbit/s, {LOSS_PERCENT}% lost ({net.dropped()} packets "
          f"dropped): stills mode {in_stills - impaired:.1f} s after "
          f"({mode['reason']}, {mode['kbps']} kbit/s, loss {mode['loss']}); "
          f"stills every {[round(g, 2) for g in gaps]} s, sizes {sizes}, "
          f"{sum(len(f) for _, f in timed) // len(timed)} bytes on average; "
          f"audio frames per second {per_second}")
    assert all(w >= 640 and h >= 480 for w, h in sizes), sizes
    assert max(gaps) <= 2.0, gaps
    assert all(per_second), per_second

    # The link recovers: full video again, by way of reduced video.
    net.no_loss()
    net.unlimited()
    recovered = time.monotonic()
    steps = []
    async with asyncio.timeout(BACK_TO_VIDEO_WITHIN_S):
        while (mode := await expert.next_message("media.mode", timeout=60)
               )["mode"] != "video":
            if mode["mode"] != "stills":  # not a step: stills, for a new reason
                steps.append((mode["mode"], round(time.monotonic() - recovered, 1)))
    back = time.monotonic() - recovered
    print(f"back to video {back:.1f} s after the link recovered, by {steps} "
          f"({mode['kbps']} kbit/s)")
    assert steps and {m for m, _ in steps} == {"reduced"}, steps
    assert phone_behind_a_link.errors == []

    # Nothing of the stills stayed on the phone: the JPEGs it made (canvas blobs)
    # are in none of its profile's files, blob storage included.
    await phone_behind_a_link.close_browser()
    pictures = [frame[2 + struct.unpack_from(">H", frame)[0]:] for _, frame in timed]
    await asyncio.to_thread(scan_profile, phone_behind_a_link.profile, phone_behind_a_link.url,
                            [], [telling_part(p) for p in pictures])


def telling_part(jpeg: bytes, size: int = 64) -> bytes:
    """``size`` bytes of a JPEG's picture data that could be found nowhere else: the
    first window of its scan with at least half its bytes different (the fake camera's
    flat picture has long runs of the same byte)."""
    start = jpeg.index(b"\xff\xda")
    for at in range(start, len(jpeg) - size, 16):
        window = jpeg[at:at + size]
        if len(set(window)) >= size // 2:
            return window
    raise AssertionError("no varied stretch in the still's JPEG")


DROP_KBIT = 100  # the dropping link: 100 kbit/s each way for 20 s
DROP_S = 20.0
# The phone degrades within its 3 s of ticks once the link's loss or its estimate show
# it (the loss over a 3 s window of the server's receiver reports, about a second
# each): about 8 s, as on the thin link, allowed as much as there (``STILLS_MODE_...``).
DEGRADED_WITHIN_S = STILLS_MODE_WITHIN_S
# Back up from stills is two steps of UP_TICKS (5 s) of good link each (adapt.js:
# reduced video, then full video on loss alone), once the thin period's loss has left
# the 3 s window and a receiver report (about a second) told it: about 14 s, as long as
# no try up fell back during the thin period (which would double the wait: asserted
# below). Allowed as much as on the thin lossy link, for a loaded machine
# (``BACK_TO_VIDEO_WITHIN_S``, 25 s).
RANK = {"video": 0, "reduced": 1, "stills": 2}
# A chat line typed on the phone crosses the thin link on the socket, behind the stills
# there (each sized to leave the link 0.6 s of its own, at least 24 KB: 2 s at
# 100 kbit/s): a few seconds, allowed 10 on a loaded machine.
CHAT_WITHIN_S = 10.0


async def _mode_log(expert: MediaClient, log: list[tuple[float, dict[str, Any]]]) -> None:
    """Every media.mode the expert gets, with when (the other messages are dropped)."""
    while True:
        message = await expert.next_message("media.mode", timeout=3600)
        log.append((time.monotonic(), message))


TRACE_SHOWN_S = 12.0  # of the phone's trace, what a failure to change mode shows


async def _first(log: list[tuple[float, dict[str, Any]]], since: float, modes: set[str],
                 timeout: float, trace: list[tuple[float, str]]
                 ) -> tuple[float, dict[str, Any]]:
    """The first media.mode of ``log`` after ``since`` saying one of ``modes``; failing
    that, the phone's last ``TRACE_SHOWN_S`` of ``trace`` say why."""
    until = time.monotonic() + timeout
    while time.monotonic() < until:
        found = [(t, m) for t, m in list(log) if t >= since and m["mode"] in modes]
        if found:
            return found[0]
        await asyncio.sleep(0.05)
    shown = "\n".join(f"{t - since:+.1f} {text}" for t, text in list(trace)
                       if t >= time.monotonic() - TRACE_SHOWN_S)
    raise AssertionError(f"no media.mode {modes} within {timeout} s: "
                         f"{[(round(t - since, 1), m) for t, m in log]}; the phone's last "
                         f"{TRACE_SHOWN_S:g} s (s after then):\n{shown}")


@pytest.mark.asyncio(loop_scope="function")
async def test_a_link_that_drops_to_100_kbit_for_20_s_degrades_and_comes_back_by_itself(
        phone_behind_a_link: PhoneBehindALink) -> None:
    """The phone's link drops to 100 kbit/s each way for 20 s (a token bucket, which
    drops past 100 ms of queue), then is whole again, with no loss. The phone degrades
    on its own (reduced video or stills, the expert told why by ``media.mode``); its
    audio reaches the expert every second of the thin period from then on; a chat line
    typed on the phone then arrives; and once the link is back the phone returns to
    full video by itself, within its hysteresis (``BACK_TO_VIDEO_WITHIN_S``)."""
    net, page, expert, customer = (phone_behind_a_link.net, phone_behind_a_link.page,
                                   phone_behind_a_link.expert, phone_behind_a_link.customer)
    log: list[tuple[float, dict[str, Any]]] = []
    watching = asyncio.create_task(_mode_log(expert, log))
    try:
        net.rate(DROP_KBIT)
        dropped = time.monotonic()
        degraded_at, degraded = await _first(log, dropped, {"reduced", "stills"},
                                             DEGRADED_WITHIN_S, phone_behind_a_link.trace)
        assert degraded["participant"] == customer, degraded
        assert degraded["reason"] in ("low_bandwidth", "packet_loss"), degraded

        typed = time.monotonic()
        await open_chat(page)
        await page.locator("[name=message]").fill("Typed on a thin link")
        await page.locator('[data-action="chat-send"]').click()
        async with asyncio.timeout(CHAT_WITHIN_S):
            while "Typed on a thin link" not in expert.chat.values():
                await asyncio.sleep(0.05)
        chat_s = time.monotonic() - typed

        await asyncio.sleep(dropped + DROP_S - time.monotonic())
        net.unlimited()
        recovered = time.monotonic()
        sound = expert.remote(customer, "audio")
        assert sound is not None
        per_second = audio_per_second(sound, degraded_at, recovered)
        undegraded = audio_per_second(sound, dropped, degraded_at)
        back_at, _ = await _first(log, recovered, {"video"}, BACK_TO_VIDEO_WITHIN_S,
                                 phone_behind_a_link.trace)
    finally:
        watching.cancel()
    stills = [t for t, _ in expert.stills if dropped <= t <= recovered]
    modes = [(m["mode"], m["reason"], m["kbps"], m["loss"], round(t - dropped, 1))
             for t, m in log]
    print(f"{DROP_KBIT} kbit/s for {DROP_S:.0f} s: {degraded['mode']} "
          f"{degraded_at - dropped:.1f} s after the drop ({degraded['reason']}, "
          f"{degraded['kbps']} kbit/s, loss {degraded['loss']}); audio frames per "
          f"second before {undegraded}, from then {per_second} (50 sent); "
          f"{len(stills)} stills; the chat line "
          f"{chat_s:.1f} s after it was sent; full video {back_at - recovered:.1f} s "
          f"after the link came back; every mode (mode, reason, kbit/s, loss, s after the "
          f"drop): {modes}")
    assert all(per_second), per_second
    # Degraded for the whole thin period, never a step back up (no try up on such a
    # link, so none fell back to lengthen the way up).
    during = [RANK[m["mode"]] for t, m in log if degraded_at <= t < recovered]
    assert during == sorted(during), modes
    assert phone_behind_a_link.errors == []
