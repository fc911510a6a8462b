"""The annotation benchmark: from the expert's pointerup to the customer's paint.

The real browser client, end to end: two headless Chromiums with fake cameras (the
flags of tests/support/browser.py), an expert in the console at desktop size and a
customer on the join page at phone size, in one call through ``videoassist serve``.
The expert draws arrows on the customer's picture with the mouse, one at a time; each
is timed at four points, all read as ``performance.timeOrigin + performance.now()``
in the pages, by init scripts (nothing of web/ is changed):

- ``pointerup``: the expert page's capture-phase ``pointerup`` listener on the window;
- ``sent``: the expert page's ``WebSocket.send`` of the ``annotation.add``;
- ``received``: the customer page's WebSocket ``message`` event carrying it;
- ``painted``: the customer overlay's ``data-shapes`` attribute taking the new count,
  seen by a MutationObserver; the overlay sets it in the animation frame in which it
  draws the shapes (web/static/js/overlay.js).

The two browsers are separate processes on this machine: their time origins are both
read from the system's clock, so the times compare across pages. The benchmark checks
that assumption (``clock_skew_ms``) against its own clock before and after the shapes.
docs/performance.md explains each reported field.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import os
import random
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from playwright.async_api import Browser, Page, Playwright, async_playwright, expect

from loadgen import BenchError
from loadgen.probes import CpuMark, percentile, tree_cpu_seconds
from loadgen.server import ServerProcess, post_json
from tests.support.browser import CHROMIUM, DESKTOP, FLAGS, PHONE

logger = logging.getLogger("bench")

SETUP_TIMEOUT_MS = 30_000  # each step of signing in, joining, connecting
SHAPE_TIMEOUT_S = 5.0      # a shape not painted by then counts as an error ("timeout")
CLOCK_PROBES = 7

EXPERT_PROBES = """(() => {
  const now = () => performance.timeOrigin + performance.now();  // ms since the epoch
  const bench = { ups: [], sent: [] };
  Object.defineProperty(window, "__bench", { value: bench });
  addEventListener("pointerup", (event) => {
    const target = event.target;
    if (target instanceof Element && target.closest('[data-region="annotations"]')) {
      bench.ups.push(now());
    }
  }, { capture: true });
  const Native = window.WebSocket;
  window.WebSocket = class extends Native {
    send(data) {
      if (typeof data === "string" && data.includes('"annotation.add"')) {
        const t = now();
        const message = JSON.parse(data);
        if (message.type === "annotation.add") bench.sent.push({ id: message.shape.id, t });
      }
      return super.send(data);
    }
  };
})();"""

CUSTOMER_PROBES = """(() => {
  const now = () => performance.timeOrigin + performance.now();  // ms since the epoch
  const bench = { received: [], painted: [], waiters: [] };
  Object.defineProperty(window, "__bench", { value: bench });
  const Native = window.WebSocket;
  window.WebSocket = class extends Native {
    constructor(...args) {
      super(...args);
      // Added before the page's own listener, so it runs first.
      this.addEventListener("message", (event) => {
        if (typeof event.data !== "string" || !event.data.includes('"annotation.add"')) return;
        const t = now();
        const message = JSON.parse(event.data);
        if (message.type === "annotation.add") bench.received.push({ id: message.shape.id, t });
      });
    }
  };
  const settle = () => {
    bench.waiters = bench.waiters.filter(([n, since, resolve]) => {
      const hit = bench.painted.find((p) => p.n === n && p.t >= since);
      if (hit) resolve(hit);
      return !hit;
    });
  };
  // The overlay sets data-shapes on every paint; a change of count is a shape shown.
  new MutationObserver((records) => {
    const t = now();
    for (const record of records) {
      const n = Number(record.target.getAttribute("data-shapes"));
      if (String(n) !== record.oldValue) bench.painted.push({ n, t });
    }
    settle();
  }).observe(document, { subtree: true, attributes: true, attributeOldValue: true,
                         attributeFilter: ["data-shapes"] });
  // Resolves with the first paint showing n shapes at or after `since`.
  bench.paintedAt = (n, since) => new Promise((resolve) => {
    bench.waiters.push([n, since, resolve]);
    settle();
  });
  // Resolves once the overlay shows n shapes, now or after a paint.
  bench.shows = (n) => new Promise((resolve) => {
    const canvas = document.querySelector('[data-region="annotations"]');
    if (canvas.getAttribute("data-shapes") === String(n)) return resolve(true);
    bench.waiters.push([n, 0, resolve]);
  });
})();"""

# Where a normalized point of the big picture is on the screen, in CSS pixels (the
# annotations canvas, and the content box of the remote video's picture in it), and
# what is on top there: null where the canvas takes the pointer, else the covering
# element's data-region or tag (the expert's own preview and the quality indicator
# lie over the picture's corners).
SCREEN_POINT = """([x, y]) => {
  const canvas = document.querySelector('[data-region="annotations"]');
  const video = document.querySelector('[data-region="remote-video"]');
  const rect = canvas.getBoundingClientRect();
  const s = Math.min(rect.width / video.videoWidth, rect.height / video.videoHeight);
  const bx = (rect.width - video.videoWidth * s) / 2;
  const by = (rect.height - video.videoHeight * s) / 2;
  const at = [rect.left + bx + x * video.videoWidth * s,
              rect.top + by + y * video.videoHeight * s];
  const top = document.elementFromPoint(at[0], at[1]);
  const cover = top === canvas ? null
    : top ? (top.closest("[data-region]")?.dataset.region || top.tagName.toLowerCase())
    : "outside";
  return [at, cover];
}"""

# Resolves once the video has a picture (not wait_for_function: the pages' CSP
# forbids the eval it needs).
HAS_PICTURE = """(region) => new Promise((resolve) => {
  const video = document.querySelector(`[data-region="${region}"]`);
  const check = () => { if (video.videoWidth > 0) resolve(video.videoWidth); };
  video.addEventListener("resize", check);
  video.addEventListener("loadedmetadata", check);
  check();
})"""

PICTURE = """(region) => {
  const video = document.querySelector(`[data-region="${region}"]`);
  return video ? [video.videoWidth, video.videoHeight] : [0, 0];
}"""


@dataclass(frozen=True)
class Options:
    shapes: int        # measured arrows
    warmup: int        # arrows drawn first and not counted
    clear_every: int   # press Clear after this many arrows on the picture
    pause: float       # seconds from a paint to the next arrow: pause to 2 * pause
    phone_scale: float  # the customer page's devicePixelRatio


@dataclass(frozen=True)
class Sample:
    """One arrow, milliseconds after the expert's pointerup."""

    sent: float
    received: float
    painted: float
    shapes: int   # shapes on the customer's picture once it was painted


