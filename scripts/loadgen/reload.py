"""The resilience benchmark's reload scenario: the customer is the real join page in
Debian's Chromium (phone-sized, fake camera: the flags of tests/support/browser.py),
the expert a ``Keeper`` (loadgen/keeper.py) publishing an untagged ``Camera``, both
on this machine through ``videoassist serve`` on 127.0.0.1 (a secure context for the
camera without TLS).

Each repetition reloads the page (``page.reload()``) while the expert writes a chat
line and draws an arrow on the customer's video, and times, from the moment the
reload began: the page's status saying "Connected" again, the page's picture of the
expert (its remote video having a size again, in the new document), and the expert's
first frame of the page's new camera publication (a new ``a=msid`` track id: the old
page's frames are of the old one). Back in the call is the later of the last two.
Then the chat line must show once on the page, and the page's overlay the shapes
drawn on its video so far.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from pathlib import Path
from typing import Any

import aiohttp
from aioice.ice import get_host_addresses
from playwright.async_api import Page, async_playwright, expect

from loadgen.frames import live_audio
from loadgen.keeper import Keeper
from loadgen.media import Camera, camera_clip
from loadgen.probes import percentile
from loadgen.server import ServerProcess, post_json
from tests.support.browser import CHROMIUM, FLAGS, PHONE

logger = logging.getLogger("bench")

SETUP_MS = 30_000
BACK_WITHIN_S = 60.0
SETTLE_S = 15.0

# Resolves once the video has a picture (the pages' CSP forbids wait_for_function).
HAS_PICTURE = """(region) => new Promise((resolve) => {
  const video = document.querySelector(`[data-region="${region}"]`);
  const check = () => { if (video.videoWidth > 0) resolve(video.videoWidth); };
  video.addEventListener("resize", check);
  video.addEventListener("loadedmetadata", check);
  check();
})"""

# When, in each new document, the status first said "Connected" and the remote
# video (the expert's picture) first had a size: ms since the epoch, read from the
# system's clock as the bench's time.time() is (loadgen/annotations.py checks that
# such clocks agree within a millisecond), so that no polling delay is counted.
MARKS = """(() => {
  const now = () => performance.timeOrigin + performance.now();
  const marks = { connected: null, picture: null };
  Object.defineProperty(window, "__bench", { value: marks });
  const watch = () => {
    const status = document.querySelector('[data-region="status"]');
    const video = document.querySelector('[data-region="remote-video"]');
    const seen = () => {
      if (marks.connected === null && status.textContent === "Connected") {
        marks.connected = now();
      }
    };
    new MutationObserver(seen).observe(status,
      { childList: true, characterData: true, subtree: true });
    const sized = () => {
      if (marks.picture === null && video.videoWidth > 0) marks.picture = now();
    };
    video.addEventListener("resize", sized);
    video.addEventListener("loadedmetadata", sized);
    seen();
    sized();
  };
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", watch);
  else watch();
})();"""

# The page's chat lines with this text, and the shapes its overlay shows.
SEEN = """(text) => {
  const lines = [...document.querySelectorAll('[data-region="chat"] p')]
    .filter((p) => p.textContent.includes(text)).length;
  const canvas = document.querySelector('[data-region="annotations"]');
  return [lines, Number(canvas ? canvas.getAttribute("data-shapes") : -1)];
}"""


def server_env() -> dict[str, str]:
    """Chromium offers this machine's own addresses as host candidates (never
    127.0.0.1 while there is another interface), which the default ICE policy denies
    when they are private or documentation ranges: here they are the clients' LAN."""
    own = get_host_addresses(use_ipv4=True, use_ipv6=True)
    return {"VIDEOASSIST_ICE_ALLOWED_PEERS": ",".join(["127.0.0.0/8", "::1", *own]),
            "VIDEOASSIST_DRAIN_TIMEOUT_S": "0"}


async def run(repetitions: int, workdir: Path, http: aiohttp.ClientSession) -> dict[str, Any]:
    server = ServerProcess("forward", workdir, env=server_env())
    try:
        server.start()
        await server.wait_ready(http)
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(executable_path=CHROMIUM,
                                                       headless=True, args=FLAGS)
            try:
                context = await browser.new_context(viewport=PHONE, is_mobile=True,
                                                    has_touch=True)
                context.set_default_timeout(SETUP_MS)
                await context.add_init_script(MARKS)
                page = await context.new_page()
                return await measure(server, http, page, repetitions)
            finally:
                await browser.close()
    finally:
        server.stop()


