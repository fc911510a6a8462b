"""Debian's Chromium driven by Playwright, and what the browser tests do in its pages.

Chromium is ``/usr/bin/chromium`` (``scripts/test`` installs it); never run
``playwright install``. ``FLAGS`` give it a fake camera and microphone, and the load
generator (``scripts/loadgen/annotations.py``) starts it the same way. The scripts in
capitals are evaluated in pages (``page.evaluate``) or added to them
(``add_init_script``); the functions act in a page as a user would. The fixtures
(``playwright``, ``chromium``, ``browser``, ``served``, ``serve``) are in
tests/browser/conftest.py.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from playwright.async_api import Browser, BrowserContext, Page, ViewportSize, expect

from tests.support.process import ServeProcess, ok
from tests.support.server import PASSWORD

CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PHONE: ViewportSize = {"width": 390, "height": 844}
DESKTOP: ViewportSize = {"width": 1280, "height": 800}
PHONE_LANDSCAPE: ViewportSize = {"width": 844, "height": 390}
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
# The browser tests stop servers with calls still up: no drain, the calls are closed at
# once (1001 server_shutdown) and the process exits 0. Draining is tests/test_serving.py's.
STOP_AT_ONCE = {"VIDEOASSIST_DRAIN_TIMEOUT_S": "0"}
# The ``served`` fixture: ``served(data_dir=None, *, port=None, env=None)`` starts
# ``videoassist serve`` for the test (tests/browser/conftest.py).
Served = Callable[..., ServeProcess]


async def screenshots(page: Page, name: str) -> None:
    """Save ``test-artifacts/NAME-phone.png``, ``NAME-landscape.png`` and
    ``NAME-desktop.png``, each checked by axe-core first (``assert_accessible``): every
    face the tests photograph is checked against WCAG 2.2 AA at each size. Ends at
    phone size."""
    ARTIFACTS.mkdir(exist_ok=True)
    for label, size in (("phone", PHONE), ("landscape", PHONE_LANDSCAPE), ("desktop", DESKTOP)):
        await page.set_viewport_size(size)
        await assert_accessible(page, f"{name} ({label})")
        await page.screenshot(path=ARTIFACTS / f"{name}-{label}.png", full_page=True)
    await page.set_viewport_size(PHONE)


def watch_errors(page: Page, errors: list[str]) -> None:
    """Append the page's uncaught script errors and console errors to ``errors``.

    The server has no /favicon.ico yet; Chromium's 404 for it is not the page's error.
    """
    page.on("pageerror", lambda error: errors.append(f"pageerror: {error}"))
    page.on("console", lambda msg: errors.append(f"console: {msg.text} {msg.location}")
            if msg.type == "error" and not msg.location["url"].endswith("/favicon.ico")
            else None)


# -- in a call ----------------------------------------------------------------------

RECORD_PEER_CONNECTIONS = """
window.__pcs = [];
const Native = window.RTCPeerConnection;
window.RTCPeerConnection = class extends Native {
  constructor(...args) { super(...args); window.__pcs.push(this); }
};
window.__sockets = [];
window.__received = [];
const NativeSocket = window.WebSocket;
window.WebSocket = class extends NativeSocket {
  constructor(...args) {
    super(...args);
    window.__sockets.push(this);
    // Binary frames are stills (docs/protocol.md, Stills): counted, not parsed.
    this.addEventListener("message", (e) => {
      if (typeof e.data === "string") window.__received.push(JSON.parse(e.data));
      else window.__stillFrames = (window.__stillFrames || 0) + 1;
    });
  }
};
"""

RECEIVED = "(type) => window.__received.filter((m) => m.type === type)"

# After RECORD_PEER_CONNECTIONS: sockets that ``drop()`` closes while their page sees
# what a dead connection gives, code 1006, at once: the server sees the socket close,
# the client takes the path of a lost connection. Chromium cannot cut one page's open
# socket (offline emulation leaves WebSockets open), and the closing handshake of one
# opened after the emulation went offline and back can hang for many seconds once it
# is offline again (seen with Chromium 156): the page is told at once, as a broken
# connection tells it, and the real close event, whenever it comes, is kept from it.
DROPPABLE_SOCKETS = """
const Recorded = window.WebSocket;
window.WebSocket = class extends Recorded {
  constructor(...args) {
    super(...args);
    // Registered before the page's own listeners: they never see the real one.
    this.addEventListener("close", (event) => {
      if (this.dropped && !event.dropped) event.stopImmediatePropagation();
    });
  }
  drop() {
    if (this.dropped || this.readyState === Recorded.CLOSED) return;
    this.dropped = true;
    this.close();
    const lost = new CloseEvent("close", { code: 1006 });
    lost.dropped = true;
    this.dispatchEvent(lost);
  }
};
"""

FRAMES_DECODED = """async () => {
  let frames = 0;
  for (const pc of window.__pcs) {
    (await pc.getStats()).forEach((r) => {
      if (r.type === "inbound-rtp" && r.kind === "video") frames += r.framesDecoded || 0;
    });
  }
  return frames;
}"""

# The colour of the pixel at a normalized point of the overlay's picture, on the page.
OVERLAY_PIXEL = """([x, y]) => {
  const canvas = document.querySelector('[data-region="annotations"]');
  const video = canvas.parentElement.querySelector("video");
  const w = canvas.clientWidth, h = canvas.clientHeight;
  const s = Math.min(w / video.videoWidth, h / video.videoHeight);
  const bx = (w - video.videoWidth * s) / 2, by = (h - video.videoHeight * s) / 2;
  const r = canvas.width / w;
  const px = Math.round((bx + x * video.videoWidth * s) * r);
  const py = Math.round((by + y * video.videoHeight * s) * r);
  return Array.from(canvas.getContext("2d").getImageData(px, py, 1, 1).data);
}"""

# Where a normalized point of the big picture is on the screen, in CSS pixels.
SCREEN_POINT = """([x, y]) => {
  const canvas = document.querySelector('[data-region="annotations"]');
  const video = canvas.parentElement.querySelector("video");
  const rect = canvas.getBoundingClientRect();
  const s = Math.min(rect.width / video.videoWidth, rect.height / video.videoHeight);
  const bx = (rect.width - video.videoWidth * s) / 2;
  const by = (rect.height - video.videoHeight * s) / 2;
  return [rect.left + bx + x * video.videoWidth * s, rect.top + by + y * video.videoHeight * s];
}"""

# Every visible control: its size (a checkbox's with its label), its name for a screen
# reader, its tabindex.
CONTROLS = """() => [...document.querySelectorAll("button, input, a[href], select, textarea")]
  .filter((e) => e.offsetParent !== null && getComputedStyle(e).visibility !== "hidden")
  .map((e) => {
    // A checkbox's target is its label too (WCAG 2.5.8): measure the label.
    const box = (e.type === "checkbox" || e.type === "radio") && e.labels && e.labels.length
      ? e.labels[0] : e;
    const r = box.getBoundingClientRect();
    const label = e.labels && e.labels.length ? e.labels[0].textContent : "";
    return {
      what: e.dataset.action || e.name || e.outerHTML.slice(0, 60),
      width: r.width, height: r.height, tabindex: e.tabIndex,
      name: (e.getAttribute("aria-label") || label || e.textContent || "").trim(),
    };
  })"""


def join_link(serve: ServeProcess, data_dir: Path, job_id: str, role: str) -> str:
    """A one-time link to the job for ``role``, made with ``videoassist invite``."""
    url = ok(data_dir, "invite", job_id, "--role", role).strip()
    return f"{serve.url}/join#{url.split('#', 1)[1]}"


async def join_page(browser: BrowserContext, link: str, script: str | None = None) -> Page:
    """A new page that records its peer connections and joins by ``link``; ``script``:
    one more init script for the page."""
    page = await browser.new_page()
    await page.add_init_script(RECORD_PEER_CONNECTIONS)
    if script is not None:
        await page.add_init_script(script)
    await page.goto(link)
    await page.locator('[data-action="join"]').click()
    await page.locator('[data-region="local-video"]').wait_for(state="visible")
    return page


async def frame_counts(page: Page, timeout: float = 10.0) -> tuple[int, int]:
    """framesDecoded on the page, seen growing; returns (first, later) counts."""
    async with asyncio.timeout(timeout):
        while (first := await page.evaluate(FRAMES_DECODED)) == 0:
            await asyncio.sleep(0.2)
        await asyncio.sleep(1.0)
        later = await page.evaluate(FRAMES_DECODED)
    return first, later


async def frames_grow(page: Page) -> None:
    """Until framesDecoded on the page is above 0, then until it grows (15 s at most)."""
    async with asyncio.timeout(15):
        while (first := await page.evaluate(FRAMES_DECODED)) == 0:
            await asyncio.sleep(0.2)
        while await page.evaluate(FRAMES_DECODED) <= first:
            await asyncio.sleep(0.2)


async def assert_usable(page: Page, face: str) -> None:
    """Targets at least 44 px, every control named, focus in document order."""
    controls: list[dict[str, Any]] = await page.evaluate(CONTROLS)
    assert controls, face
    small = [c for c in controls if c["width"] < 44 or c["height"] < 44]
    assert not small, (face, small)
    unnamed = [c for c in controls if not c["name"] and c["what"] != "message"]
    assert not unnamed, (face, unnamed)
    assert all(c["tabindex"] <= 0 for c in controls), (face, controls)


# axe-core (npm, package.json): the accessibility rules the pages are checked against.
AXE = Path(__file__).resolve().parents[2] / "node_modules" / "axe-core" / "axe.min.js"
WCAG_22_AA = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"]
AXE_RUN = """(tags) => axe.run(document, {runOnly: {type: "tag", values: tags},
    resultTypes: ["violations"]}).then((result) => result.violations.map((v) => ({
      rule: v.id, impact: v.impact, help: v.help,
      where: v.nodes.slice(0, 4).map((n) => `${n.target.join(" ")}: ${n.failureSummary}`),
    })))"""


async def assert_accessible(page: Page, state: str) -> None:
    """axe-core finds no violation of WCAG 2.2 at levels A and AA on the page as it is
    now (``state`` names it in the failure). Loaded through the DevTools protocol, as
    a test's own script: the page's Content-Security-Policy admits no inline script."""
    if not await page.evaluate("typeof window.axe === 'object'"):
        await page.evaluate(AXE.read_text(encoding="utf-8") + "\n;undefined")
    violations = await page.evaluate(AXE_RUN, WCAG_22_AA)
    if violations:
        said = "\n".join(f"- {v['rule']} ({v['impact']}): {v['help']}\n    "
                         + "\n    ".join(v["where"]) for v in violations)
        raise AssertionError(f"axe-core, {state}:\n{said}")


async def open_chat(page: Page) -> None:
    """On a phone in its call, where the picture fills the screen, tap Chat: the chat
    form and the rest of the page come back below a smaller picture."""
    panel = page.locator('[data-action="panel"]')
    if await panel.is_visible() and await panel.get_attribute("aria-pressed") != "true":
        await panel.click()
    send = page.locator('[data-action="chat-send"]')
    await send.scroll_into_view_if_needed()
    await expect(send).to_be_in_viewport()


async def sign_in_expert(page: Page, serve: ServeProcess) -> None:
    """Sign in to the console as dana, an expert the test added with ``PASSWORD``."""
    await page.goto(serve.url + "/")
    await page.fill("[name=username]", "dana")
    await page.fill("[name=password]", PASSWORD)
    await page.click('[data-action="sign-in"]')
    await expect(page.locator('[data-region="status"]')).to_have_text("Signed in as dana")


async def end_call_for_all(page: Page) -> None:
    """Staff end the call for everyone in it: the button, then its confirmation."""
    await page.click('[data-action="end-call"]')
    await page.click('[data-action="end-call-confirm"]')


async def drag(page: Page, start: list[float], end: list[float]) -> None:
    """Press at one point of the big picture, move, release at another."""
    a = await page.evaluate(SCREEN_POINT, start)
    b = await page.evaluate(SCREEN_POINT, end)
    await page.mouse.move(*a)
    await page.mouse.down()
    await page.mouse.move(*b, steps=6)
    await page.mouse.up()


def serve_with_expert(data_dir: Path) -> Iterator[ServeProcess]:
    """``videoassist serve`` on ``data_dir`` with dana, an expert with ``PASSWORD``,
    until the generator is closed (a module fixture's body)."""
    serve = ServeProcess(data_dir, env=STOP_AT_ONCE)
    try:
        serve.wait_ready()
        ok(data_dir, "user", "add", "dana", "--role", "expert", "--password-stdin",
           stdin=PASSWORD + "\n")
        yield serve
    finally:
        serve.stop()


async def expert_in_a_call(browser: Browser, server: ServeProcess, title: str,
                           errors: list[str], script: str = "") -> tuple[Page, str]:
    """dana at a desk: signed in, a new job with ``title``, in its call; returns the
    page and a customer's join link. ``script`` goes in the page after the recorder."""
    context = await browser.new_context(viewport=DESKTOP)
    context.set_default_timeout(15_000)
    expert = await context.new_page()
    await expert.add_init_script(RECORD_PEER_CONNECTIONS + script)
    watch_errors(expert, errors)
    return expert, await expert_joins(expert, server, title)


async def expert_joins(expert: Page, server: ServeProcess, title: str) -> str:
    """dana on ``expert``: signed in, a new job with ``title``, a customer invited, in
    its call; the customer's join link."""
    await sign_in_expert(expert, server)
    await expert.fill("#job-form [name=title]", title)
    await expert.click('[data-action="job-create"]')
    await expect(expert.locator("#job-heading")).to_have_text(title)
    await expert.click('[data-action="invite-customer"]')
    invite = expert.locator('[data-region="invite-link"]')
    await expect(invite).to_have_text(re.compile("^" + re.escape(f"{server.url}/join#")))
    link = (await invite.text_content()) or ""
    await expert.click('[data-action="join"]')
    await expect(expert.locator('[data-region="remote-video"]')).to_be_visible()
    return link


async def customer_joins(customer: Page, link: str, script: str = "") -> None:
    await customer.add_init_script(RECORD_PEER_CONNECTIONS + script)
    await customer.goto(link)
    await customer.locator('[data-action="join"]').click()
    await expect(customer.locator('[data-region="status"]')).to_have_text("Connected")


def scan_profile(profile: Path, origin: str, secrets: list[str],
                 raw: Sequence[bytes] = ()) -> None:
    """Nothing of the call in the profile: none of ``secrets`` (canaries put in the
    call, tokens) in any file, as UTF-8 or UTF-16, nor any of ``raw`` (bytes of
    pictures the call made, such as a still's JPEG data), no storage for the origin.
    Chromium's own records of the visit (History, the session, preferences, the
    favicon) may name the origin; they are listed and checked to hold no secret."""
    canaries = [c.encode() for c in secrets]
    canaries += [c.encode("utf-16-le") for c in secrets]
    canaries += list(raw)
    host = origin.split("//", 1)[1].encode()
    naming = []
    for path in profile.rglob("*"):
        if not path.is_file():
            continue
        data = path.read_bytes()
        found = [c for c in canaries if c in data]
        assert not found, (path, found)
        if host in data:
            naming.append(path.relative_to(profile).as_posix())
    default = profile / "Default"
    for store in ("IndexedDB", "Service Worker", "Local Storage", "Session Storage",
                  "File System", "shared_proto_db", "blob_storage"):
        for path in (default / store).rglob("*") if (default / store).exists() else []:
            if path.is_file():
                assert host not in path.read_bytes(), path
    cookies = default / "Cookies"
    if cookies.exists():
        with sqlite3.connect(f"file:{cookies}?mode=ro", uri=True) as db:
            rows = db.execute("SELECT host_key FROM cookies").fetchall()
        assert not [r for r in rows if "127.0.0.1" in r[0]], rows
    # No response of the server was kept: nothing in the HTTP cache; V8's code cache
    # holds, for each script run once, only a marker (its URL and a time, ~200 bytes),
    # never the script or its compiled code.
    assert not [p for p in naming if p.startswith("Default/Cache/")], naming
    for marker in (p for p in naming if p.startswith("Default/Code Cache/")):
        data = (profile / marker).read_bytes()
        assert len(data) < 512 and b"annotation" not in data, (marker, data)
    # Chromium's own records of the visit, which name the origin but hold nothing of
    # the call: history and the session (the link's URL, spent by then), preferences,
    # the favicon, the per-origin salt of media device ids, and usage metrics.
    expected = ("Default/History", "Default/Sessions/", "Default/Preferences",
                "Default/Favicons", "Default/MediaDeviceSalts", "Default/Code Cache/",
                "Default/Visited Links", "Default/Network Action Predictor",
                "Default/Top Sites", "Default/Shortcuts", "Default/DIPS",
                "Default/Network Persistent State", "Default/TransportSecurity",
                "segmentation_platform/", "Local State")
    unexpected = [p for p in naming if not any(e in p for e in expected)]
    assert not unexpected, (unexpected, naming)