@dataclass(frozen=True)
class Face:
    browser: Browser
    page: Page


class AnnotationBench:
    def __init__(self, options: Options, server: ServerProcess,
                 http: aiohttp.ClientSession) -> None:
        self.options = options
        self.server = server
        self.http = http
        self.token = ""
        self.errors: list[str] = []       # the pages' script and console errors
        self.on_picture: int | None = 0   # shapes on the customer's picture; None:
                                          # not known after an error
        self.rng = random.Random("annotations")
        self.covered: collections.Counter[str] = collections.Counter()

    async def _api(self, path: str, body: dict[str, Any]) -> Any:
        return await post_json(self.http, self.server.url, path, body, self.token)

    async def job_and_invite(self) -> tuple[int, str]:
        """A job (before the expert signs in, so that the console lists it) and a
        customer's join link, with the bench user's session."""
        session = await self._api("/api/session", {"username": self.server.username,
                                                   "password": self.server.password})
        self.token = session["token"]
        job = await self._api("/api/jobs", {"title": "bench annotations"})
        invite = await self._api(f"/api/jobs/{job['id']}/invites", {"role": "customer"})
        return int(job["id"]), str(invite["url"])

    def _watch(self, page: Page, face: str) -> None:
        page.on("pageerror", lambda error: self.errors.append(f"{face}: {error}"))
        page.on("console", lambda msg: self.errors.append(f"{face}: {msg.text}")
                if msg.type == "error" and not msg.location["url"].endswith("/favicon.ico")
                else None)

    async def open_expert(self, playwright: Playwright, job_id: int) -> Face:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                                   args=FLAGS)
        context = await browser.new_context(viewport=DESKTOP)
        context.set_default_timeout(SETUP_TIMEOUT_MS)
        await context.add_init_script(EXPERT_PROBES)
        page = await context.new_page()
        self._watch(page, "expert")
        await page.goto(self.server.url + "/")
        await page.fill("[name=username]", self.server.username)
        await page.fill("[name=password]", self.server.password)
        await page.click('[data-action="sign-in"]')
        await page.click(f'[data-job="{job_id}"]')
        await page.click('[data-action="join"]')
        return Face(browser, page)

    async def open_customer(self, playwright: Playwright, link: str) -> Face:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                                   args=FLAGS)
        context = await browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True,
                                            device_scale_factor=self.options.phone_scale)
        context.set_default_timeout(SETUP_TIMEOUT_MS)
        await context.add_init_script(CUSTOMER_PROBES)
        page = await context.new_page()
        self._watch(page, "customer")
        await page.goto(link)
        join = page.locator('[data-action="join"]')
        await expect(join).to_be_enabled(timeout=SETUP_TIMEOUT_MS)
        await join.tap()
        return Face(browser, page)

    async def wait_connected(self, expert: Page, customer: Page) -> None:
        for page in (expert, customer):
            await expect(page.locator('[data-region="status"]')).to_have_text(
                "Connected", timeout=SETUP_TIMEOUT_MS)
        async with asyncio.timeout(SETUP_TIMEOUT_MS / 1000):
            for page, region in ((expert, "remote-video"), (customer, "local-video")):
                await page.evaluate(HAS_PICTURE, region)
        await expert.click('[data-action="tool-arrow"]')

    async def clear(self, expert: Page, customer: Page) -> None:
        """Press Clear, and wait until the customer's picture shows no shape."""
        if self.on_picture == 0:
            return
        since = await customer.evaluate("performance.timeOrigin + performance.now()")
        await expert.click('[data-action="clear"]')
        try:
            async with asyncio.timeout(SHAPE_TIMEOUT_S):
                if self.on_picture is None:  # after an error: whatever it showed
                    await customer.evaluate("window.__bench.shows(0)")
                else:
                    await customer.evaluate("([n, t]) => window.__bench.paintedAt(n, t)",
                                            [0, since])
        except TimeoutError:
            raise BenchError(f"Clear did not reach the customer's picture within "
                             f"{SHAPE_TIMEOUT_S:g} s") from None
        self.on_picture = 0

    async def place(self, expert: Page) -> tuple[list[float], list[float]]:
        """Screen points of a random arrow on the picture, both where the canvas takes
        the pointer; places under another element are counted in ``covered``."""
        # At 1280x800 the picture and its tool bar do not fit on the screen together:
        # pressing a tool or Clear scrolls the picture's top out. Show it whole first.
        await expert.evaluate(
            """document.querySelector('[data-region="annotations"]')
                 .scrollIntoView({block: "nearest"})""")
        rng = self.rng
        for _ in range(100):
            tail = [rng.uniform(0.1, 0.9), rng.uniform(0.1, 0.9)]
            head = [min(0.95, max(0.05, t + rng.choice((-1, 1)) * rng.uniform(0.08, 0.3)))
                    for t in tail]
            (start, start_cover), (end, end_cover) = (
                await expert.evaluate(SCREEN_POINT, tail),
                await expert.evaluate(SCREEN_POINT, head))
            if start_cover is None and end_cover is None:
                return start, end
            self.covered[start_cover or end_cover] += 1
        raise BenchError(f"no place on the expert's picture takes the pointer: {self.covered}")

    async def arrow(self, expert: Page, customer: Page) -> Sample | str:
        """Draw one arrow at a random place of the picture; its times, or an error."""
        if self.on_picture is None or self.on_picture >= self.options.clear_every:
            await self.clear(expert, customer)
        assert self.on_picture is not None
        start, end = await self.place(expert)
        await expert.evaluate("window.__bench.ups.length = 0; window.__bench.sent.length = 0")
        since = await customer.evaluate(  # on the customer's clock, as the paints are
            "window.__bench.received.length = 0; performance.timeOrigin + performance.now()")
        expected = self.on_picture + 1
        await expert.mouse.move(*start)
        await expert.mouse.down()
        await expert.mouse.move(*end, steps=4)
        await expert.mouse.up()
        bench = "window.__bench"
        ups: list[float] = await expert.evaluate(f"{bench}.ups")
        if len(ups) != 1:
            self.on_picture = None
            return "no_pointerup"
        up = ups[0]
        try:
            async with asyncio.timeout(SHAPE_TIMEOUT_S):
                painted = await customer.evaluate(f"([n, t]) => {bench}.paintedAt(n, t)",
                                                  [expected, since])
        except TimeoutError:
            self.on_picture = None
            return "timeout"
        self.on_picture = expected
        sent: list[dict[str, Any]] = await expert.evaluate(f"{bench}.sent")
        received: list[dict[str, Any]] = await customer.evaluate(f"{bench}.received")
        if len(sent) != 1:
            return "not_sent"
        got = [r for r in received if r["id"] == sent[0]["id"]]
        if len(got) != 1:
            return "not_received"
        return Sample(sent[0]["t"] - up, got[0]["t"] - up, painted["t"] - up, expected)

    async def series(self, expert: Page, customer: Page, count: int) -> list[Sample | str]:
        results: list[Sample | str] = []
        for _ in range(count):
            result = await self.arrow(expert, customer)
            if isinstance(result, str):
                logger.warning("an arrow failed: %s", result)
            results.append(result)
            await asyncio.sleep(self.options.pause * (1 + self.rng.random()))
        return results


