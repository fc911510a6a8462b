"""A shape pinned on the customer's camera in real browsers (issue 23): the customer's
Chromium films the scene of ``tests.support.scene`` (a camera moving over photographs,
from a file: ``--use-file-for-fake-video-capture``), the expert at a desk draws a circle
on it with the drawing tools, pinned by default, and both pages draw it where the
server says it is, frame by frame.

Each frame of the scene has its number stamped in a corner (``scene.to_i420``), so a page
can tell which frame its video shows, and where the circle belongs on it is known: the
scene's ground truth. What is checked here: the circle goes out pinned, on the frame
the expert saw; the server's ``annotation.track`` reaches both pages, the expert's
tagged with RTP timestamps of frames its own video element showed (each viewer's
numbering, read back by ``requestVideoFrameCallback``), the customer's untagged; on the
expert's screen the circle is on the object, frame by frame, within the issue's
targets; on the customer's own picture it follows the object, a few frames late (the
trip to the server and back: its lag is measured here); on both it is hidden while the
object is out of view; a snapshot draws it where the object is in the captured frame;
unpinned with the tool, it stops."""

from __future__ import annotations

import asyncio
import statistics
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import cv2
import numpy as np
import pytest
import pytest_asyncio
from playwright.async_api import Browser, BrowserContext, Playwright, expect

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
from tests.support.scene import STAMP_CELLS, Camera, read_stamp, stamp_geometry, write_y4m
from tests.support.server import PASSWORD

pytestmark = pytest.mark.asyncio(loop_scope="package")

BLUE = "#0a84ff"  # a swatch of _call.html, and a colour the scene has none of
SIZE = (480, 270)  # the scene's frames, as the fake camera films them

# Each frame a page's big picture shows (requestVideoFrameCallback), until `limit`:
# the scene's frame number read from its stamp (scene.to_i420: the same cells, read the
# same way), its RTP timestamp if received, and, once the overlay has painted for it
# (the animation frame after), where the blue circle's centre is on the picture
# (normalized picture coordinates, the overlay's letterboxed box) or null if none,
# and how many shapes the overlay hid.
RECORD_FRAMES = """([limit, cells]) => {
  const canvas = document.querySelector('[data-region="annotations"]');
  const video = canvas.parentElement.querySelector("video");
  const grab = document.createElement("canvas");
  const grabbed = grab.getContext("2d", { willReadFrequently: true });
  window.__frames = [];
  const frameNumber = () => {
    const [w, h] = [video.videoWidth, video.videoHeight];
    if (!w || !h) return null;
    if (grab.width !== w || grab.height !== h) [grab.width, grab.height] = [w, h];
    grabbed.drawImage(video, 0, 0, w, h);
    const cell = w / 30, x0 = cell / 2, y0 = h - 1.5 * cell;
    const q = Math.max(1, Math.round(cell / 4));
    const levels = [];
    for (let i = 0; i < cells; i++) {
      const cx = Math.round(x0 + (i + 0.5) * cell), cy = Math.round(y0 + 0.5 * cell);
      const d = grabbed.getImageData(cx - q, cy - q, 2 * q, 2 * q).data;
      let sum = 0;
      for (let j = 0; j < d.length; j += 4) sum += d[j + 2] - d[j];  // blue less red
      levels.push(sum / (d.length / 4));
    }
    const [one, zero] = levels;
    if (one - zero < 80) return null;
    const bits = levels.map((v) => (v > (one + zero) / 2 ? 1 : 0));
    const number = bits.slice(2, -1);
    if (number.reduce((a, b) => a + b, 0) % 2 !== bits[cells - 1]) return null;
    return number.reduce((a, b) => 2 * a + b, 0);
  };
  const circle = () => {
    const { width, height } = canvas;
    const data = canvas.getContext("2d").getImageData(0, 0, width, height).data;
    let sx = 0, sy = 0, n = 0;
    for (let i = 0; i < data.length; i += 4) {
      if (data[i] < 90 && data[i + 1] > 90 && data[i + 1] < 190 && data[i + 2] > 200
          && data[i + 3] > 200) {
        const p = i / 4;
        sx += p % width; sy += Math.floor(p / width); n += 1;
      }
    }
    if (n < 20) return null;
    const ratio = width / canvas.clientWidth;
    const [cw, ch, pw, ph] = [canvas.clientWidth, canvas.clientHeight,
      video.videoWidth, video.videoHeight];
    const scale = Math.min(cw / pw, ch / ph);
    const [bx, by] = [(cw - pw * scale) / 2, (ch - ph * scale) / 2];
    return [(sx / n / ratio - bx) / (pw * scale), (sy / n / ratio - by) / (ph * scale)];
  };
  const shown = (_now, metadata) => {
    const frame = frameNumber();
    const rtp = typeof metadata.rtpTimestamp === "number" ? metadata.rtpTimestamp : null;
    requestAnimationFrame(() => window.__frames.push(
      { frame, rtp, circle: circle(), hidden: Number(canvas.dataset.hidden || 0) }));
    if (window.__frames.length < limit) video.requestVideoFrameCallback(shown);
  };
  video.requestVideoFrameCallback(shown);
}"""
RECORDED = "() => window.__frames"
NEWEST = "() => window.__frames.at(-1) ?? null"
COUNT = "() => window.__frames.length"
# The page's received video shown this many milliseconds late, as a jitter buffer on a
# real network holds it, while the server's messages come at once: a drawing must
# follow the frame on screen, not the latest message. Returns how many it set.
HOLD_VIDEO = """(ms) => {
  let held = 0;
  for (const pc of window.__pcs) {
    for (const receiver of pc.getReceivers()) {
      if (receiver.track.kind === "video") {
        receiver.jitterBufferTarget = ms;
        held += 1;
      }
    }
  }
  return held;
}"""
HELD_MS = 400
@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    yield from serve_with_expert(tmp_path_factory.mktemp("pinned") / "data")


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Camera]:
    """The scene as a y4m file, its frames stamped, and the camera that filmed it."""
    path = tmp_path_factory.mktemp("scene") / "scene.y4m"
    return path, write_y4m(path, SIZE)


