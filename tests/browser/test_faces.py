"""The technician's face, and the customer's failure states, in the real client.

- An outside technician invited by link shows their own camera; their Snapshot button
  stores a picture of it (taken by the server) and their notes reach the job record,
  both seen in the expert's console. A technician signed in to the console gets the
  same phone layout: their own camera big.
- A customer whose server restarts mid-call sees "reconnecting", then is back in the
  call with the same link's token; the used link, opened again, says it is no longer
  valid; a phone that refuses the camera still joins, can chat, and is told why.

The tests share one server but the restart's, which has its own.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
import pytest_asyncio
from playwright.async_api import BrowserContext, Dialog, Page, Playwright, expect

from tests.support.browser import (
    ARTIFACTS,
    CHROMIUM,
    DESKTOP,
    FLAGS,
    OVERLAY_PIXEL,
    PHONE,
    RECORD_PEER_CONNECTIONS,
    SCREEN_POINT,
    STOP_AT_ONCE,
    Served,
    assert_usable,
    drag,
    end_call_for_all,
    frames_grow,
    open_chat,
    screenshots,
    sign_in_expert,
    watch_errors,
)
from tests.support.process import ServeProcess, ok
from tests.support.server import PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="package")]

BIG_VIDEO = """() => document.querySelector('[data-region="annotations"]')
  .parentElement.querySelector("video").dataset.region"""


NewJob = Callable[[str], str]


@pytest.fixture(scope="module")
def serve(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    """``videoassist serve`` for the module's tests (a server each cost seconds), with
    dana (an expert) and sam (a technician). Each test works in jobs of its own, made
    with ``new_job``, and so in calls of its own, and looks only at them."""
    data_dir = tmp_path_factory.mktemp("faces") / "data"
    process = ServeProcess(data_dir, env=STOP_AT_ONCE)
    try:
        process.wait_ready()
        for name, role in (("dana", "expert"), ("sam", "technician")):
            ok(data_dir, "user", "add", name, "--role", role, "--password-stdin",
               stdin=PASSWORD + "\n")
        yield process
    finally:
        process.stop()


@pytest.fixture
def new_job(serve: ServeProcess) -> Iterator[NewJob]:
    """``new_job(title)``: a new job on the module's server, its id. The test's jobs are
    closed at its end, which ends their calls: nobody a test left in a call (away once
    its pages are gone) still counts against dana's connections, or is in the server's
    calls, when the next test begins."""
    made: list[str] = []

    def create(title: str) -> str:
        made.append(ok(serve.data_dir, "job", "create", title).strip())
        return made[-1]

    try:
        yield create
    finally:
        for job_id in made:
            ok(serve.data_dir, "job", "close", job_id)


def invite(serve: ServeProcess, job_id: str, role: str) -> str:
    url = ok(serve.data_dir, "invite", job_id, "--role", role).strip()
    return f"{serve.url}/join#{url.split('#', 1)[1]}"


async def join(page: Page, link: str) -> None:
    await page.goto(link)
    await page.locator('[data-action="join"]').click()
    await expect(page.locator('[data-region="status"]')).to_have_text("Connected")


async def expert_in_a_new_call(browser: BrowserContext, serve: ServeProcess,
                               new_job: NewJob, title: str, errors: list[str]
                               ) -> tuple[Page, str]:
    """An expert (dana) signed in at a desk, in the call of a new job; its id."""
    job_id = new_job(title)
    expert = await browser.new_page()
    await expert.set_viewport_size(DESKTOP)
    await expert.add_init_script(RECORD_PEER_CONNECTIONS)
    watch_errors(expert, errors)
    await sign_in_expert(expert, serve)
    await expert.click(f'[data-job="{job_id}"]')
    await expert.click('[data-action="join"]')
    await expect(expert.locator('[data-region="status"]')).to_have_text("Connected")
    return expert, job_id


async def expert_sees_a_customer(browser: BrowserContext, serve: ServeProcess,
                                 new_job: NewJob, title: str, errors: list[str]
                                 ) -> tuple[Page, Page]:
    """``expert_in_a_new_call``, and a customer by link in it whose camera the expert
    sees move: (the expert's page, the customer's)."""
    expert, job_id = await expert_in_a_new_call(browser, serve, new_job, title, errors)
    customer = await browser.new_page()
    watch_errors(customer, errors)
    await join(customer, invite(serve, job_id, "customer"))
    await frames_grow(expert)
    return expert, customer


async def test_a_technician_snapshots_their_camera_and_writes_notes(
        browser: BrowserContext, serve: ServeProcess, new_job: NewJob) -> None:
    errors: list[str] = []
    expert, job_id = await expert_in_a_new_call(browser, serve, new_job, "Heat pump E7", errors)

    technician = await browser.new_page()
    watch_errors(technician, errors)
    await join(technician, invite(serve, job_id, "technician"))
    assert await technician.evaluate(BIG_VIDEO) == "local-video"  # their own camera
    await frames_grow(expert)
    await expect(technician.locator('[data-region="local-video"]')).to_have_js_property(
        "readyState", 4)
    await technician.click('[data-action="snapshot"]')
    await expect(technician.locator('[data-region="status"]')).to_have_text(
        "Snapshot saved to the job record.")
    await expect(technician.locator('[data-region="snapshots"] li')).to_have_count(1)
    figure = expert.locator('[data-region="snapshots"] [data-snapshot]')
    await expect(figure).to_have_count(1)
    await expect(figure.locator("figcaption")).to_contain_text("Technician's camera")

    await open_chat(technician)
    await technician.fill("#note-form [name=text]", "Fan blade cracked, bring a new one.")
    await technician.click('[data-action="note-add"]')
    await expect(technician.locator('[data-region="notes"]')).to_contain_text(
        "Technician: Fan blade cracked")
    await expect(expert.locator('[data-region="notes"]')).to_contain_text(
        "Technician: Fan blade cracked")
    await assert_usable(technician, "technician call")
    await screenshots(technician, "technician-call")

    # The expert ends the call: the technician's page says so.
    await end_call_for_all(expert)
    await expect(technician.locator('[data-region="status"]')).to_have_text(
        "The call has ended.")
    await expect(technician.locator("#ended")).to_be_visible()
    assert errors == []


async def test_a_signed_in_technician_gets_the_phone_layout(
        browser: BrowserContext, serve: ServeProcess, new_job: NewJob) -> None:
    job_id = new_job("Leaking valve")
    page = await browser.new_page()
    await page.goto(serve.url + "/")
    await page.fill("[name=username]", "sam")
    await page.fill("[name=password]", PASSWORD)
    await page.click('[data-action="sign-in"]')
    await page.click(f'[data-job="{job_id}"]')
    await page.click('[data-action="join"]')
    await expect(page.locator('[data-region="status"]')).to_have_text("Connected")
    assert await page.evaluate(BIG_VIDEO) == "local-video"
    await expect(page.locator('[data-action="snapshot"]')).to_be_visible()
    await expect(page.locator('[data-action="tool-arrow"]')).to_be_hidden()
    await assert_usable(page, "technician console")
    await screenshots(page, "technician-console")
    await page.click('[data-action="leave"]')
    await expect(page.locator('[data-action="join"]')).to_be_visible()


async def test_a_customer_rides_out_a_server_restart(
        browser: BrowserContext, served: Served, tmp_path: Path) -> None:
    """On a server of its own, which it restarts."""
    data_dir = tmp_path / "data"
    serve = served(data_dir)
    job_id = ok(data_dir, "job", "create", "Boiler pressure").strip()
    link = invite(serve, job_id, "customer")
    customer = await browser.new_page()
    await join(customer, link)
    status = customer.locator('[data-region="status"]')

    assert serve.stop() == 0
    await expect(status).to_have_text(re.compile(r"^Connection lost\. Reconnecting"))
    await screenshots(customer, "customer-reconnecting")
    again = served(data_dir, port=serve.port)
    await expect(status).to_have_text("Connected", timeout=20_000)
    # Back in a call of the same job, the camera still going.
    await expect(customer.locator('[data-region="local-video"]')).to_be_visible()
    used = await browser.new_page()
    await used.goto(link)
    await expect(used.locator('[data-action="join"]')).to_be_hidden()
    await expect(used.locator('[data-region="status"]')).to_contain_text("no longer valid")
    await expect(used.locator("#job-title")).to_have_text("This link cannot be used")
    await expect(used.locator('[data-region="greeting"]')).to_contain_text("no longer valid")
    await screenshots(used, "customer-link-used")
    await customer.click('[data-action="leave"]')
    assert again.stop() == 0


@pytest_asyncio.fixture(loop_scope="package")
async def camera_refused(playwright: Playwright, tmp_path: Path
                         ) -> AsyncIterator[BrowserContext]:
    """A Chromium of its own, started to say no when a page asks for the camera and
    microphone."""
    flags = [f for f in FLAGS if f != "--use-fake-ui-for-media-stream"]
    context = await playwright.chromium.launch_persistent_context(
        tmp_path / "refusing-profile", executable_path=CHROMIUM, headless=True,
        args=[*flags, "--deny-permission-prompts"], viewport=PHONE)
    context.set_default_timeout(10_000)
    try:
        yield context
    finally:
        await context.close()


async def test_a_customer_who_refuses_the_camera_can_still_talk_in_chat(
        camera_refused: BrowserContext, serve: ServeProcess, new_job: NewJob) -> None:
    job_id = new_job("Noisy fan")
    page = await camera_refused.new_page()
    await page.goto(invite(serve, job_id, "customer"))
    await page.locator('[data-action="join"]').click()
    await expect(page.locator('[data-region="status"]')).to_contain_text(
        "Camera and microphone are blocked")
    await open_chat(page)
    await page.fill("[name=message]", "I can't get the camera to work")
    await page.click('[data-action="chat-send"]')
    await expect(page.locator('[data-region="chat"]')).to_contain_text("camera to work")
    await page.screenshot(path=ARTIFACTS / "customer-camera-refused-phone.png", full_page=True)


SHAPE_COUNT = """() => document.querySelector('[data-region="annotations"]').dataset.shapes"""


async def test_every_drawing_tool_reaches_the_customer(
        browser: BrowserContext, serve: ServeProcess, new_job: NewJob) -> None:
    errors: list[str] = []
    expert, customer = await expert_sees_a_customer(browser, serve, new_job, "Drawing lesson",
                                                    errors)
    shapes = customer.locator('[data-region="annotations"]')

    await expert.click('[data-action="color"][data-color="#0a84ff"]')
    await expert.click('[data-action="tool-pen"]')
    await expect(expert.locator('[data-action="tool-pen"]')).to_have_attribute(
        "aria-pressed", "true")
    await drag(expert, [0.2, 0.2], [0.4, 0.3])
    await expect(shapes).to_have_attribute("data-shapes", "1")
    blue = await customer.evaluate(OVERLAY_PIXEL, [0.2, 0.2])
    assert blue[2] > 200 and blue[0] < 60 and blue[3] > 200, blue

    await expert.click('[data-action="tool-circle"]')
    await drag(expert, [0.6, 0.6], [0.7, 0.6])
    await expect(shapes).to_have_attribute("data-shapes", "2")

    await expert.click('[data-action="tool-text"]')
    point = await expert.evaluate(SCREEN_POINT, [0.1, 0.8])
    await expert.mouse.click(*point)
    await expert.keyboard.type("Open this valve")
    await expert.keyboard.press("Enter")
    await expect(shapes).to_have_attribute("data-shapes", "3")

    await expert.click('[data-action="undo"]')
    await expect(shapes).to_have_attribute("data-shapes", "2")
    await expert.click('[data-action="clear"]')
    await expect(shapes).to_have_attribute("data-shapes", "0")
    assert (await customer.evaluate(OVERLAY_PIXEL, [0.2, 0.2]))[3] == 0

    # The laser pointer draws nothing that stays, but shows a dot where it points.
    await expert.click('[data-action="tool-pointer"]')
    target = await expert.evaluate(SCREEN_POINT, [0.5, 0.5])
    await expert.mouse.move(target[0] - 20, target[1])
    await expert.mouse.move(*target, steps=4)
    await customer.wait_for_function(
        f"() => ({OVERLAY_PIXEL})([0.5, 0.5])[3] > 0", polling="raf", timeout=5000)
    assert await customer.evaluate(SHAPE_COUNT) == "0"
    assert errors == []


# The SHA-256 of an image element's decoded pixels, in hex (the page's CSP lets it
# fetch no blob: URL; the same JPEG decodes to the same pixels).
IMAGE_DIGEST = """async (img) => {
  await img.decode();
  const canvas = new OffscreenCanvas(img.naturalWidth, img.naturalHeight);
  const context = canvas.getContext("2d");
  context.drawImage(img, 0, 0);
  const pixels = context.getImageData(0, 0, canvas.width, canvas.height).data;
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", pixels));
  return Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
}"""


async def said_once(phone: Page, text: str) -> None:
    """The phone, its picture the whole screen, says ``text`` over it, and once: its
    status line, over the picture's top, keeps the call's state."""
    await expect(phone.locator('[data-region="notices"]')).to_contain_text(text)
    await expect(phone.locator('[data-region="status"]')).to_have_text("Connected")


async def test_a_freeze_is_everyones_and_a_snapshot_while_frozen_is_that_frame(
        browser: BrowserContext, serve: ServeProcess, new_job: NewJob) -> None:
    """The expert's Freeze shows the customer the very frame the expert draws on (the
    server's, the same bytes on both pages), the drawings over it; a snapshot taken
    then is that frame; Resume brings the live picture back on both."""
    errors: list[str] = []
    expert, customer = await expert_sees_a_customer(browser, serve, new_job, "Frozen valve",
                                                    errors)
    await drag(expert, [0.3, 0.3], [0.5, 0.5])  # an arrow, the default tool
    await expect(customer.locator('[data-region="annotations"]')).to_have_attribute(
        "data-shapes", "1")

    remote = expert.locator('[data-region="remote-video"]')
    await expert.click('[data-action="freeze"]')
    await expect(remote).to_have_js_property("paused", True)
    await expect(expert.locator('[data-action="freeze"]')).to_have_attribute(
        "aria-pressed", "true")
    frames = [page.locator('[data-region="frozen"]') for page in (expert, customer)]
    for frame in frames:
        await expect(frame).to_be_visible()
        await expect(frame).to_have_js_property("complete", True)
    [mine, theirs] = [await frame.evaluate(IMAGE_DIGEST) for frame in frames]
    assert mine == theirs, "the customer is not shown the expert's frame"
    assert await customer.locator(".call").evaluate("(c) => c.classList.contains('frozen')")
    await said_once(customer, "dana froze your picture to draw on it.")
    assert (await customer.evaluate(OVERLAY_PIXEL, [0.3, 0.3]))[3] > 0  # the arrow, over it
    await screenshots(customer, "customer-frozen")

    # A snapshot of the plain picture while frozen is the frozen frame, to the byte.
    await expert.click('[data-action="clear"]')
    await expert.click('[data-action="snapshot"]')
    await expect(expert.locator('[data-region="status"]')).to_have_text(
        "Snapshot saved to the job record.")
    shot = expert.locator('[data-region="snapshots"] figure img').first
    await expect(shot).to_have_attribute("src", re.compile(r"^blob:"))
    await expect(shot).to_have_js_property("complete", True)
    assert await shot.evaluate(IMAGE_DIGEST) == mine

    await expert.click('[data-action="freeze"]')
    await expect(remote).to_have_js_property("paused", False)
    for frame in frames:
        await expect(frame).to_be_hidden()
    await said_once(customer, "Your picture is live again.")
    assert not await customer.locator(".call").evaluate(
        "(c) => c.classList.contains('frozen')")
    assert errors == []


async def test_the_expert_removes_a_customer_from_the_call(
        browser: BrowserContext, serve: ServeProcess, new_job: NewJob) -> None:
    """Staff's Remove next to a participant (issue 20, finding 3): after the confirmation
    the customer's page says they were removed, and the expert's list loses them."""
    errors: list[str] = []
    expert, job_id = await expert_in_a_new_call(browser, serve, new_job, "Noisy pump", errors)
    customer = await browser.new_page()
    watch_errors(customer, errors)
    await join(customer, invite(serve, job_id, "customer"))
    people = expert.locator('[data-region="participants"] li')
    await expect(people).to_have_count(1)
    asked: list[str] = []

    async def accept(dialog: Dialog) -> None:
        asked.append(dialog.message)
        await dialog.accept()

    expert.on("dialog", accept)
    await people.locator('[data-action="remove-participant"]').click()
    await expect(customer.locator('[data-region="status"]')).to_have_text(
        "You were removed from the call.")
    await expect(people).to_have_text("Nobody else yet.")
    assert asked and "link will stop working" in asked[0]
    await expect(expert.locator('[data-region="status"]')).to_have_text("Connected")
    assert errors == []


async def test_the_expert_turns_the_camera_off_moves_the_small_picture_and_sees_the_time(
        browser: BrowserContext, serve: ServeProcess, new_job: NewJob) -> None:
    """The desk's own controls: camera off and on (nothing sent meanwhile), the small
    picture hidden, shown and moved to another corner, and the call's length."""
    errors: list[str] = []
    expert, customer = await expert_sees_a_customer(browser, serve, new_job, "Camera shy",
                                                    errors)

    timer = expert.locator('[data-region="call-timer"]')
    await expect(timer).to_have_text(re.compile(r"^\d+:\d\d$"))
    first = await timer.inner_text()
    await expect(timer).not_to_have_text(first)  # it counts
    await expect(customer.locator('[data-region="call-timer"]')).to_have_text(
        re.compile(r"^0:\d\d$"))

    camera = expert.locator('[data-action="camera"]')
    own = expert.locator('[data-region="local-video"]')
    sending = "(v) => v.srcObject.getVideoTracks().every((t) => t.enabled)"
    await camera.click()
    await expect(camera).to_have_attribute("aria-pressed", "true")
    await expect(camera).to_have_text("Camera on")
    await expect(expert.locator('[data-region="status"]')).to_have_text("Your camera is off.")
    assert not await own.evaluate(sending)
    await camera.click()
    await expect(camera).to_have_text("Camera off")
    assert await own.evaluate(sending)

    hide = expert.locator('[data-action="self-view"]')
    await hide.click()
    await expect(own).to_be_hidden()
    await expect(hide).to_have_text("Show small picture")
    await expect(expert.locator('[data-action="self-view-move"]')).to_be_hidden()
    await hide.click()
    await expect(own).to_be_visible()
    before = await own.bounding_box()
    await expert.click('[data-action="self-view-move"]')
    await expect(own).to_have_attribute("data-corner", "bottom-left")
    after = await own.bounding_box()
    assert before is not None and after is not None and after["x"] < before["x"]
    await screenshots(expert, "expert-small-picture-moved")
    assert errors == []