async def clock_offset(page: Page) -> tuple[float, float]:
    """The page's clock minus this process's ``time.time()``, in ms, from the probe
    with the shortest round trip; and half that round trip, the offset's uncertainty."""
    best: tuple[float, float] | None = None
    for _ in range(CLOCK_PROBES):
        before = time.time()
        at = await page.evaluate("performance.timeOrigin + performance.now()")
        after = time.time()
        half = (after - before) * 500
        offset = at - (before + after) * 500
        if best is None or half < best[1]:
            best = (offset, half)
    assert best is not None
    return best


async def clock_skew(expert: Page, customer: Page) -> tuple[float, float]:
    """The expert page's clock minus the customer page's, in ms, and its uncertainty."""
    (expert_offset, expert_half), (customer_offset, customer_half) = (
        await clock_offset(expert), await clock_offset(customer))
    return expert_offset - customer_offset, expert_half + customer_half


def stats(values: list[float]) -> dict[str, float | None]:
    return {"p50": percentile(values, 50), "p95": percentile(values, 95),
            "max": round(max(values), 2) if values else None,
            "min": round(min(values), 2) if values else None}


def report(results: list[Sample | str]) -> dict[str, Any]:
    samples = [r for r in results if isinstance(r, Sample)]
    errors = collections.Counter(r for r in results if isinstance(r, str))
    painted = [s.painted for s in samples]
    return {
        "samples": len(samples),
        "errors": sum(errors.values()),
        "error_codes": dict(errors),
        "latency_ms": {
            "sent": stats([s.sent for s in samples]),
            "received": stats([s.received for s in samples]),
            "painted": stats(painted),
        },
        "stage_ms": {
            "pointerup_to_sent": stats([s.sent for s in samples]),
            "sent_to_received": stats([s.received - s.sent for s in samples]),
            "received_to_painted": stats([s.painted - s.received for s in samples]),
        },
        "painted_within_100ms": sum(p <= 100 for p in painted),
        "shapes_on_picture_max": max((s.shapes for s in samples), default=0),
    }