@pytest_asyncio.fixture(loop_scope="package")
async def filming(playwright: Playwright,
                  scene: tuple[Path, Camera]) -> AsyncIterator[BrowserContext]:
    """The customer's Chromium, its camera the scene from a file."""
    browser = await playwright.chromium.launch(
        executable_path=CHROMIUM, headless=True,
        args=[*FLAGS, f"--use-file-for-fake-video-capture={scene[0]}"])
    context = await browser.new_context(viewport={"width": 390, "height": 844})
    context.set_default_timeout(15_000)
    try:
        yield context
    finally:
        await browser.close()


def _errors(camera: Camera, t0: int, centre: list[float],
            frames: list[dict[str, Any]], late: int = 0) -> tuple[list[float], list[int]]:
    """For each recorded frame whose number read and whose circle's place on frame
    ``t0`` (``centre``, normalized) is well inside it: how far the circle drawn is from
    that place ``late`` frames before, as a share of the diagonal (None where no circle
    was drawn); and the numbers of the frames where the place is well out of view."""
    w, h = camera.size
    point = np.array([[centre[0] * w, centre[1] * h]])
    errors, away = [], []
    for f in frames:
        t = f["frame"]
        if t is None or t - late < 0:
            continue
        truth = camera.truth(t0, t - late, point)
        if camera.in_view(t - late, truth, margin=0.1 * w)[0]:
            if f["circle"] is not None:
                drawn = np.array(f["circle"]) * [w, h]
                errors.append(float(np.hypot(*(drawn - truth[0]))) / camera.diagonal)
        elif not camera.in_view(t, camera.truth(t0, t, point), margin=-0.2 * w)[0]:
            away.append(t)
    return errors, away


async def _snapshot_image(server: ServeProcess, snapshot_id: int) -> np.ndarray:
    """A snapshot's stored JPEG, as dana fetches it over the API (BGR)."""
    async with aiohttp.ClientSession(server.url) as http:
        async with http.post("/api/session",
                             json={"username": "dana", "password": PASSWORD}) as answer:
            token = (await answer.json())["token"]
        async with http.get(f"/api/snapshots/{snapshot_id}/image",
                            headers={"Authorization": f"Bearer {token}"}) as answer:
            assert answer.status == 200, answer.status
            data = await answer.read()
    image: np.ndarray = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    return image