async def measure(server: ServerProcess, http: aiohttp.ClientSession, page: Page,
                  repetitions: int) -> dict[str, Any]:
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    expert, link = await expert_and_link(server, http, "bench reload")
    await expert.start()
    samples: list[dict[str, Any]] = []
    drawn_on: collections.Counter[int] = collections.Counter()  # shapes, by participant
    try:
        await page.goto(link)
        join = page.locator('[data-action="join"]')
        await expect(join).to_be_enabled()
        await join.tap()
        status = page.locator('[data-region="status"]')
        await expect(status).to_have_text("Connected")
        async with asyncio.timeout(SETUP_MS / 1000):
            await page.evaluate(HAS_PICTURE, "remote-video")
            while True:
                if expert.arrivals.untagged:
                    break
                await asyncio.sleep(0.05)
        for rep in range(repetitions):
            labels = {label for _, label in list(expert.arrivals.untagged)}
            text = f"reload {rep + 1} from the expert"
            start, start_epoch = time.monotonic(), time.time()
            reloading = asyncio.create_task(page.reload())
            await expert.send_chat(text)
            target = customer_id(expert)
            drawn = target is not None and await expert.annotate(target, f"reload-{rep + 1}")
            if drawn and target is not None:
                drawn_on[target] += 1
            await reloading
            sample: dict[str, Any] = {}
            try:
                await expect(status).to_have_text("Connected", timeout=BACK_WITHIN_S * 1000)
                async with asyncio.timeout(BACK_WITHIN_S):
                    await page.evaluate(HAS_PICTURE, "remote-video")
                    marks = await page.evaluate("window.__bench")
                    for key, mark in (("connected_s", "connected"),
                                      ("customer_back_s", "picture")):
                        sample[key] = round(marks[mark] / 1000 - start_epoch, 3)
                    while True:
                        new = [t for t, label in list(expert.arrivals.untagged)
                               if t > start and label not in labels]
                        if new:
                            break
                        await asyncio.sleep(0.05)
                sample["expert_back_s"] = round(min(new) - start, 3)
                sample["back_s"] = max(sample["customer_back_s"], sample["expert_back_s"])
            except (TimeoutError, AssertionError):
                sample["back_s"] = None
            deadline = time.monotonic() + SETTLE_S
            while True:
                # The shapes on the customer's video as the call has them now: none
                # if the page came back as a new participant.
                now_id = customer_id(expert)
                shapes = drawn_on[now_id] if now_id is not None else 0
                lines, on_picture = await page.evaluate(SEEN, text)
                if (lines == 1 and on_picture == shapes) or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.1)
            sample.update(chat_sent=1, chat_lost=int(lines == 0),
                          chat_duplicated=max(0, lines - 1), annotations_sent=int(drawn),
                          annotations_lost=int(drawn and (now_id != target
                                                          or on_picture < shapes)),
                          annotations_not_sent=int(not drawn))
            samples.append(sample)
            logger.info("reload %d/%d: %s", rep + 1, repetitions,
                        " ".join(f"{k}={v}" for k, v in sample.items()))
    finally:
        await expert.close()
    result: dict[str, Any] = {"repetitions": len(samples), "page_errors": errors[:5]}
    for key in ("back_s", "connected_s", "customer_back_s", "expert_back_s"):
        values = [s[key] for s in samples if s.get(key) is not None]
        result[key] = {"p50": percentile(values, 50), "p95": percentile(values, 95),
                       "max": round(max(values), 2) if values else None,
                       "not_back": sum(s.get(key) is None for s in samples)}
    for key in ("chat_sent", "chat_lost", "chat_duplicated", "annotations_sent",
                "annotations_lost", "annotations_not_sent"):
        result[key] = sum(s[key] for s in samples)
    result["target_p95_s"] = 4.0
    result["samples"] = samples
    return result


async def expert_and_link(server: ServerProcess, http: aiohttp.ClientSession,
                          title: str) -> tuple[Keeper, str]:
    """A new job ``title``: its expert (a ``Keeper``, not started, publishing an
    untagged camera and a microphone) and a customer's join link to it."""
    session = await post_json(http, server.url, "/api/session",
                              {"username": server.username, "password": server.password})
    token = session["token"]
    job = await post_json(http, server.url, "/api/jobs", {"title": title}, token)
    invite = await post_json(http, server.url, f"/api/jobs/{job['id']}/invites",
                             {"role": "customer"}, token)
    expert = Keeper(server.url, token, int(job["id"]),
                    [Camera(camera_clip(640, 360, 60)), live_audio()], "expert")
    return expert, str(invite["url"])


def customer_id(expert: Keeper) -> int | None:
    """The customer's participant id, as the expert knows it (the newest)."""
    ids = [pid for pid, p in expert.others.items() if p.get("role") == "customer"]
    return max(ids) if ids else None
