"""A shape pinned on the customer's camera in real browsers (issue 23): the customer's
Chromium films the scene of ``tests.support.scene`` (a camera moving over photographs,
from a file: ``--use-file-for-fake-video-capture``), the expert at a desk draws a circle
on it with the drawing tools, pinned by default, and both pages draw it where the
server says it is, frame by frame.

What is checked here: the circle goes out pinned, on the frame the expert saw; the
server's ``annotation.track`` reaches both pages, the expert's tagged with RTP
timestamps of frames its own video element showed (each viewer's numbering, read back
by ``requestVideoFrameCallback``), the customer's untagged; the circle moves on both
screens as the camera moves; unpinned with the tool, it stops. Where it is against the
scene's ground truth is tests/media/test_pinning.py's, through the same server."""

from __future__ import annotations

import asyncio
import statistics
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio
from playwright.async_api import Browser, BrowserContext, Page, Playwright, expect

from tests.support.browser import (
    CHROMIUM,
    FLAGS,
    RECEIVED,
    customer_joins,
    drag,
    expert_in_a_call,
    frames_grow,
    serve_with_expert,
    watch_errors,
)
from tests.support.process import ServeProcess
from tests.support.scene import write_y4m

pytestmark = pytest.mark.asyncio(loop_scope="package")

# The frames the expert's big video showed, by RTP timestamp (requestVideoFrameCallback).
WATCH_SHOWN = """() => {
  const video = document.querySelector('[data-region="remote-video"]');
  window.__shown = new Set();
  const shown = (now, metadata) => {
    if (typeof metadata.rtpTimestamp === "number") window.__shown.add(metadata.rtpTimestamp);
    video.requestVideoFrameCallback(shown);
  };
  video.requestVideoFrameCallback(shown);
}"""
# The centre of the red the overlay draws (the circle), in canvas pixels; null if none.
RED_CENTRE = """() => {
  const canvas = document.querySelector('[data-region="annotations"]');
  const { width, height } = canvas;
  const data = canvas.getContext("2d").getImageData(0, 0, width, height).data;
  let sx = 0, sy = 0, n = 0;
  for (let i = 0; i < data.length; i += 4) {
    if (data[i] > 200 && data[i + 1] < 110 && data[i + 2] < 110 && data[i + 3] > 200) {
      const p = i / 4;
      sx += p % width; sy += Math.floor(p / width); n += 1;
    }
  }
  return n > 20 ? [sx / n, sy / n] : null;
}"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    yield from serve_with_expert(tmp_path_factory.mktemp("pinned") / "data")


@pytest_asyncio.fixture(loop_scope="package")
async def filming(playwright: Playwright, tmp_path: Path) -> AsyncIterator[BrowserContext]:
    """The customer's Chromium, its camera the scene from a file."""
    scene = write_y4m(tmp_path / "scene.y4m")
    browser = await playwright.chromium.launch(
        executable_path=CHROMIUM, headless=True,
        args=[*FLAGS, f"--use-file-for-fake-video-capture={scene}"])
    context = await browser.new_context(viewport={"width": 390, "height": 844})
    context.set_default_timeout(15_000)
    try:
        yield context
    finally:
        await browser.close()


async def _centres(page: Page, seconds: float) -> list[list[float]]:
    found = []
    for _ in range(int(seconds / 0.2)):
        centre = await page.evaluate(RED_CENTRE)
        if centre is not None:
            found.append(centre)
        await asyncio.sleep(0.2)
    return found


def _spread(points: list[list[float]]) -> float:
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    return max(max(xs) - min(xs), max(ys) - min(ys))


async def test_a_pinned_circle_moves_with_the_picture_on_both_screens(
        chromium: Browser, filming: BrowserContext, server: ServeProcess) -> None:
    errors: list[str] = []
    expert, link = await expert_in_a_call(chromium, server, "Pinned drawing", errors)
    customer = await filming.new_page()
    watch_errors(customer, errors)
    await customer_joins(customer, link)
    await frames_grow(expert)
    await expert.evaluate(WATCH_SHOWN)
    await expert.wait_for_function(
        "() => document.querySelector('[data-region=\"remote-video\"]').videoWidth > 0")
    pin = expert.locator('[data-action="pin"]')
    await expect(pin).to_have_attribute("aria-pressed", "true")  # pinned by default

    await expert.click('[data-action="tool-circle"]')
    await expert.locator('[data-region="annotations"]').scroll_into_view_if_needed()
    await drag(expert, [0.5, 0.45], [0.56, 0.45])
    async with asyncio.timeout(10):
        while not (added := await customer.evaluate(RECEIVED, "annotation.add")):
            await asyncio.sleep(0.1)
    shape = added[0]["shape"]
    assert shape["pinned"] is True and isinstance(shape.get("at"), int), shape
    assert shape["at"] in await expert.evaluate("() => [...window.__shown]")

    async with asyncio.timeout(15):
        while len(await expert.evaluate(RECEIVED, "annotation.track")) < 20:
            await asyncio.sleep(0.2)
    moving = await _centres(expert, 4.0)
    tracks = await expert.evaluate(RECEIVED, "annotation.track")
    shown = set(await expert.evaluate("() => [...window.__shown]"))
    tagged = [t["rtp_timestamp"] for t in tracks if t["rtp_timestamp"] is not None]
    # Each viewer is told in its own numbering: most of the frames named were shown
    # here (not all: the video element skips a frame now and then).
    assert len(tagged) == len(tracks), tracks[:3]
    assert statistics.mean(t in shown for t in tagged) > 0.8, (tagged[:5], sorted(shown)[:5])
    states = [s["state"] for t in tracks for s in t["shapes"]]
    assert states.count("tracking") > 0.5 * len(states), states
    # The camera pans and zooms: the circle moves on the expert's screen...
    assert len(moving) > 5 and _spread(moving) > 8, moving
    # ... and on the customer's, told with no RTP timestamp (its own camera's picture).
    own = await customer.evaluate(RECEIVED, "annotation.track")
    assert own and all(t["rtp_timestamp"] is None for t in own)
    await expect(customer.locator('[data-region="annotations"]')).to_have_attribute(
        "data-shapes", "1")

    # Unpinned with the tool: sent again, flat, where it shows now; no more tracking.
    await pin.click()
    await expect(pin).to_have_attribute("aria-pressed", "false")
    async with asyncio.timeout(10):
        while len(added := await customer.evaluate(RECEIVED, "annotation.add")) < 2:
            await asyncio.sleep(0.1)
    assert "pinned" not in added[-1]["shape"] and added[-1]["shape"]["id"] == shape["id"]
    await asyncio.sleep(1.0)
    before = len(await expert.evaluate(RECEIVED, "annotation.track"))
    await asyncio.sleep(1.5)
    assert len(await expert.evaluate(RECEIVED, "annotation.track")) == before
    still = await _centres(expert, 1.5)
    assert still and _spread(still) < 2, still
    assert errors == [], errors