def _p95(values: list[float]) -> float:
    return float(np.percentile(values, 95))


def _blue_centre(image: np.ndarray) -> list[float] | None:
    """The centre of the blue circle in a snapshot (BGR), normalized; None if none. The
    stamp's blue cells, in the bottom rows, are not looked at."""
    h, w = image.shape[:2]
    _, _, stamp_top = stamp_geometry(w, h)
    above = image[:int(stamp_top) - 2]
    b, g, r = (above[:, :, i].astype(int) for i in range(3))
    ys, xs = np.nonzero((b > 190) & (r < 110) & (g > 80) & (g < 200))
    if len(xs) < 20:
        return None
    return [float(xs.mean()) / w, float(ys.mean()) / h]


async def test_a_pinned_circle_stays_on_the_object_on_both_screens_and_in_a_snapshot(
        chromium: Browser, filming: BrowserContext, scene: tuple[Path, Camera],
        server: ServeProcess) -> None:
    camera = scene[1]
    errors: list[str] = []
    expert, link = await expert_in_a_call(chromium, server, "Pinned drawing", errors)
    customer = await filming.new_page()
    watch_errors(customer, errors)
    await customer_joins(customer, link)
    await frames_grow(expert)
    await expert.wait_for_function(
        "() => document.querySelector('[data-region=\"remote-video\"]').videoWidth > 0")
    assert await expert.evaluate(HOLD_VIDEO, HELD_MS) >= 1
    # A loop of the scene is 13 s: 200 s of frames at 15 a second, at most.
    for page in (expert, customer):
        await page.evaluate(RECORD_FRAMES, [3000, STAMP_CELLS])
    pin = expert.locator('[data-action="pin"]')
    await expect(pin).to_have_attribute("aria-pressed", "true")  # pinned by default

    # The circle goes on the cup while the camera is still (the scene's first second),
    # waited for over three loops of the scene at most.
    await expert.click('[data-action="tool-circle"]')
    await expert.click(f'[data-action="color"][data-color="{BLUE}"]')
    await expert.locator('[data-region="annotations"]').scroll_into_view_if_needed()
    deadline = asyncio.get_running_loop().time() + 3 * camera.frames / camera.fps
    while (last := await expert.evaluate(NEWEST)) is None or not (
            last["frame"] is not None and last["frame"] <= 10):
        if asyncio.get_running_loop().time() > deadline:
            recent = (await expert.evaluate(RECORDED))[-15:]
            pytest.fail(f"the scene's still first second was never shown: {recent}")
        await asyncio.sleep(0.03)
    await drag(expert, [0.5, 0.45], [0.56, 0.45])
    async with asyncio.timeout(10):
        while not (added := await customer.evaluate(RECEIVED, "annotation.add")):
            await asyncio.sleep(0.1)
    shape = added[0]["shape"]
    assert shape["pinned"] is True and isinstance(shape.get("at"), int), shape
    numbered = {f["rtp"]: f["frame"] for f in await expert.evaluate(RECORDED)}
    assert shape["at"] in numbered, (shape["at"], sorted(numbered)[-5:])
    t0 = numbered[shape["at"]]
    assert t0 is not None
    centre = shape["points"][0]

    # A whole loop of the scene and a little more: the object away and back.
    recorded = await expert.evaluate(COUNT)
    async with asyncio.timeout(30):
        while await expert.evaluate(COUNT) < recorded + camera.frames + 30:
            await asyncio.sleep(0.5)
    tracks = await expert.evaluate(RECEIVED, "annotation.track")
    shown = {f["rtp"] for f in await expert.evaluate(RECORDED)}
    tagged = [t["rtp_timestamp"] for t in tracks if t["rtp_timestamp"] is not None]
    # Each viewer is told in its own numbering: most of the frames named were shown
    # here (not all: the video element skips frames, more on a busy machine: 71 % were
    # shown beside two busy loops; told in another numbering, none would be).
    assert len(tagged) == len(tracks), tracks[:3]
    assert statistics.mean(t in shown for t in tagged) > 0.5, (tagged[:5], sorted(shown)[:5])

    # On the expert's screen, frame by frame: on the object within the targets,
    # and hidden while it is out of view.
    after = (await expert.evaluate(RECORDED))[recorded:]
    off, away = _errors(camera, t0, centre, after)
    assert len(off) > 100, len(off)
    print(f"expert: error median {statistics.median(off):.2%}, p95 {_p95(off):.2%}, "
          f"{len(off)} frames")
    assert statistics.median(off) <= 0.015 and _p95(off) <= 0.04, sorted(off)[-10:]
    assert away, "the scene's object never left the picture"
    hidden = [f["hidden"] for f in after if f["frame"] in away]
    assert statistics.mean(h == 1 for h in hidden) > 0.8, hidden

    # On the customer's own picture, ahead of the server: the circle follows the
    # object by the latest place the server said, some frames late. How late is the
    # lag that best fits what was drawn.
    own = await customer.evaluate(RECEIVED, "annotation.track")
    assert own and all(t["rtp_timestamp"] is None for t in own)
    mine = await customer.evaluate(RECORDED)
    start = next(i for i, f in enumerate(mine) if f["circle"] is not None)
    fits = {late: _errors(camera, t0, centre, mine[start:], late) for late in range(16)}
    lag = min(fits, key=lambda late: statistics.median(fits[late][0]))
    off, away = fits[lag]
    print(f"customer: {lag} frames late (1/15 s each), error then median "
          f"{statistics.median(off):.2%}, p95 {_p95(off):.2%}, {len(off)} frames")
    assert statistics.median(off) <= 0.015, (lag, sorted(off)[-10:])
    assert away
    hidden = [f["hidden"] for f in mine[start:] if f["frame"] in away]
    assert statistics.mean(h == 1 for h in hidden) > 0.8, hidden

    # A snapshot while the object is in view, the camera not swinging, and the circle's
    # place well away from where it was drawn: drawn where the object is in the frame.
    w, h = camera.size
    point = np.array([[centre[0] * w, centre[1] * h]])

    def moved(t: int) -> float:
        return float(np.hypot(*(camera.truth(t0, t, point) - point)[0])) / camera.diagonal

    def good(t: int) -> bool:
        return ("quick" not in camera.segment_name(t) and moved(t) > 0.05
                and camera.in_view(t, camera.truth(t0, t, point), 0.2 * w)[0])

    # The frame captured is the server's newest, ahead of the one shown here (the
    # video held, a busy machine): good for the next second and a half of the scene.
    async with asyncio.timeout(20):
        while True:
            last = (await expert.evaluate(NEWEST))["frame"]
            if last is not None and all(good((last + k) % camera.frames) for k in range(22)):
                break
            await asyncio.sleep(0.05)
    await expert.click('[data-action="snapshot"]')
    await expect(expert.locator('[data-region="status"]')).to_have_text(
        "Snapshot saved to the job record.")
    (saved,) = await expert.evaluate(RECEIVED, "snapshot.saved")
    image = await _snapshot_image(server, saved["snapshot"]["id"])
    t = read_stamp(image)
    assert t is not None
    circle = _blue_centre(image)
    assert circle is not None, "the snapshot has no circle"
    truth = camera.truth(t0, t, point)[0]
    miss = float(np.hypot(circle[0] * w - truth[0], circle[1] * h - truth[1])) / camera.diagonal
    print(f"snapshot: frame {t}, the circle {miss:.2%} from its place, "
          f"{moved(t):.2%} from where it was drawn")
    assert moved(t) > 0.04, (t0, t)  # where it was drawn would fail the check below
    assert miss <= 0.02, (t, circle, truth / [w, h])

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
    still = np.array([f["circle"] for f in (await expert.evaluate(RECORDED))[-15:]
                      if f["circle"]])
    assert len(still) and float(np.abs(still - still[0]).max()) < 0.005, still
    assert errors == [], errors