async def run(options: Options) -> dict[str, Any]:
    """Start the server and the two browsers, set up the call, draw; the report."""
    with tempfile.TemporaryDirectory(prefix="videoassist-bench-") as workdir:
        server = ServerProcess("forward", Path(workdir))
        logger.info("starting the server on %s", server.url)
        server.start()
        try:
            async with aiohttp.ClientSession() as http, async_playwright() as playwright:
                await server.wait_ready(http)
                bench = AnnotationBench(options, server, http)
                job_id, link = await bench.job_and_invite()
                faces: list[Face] = []
                try:
                    logger.info("the expert signs in and joins job %d", job_id)
                    faces.append(await bench.open_expert(playwright, job_id))
                    logger.info("the customer opens the link and joins")
                    faces.append(await bench.open_customer(playwright, link))
                    expert, customer = faces[0].page, faces[1].page
                    await bench.wait_connected(expert, customer)
                    logger.info("connected; %d warm-up arrows", options.warmup)
                    await bench.series(expert, customer, options.warmup)
                    await bench.clear(expert, customer)
                    skew_before = await clock_skew(expert, customer)
                    start = CpuMark.now(server.pid)
                    start_browsers = tree_cpu_seconds(os.getpid(), exclude={server.pid})
                    logger.info("measuring %d arrows (Clear after every %d)", options.shapes,
                                options.clear_every)
                    results = await bench.series(expert, customer, options.shapes)
                    end = CpuMark.now(server.pid)
                    end_browsers = tree_cpu_seconds(os.getpid(), exclude={server.pid})
                    skew_after = await clock_skew(expert, customer)
                    server.check_alive()
                    remote = await expert.evaluate(PICTURE, "remote-video")
                    local = await customer.evaluate(PICTURE, "local-video")
                finally:
                    for face in reversed(faces):
                        await face.browser.close()
        finally:
            server.stop()
    server_cores, client_cores, machine_cores = end.cores_since(start)
    wall = max(end.wall - start.wall, 1e-9)
    browsers_cores = (end_browsers - start_browsers) / wall
    result: dict[str, Any] = {
        "benchmark": "annotations",
        "shapes": options.shapes,
        "warmup_shapes": options.warmup,
        "clear_every": options.clear_every,
        "pause_s": options.pause,
        **report(results),
        "clock_skew_ms": {"before": round(skew_before[0], 2),
                          "after": round(skew_after[0], 2),
                          "uncertainty": round(max(skew_before[1], skew_after[1]), 2)},
        "seconds": round(wall, 1),
        "server_cpu_cores": round(server_cores, 3),
        # The two Chromiums and Playwright's driver (this process's descendants).
        "browsers_cpu_cores": round(browsers_cores, 3),
        "client_cpu_cores": round(client_cores, 3),
        "machine_cpu_cores": round(machine_cores, 3),
        # Everything else the machine ran meanwhile: the noise of a shared machine.
        "other_cpu_cores": round(machine_cores - server_cores - browsers_cores
                                 - client_cores, 3),
        "cpu_count": os.cpu_count(),
        # The customer's camera as the phone previews it and as the expert receives it.
        "camera": f"{local[0]}x{local[1]}",
        "picture": f"{remote[0]}x{remote[1]}",
        "customer_viewport": f"{PHONE['width']}x{PHONE['height']}@{options.phone_scale:g}",
        "expert_viewport": f"{DESKTOP['width']}x{DESKTOP['height']}",
        "page_errors": bench.errors,
        # Random places of the picture, drawn again because the canvas was covered there.
        "covered_places": dict(bench.covered),
    }
    if result["errors"]:
        logger.warning("%d arrows failed: see error_codes", result["errors"])
    painted = result["latency_ms"]["painted"]
    logger.info("painted p50 %s ms, p95 %s ms, max %s ms over %d arrows", painted["p50"],
                painted["p95"], painted["max"], result["samples"])
    return result
