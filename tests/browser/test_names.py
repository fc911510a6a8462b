"""Names people see, the links a job has, and the company's brand, in the real client.

An expert with a display name makes a link for a customer by name from the console:
the link is listed with its state; the customer's phone (320 px wide, and iPhone 13
sized) greets them by name with Join above the fold, and while nobody else is in the
call tells them who will join; in the call each sees the other by name. The expert
withdraws the used link from the list: the customer is out of the call. Every page
shows the company's logo and colour.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.async_api import Browser, BrowserContext, Dialog, Page, expect

from tests.support.browser import (
    ARTIFACTS,
    DESKTOP,
    RECORD_PEER_CONNECTIONS,
    STOP_AT_ONCE,
    assert_accessible,
    assert_usable,
    end_call_for_all,
    frames_grow,
    screenshots,
    sign_in_expert,
    watch_errors,
)
from tests.support.process import ServeProcess, ok
from tests.support.server import PASSWORD
from videoassist.i18n import catalogue

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="package")]

# The narrowest phone in use, and an iPhone 13's viewport in Safari (the bars shown).
SMALL_PHONE = {"width": 320, "height": 568}
IPHONE_13 = {"width": 390, "height": 664}
LANDSCAPE = {"width": 844, "height": 390}
BRAND = "#1f6f43"  # Acme Heating's green: rgb(31, 111, 67)


@pytest.fixture(scope="module")
def serve(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    """``videoassist serve`` for Acme Heating, with dana, an expert shown as Dana Weiss."""
    root = tmp_path_factory.mktemp("names")
    data_dir = root / "data"
    logo = root / "acme.svg"
    logo.write_text('<svg xmlns="http://www.w3.org/2000/svg" width="40" height="20">'
                    '<rect width="40" height="20" fill="#1f6f43"/></svg>')
    process = ServeProcess(data_dir, env=STOP_AT_ONCE | {
        "VIDEOASSIST_COMPANY_NAME": "Acme Heating", "VIDEOASSIST_BRAND_COLOR": BRAND,
        "VIDEOASSIST_BRAND_LOGO": str(logo)})
    try:
        process.wait_ready()
        ok(data_dir, "user", "add", "dana", "--role", "expert", "--display-name",
           "Dana Weiss", "--password-stdin", stdin=PASSWORD + "\n")
        yield process
    finally:
        process.stop()


async def _join_above_the_fold(page: Page) -> None:
    box = await page.locator('[data-action="join"]').bounding_box()
    size = page.viewport_size
    assert box is not None and size is not None
    assert box["y"] + box["height"] <= size["height"], (size, box)


async def test_a_customer_named_on_the_link_is_greeted_and_named_in_the_call(
        browser: BrowserContext, serve: ServeProcess) -> None:
    errors: list[str] = []
    job_id = ok(serve.data_dir, "job", "create", "Boiler pressure drops").strip()
    expert = await browser.new_page()
    await expert.set_viewport_size(DESKTOP)
    await expert.add_init_script(RECORD_PEER_CONNECTIONS)
    watch_errors(expert, errors)
    await sign_in_expert(expert, serve)
    await expect(expert.locator("#who")).to_have_text("Dana Weiss · Expert")
    await expert.click(f'[data-job="{job_id}"]')
    await expect(expert.locator('[data-region="invites"]')).to_have_text("No links yet.")
    await expect(expert.locator('[data-region="invite-channels"]')).to_have_text(
        "This server sends no links itself: copy the link or show the QR code.")
    await expert.fill("#invite-form [name=name]", "Mr Keller")
    await expert.click('[data-action="invite-customer"]')
    link = expert.locator('[data-region="invite-link"]')
    await expect(link).to_contain_text("/join#")
    await expect(expert.locator("#invite-form [name=name]")).to_have_value("")
    listed = expert.locator('[data-region="invites"] li')
    await expect(listed).to_have_count(1)
    await expect(listed).to_contain_text("Mr Keller · Customer · open until")
    await expect(listed).to_have_attribute("data-state", "open")

    customer = await browser.new_page()
    watch_errors(customer, errors)
    for size in (SMALL_PHONE, IPHONE_13):
        await customer.set_viewport_size(size)  # type: ignore[arg-type]
        await customer.goto(await link.inner_text())
        greeting = customer.locator('[data-region="greeting"]')
        await expect(greeting).to_have_text(
            "Hello Mr Keller. Show the problem with your phone's camera: Dana Weiss from "
            "Acme Heating can draw on your screen to show you where to look.")
        await expect(customer.locator('[data-action="join"]')).to_be_enabled()
        await _join_above_the_fold(customer)
    # Acme Heating's colour and logo.
    await expect(customer.locator('[data-action="join"]')).to_have_css(
        "background-color", "rgb(31, 111, 67)")
    logo = customer.locator(".bar .logo")
    await expect(logo).to_be_visible()
    assert await logo.evaluate("(img) => img.naturalWidth") == 40
    await assert_usable(customer, "join page")
    await assert_accessible(customer, "join page, named")
    await screenshots(customer, "join-named")

    # Alone in the call: told who is coming.
    await customer.set_viewport_size(IPHONE_13)  # type: ignore[arg-type]
    await customer.locator('[data-action="join"]').click()
    note = customer.locator('[data-region="picture-note"]')
    await expect(note).to_have_text("Dana Weiss from Acme Heating will join in a moment.")
    await expect(customer.locator('[data-region="participants"]')).to_have_text(
        "Nobody else yet.")
    await assert_accessible(customer, "phone call, waiting")

    # The expert joins: each sees the other by name; the note goes.
    await expert.click('[data-action="join"]')
    await frames_grow(expert)
    await expect(note).to_be_hidden()
    await expect(customer.locator('[data-region="participants"]')).to_contain_text(
        "Dana Weiss · Expert")
    await expect(expert.locator('[data-region="participants"]')).to_contain_text(
        "Mr Keller · Customer")
    await assert_accessible(expert, "expert call, links listed")

    # The phone's picture is its whole screen; a chat line from the expert shows over
    # it, and Chat says one is waiting, until tapped.
    await expert.fill("#call [name=message]", "Is the pressure gauge in the red?")
    await expert.click('[data-action="chat-send"]')
    notices = customer.locator('[data-region="notices"]')
    await expect(notices).to_contain_text("Dana Weiss: Is the pressure gauge in the red?")
    panel = customer.locator('[data-action="panel"]')
    await expect(panel).to_have_text("Chat (1)")
    picture = customer.locator('[data-region="local-video"]')
    box = await picture.bounding_box()
    assert box is not None and (box["width"], box["height"]) == (
        IPHONE_13["width"], IPHONE_13["height"])
    await customer.screenshot(path=ARTIFACTS / "phone-call-portrait.png")
    await assert_accessible(customer, "phone call, notice shown")
    # Landscape: the controls beside the picture, not over it.
    await customer.set_viewport_size(LANDSCAPE)  # type: ignore[arg-type]
    controls = await customer.locator(".controls").bounding_box()
    box = await picture.bounding_box()
    assert controls is not None and box is not None
    assert controls["x"] >= box["x"] + box["width"] - 1, (controls, box)
    # ... and the call is the screen, not taller: nothing to scroll.
    heights = await customer.evaluate(
        "() => [document.documentElement.scrollHeight, window.innerHeight]")
    assert heights[0] <= heights[1], heights
    await customer.screenshot(path=ARTIFACTS / "phone-call-landscape.png")
    await customer.set_viewport_size(IPHONE_13)  # type: ignore[arg-type]
    await panel.click()
    await expect(panel).to_have_text("Back to the picture")
    await expect(customer.locator('[data-region="chat"]')).to_contain_text(
        "Dana Weiss: Is the pressure gauge in the red?")
    send = customer.locator('[data-action="chat-send"]')
    await send.scroll_into_view_if_needed()
    await expect(send).to_be_in_viewport()
    await assert_usable(customer, "phone call, chat shown")
    await assert_accessible(customer, "phone call, chat shown")
    await panel.click()
    await expect(panel).to_have_text("Chat")

    # The link withdrawn from the list (in the job's record: the call has its own page,
    # and the record is a tap away): the customer is out of the call.
    async def accept(dialog: Dialog) -> None:
        await dialog.accept()
    expert.on("dialog", accept)
    await expert.click('[data-action="call-record"]')
    await listed.locator('[data-action="invite-withdraw"]').click()
    await expect(expert.locator('[data-region="status"]')).to_have_text(
        "Link withdrawn; Mr Keller · Customer is removed from the call.")
    await expect(listed).to_have_attribute("data-state", "withdrawn")
    await expect(listed.locator("button")).to_have_count(0)
    await expect(customer.locator('[data-region="status"]')).to_have_text(
        "This link was withdrawn. Ask for a new one.")
    await assert_accessible(customer, "phone, call ended")
    await expect(expert.locator('[data-region="participants"]')).not_to_contain_text(
        "Mr Keller")
    assert errors == []


async def test_the_phone_speaks_its_browser_s_language_and_the_switch_keeps_the_link(
        chromium: Browser, serve: ServeProcess) -> None:
    """A phone whose browser asks for German gets the join page in German; its switch
    shows the page in Spanish with the link still good; the call, a reload in it, what
    the server refuses in it and its end speak Spanish; the address never holds the
    link."""
    errors: list[str] = []
    german, spanish = catalogue("de").gettext, catalogue("es").gettext
    job_id = ok(serve.data_dir, "job", "create", "Heizung tropft").strip()
    token = ok(serve.data_dir, "invite", job_id, "--role", "customer").strip().split("#")[1]
    context = await chromium.new_context(locale="de-DE", is_mobile=True, has_touch=True,
                                         viewport=IPHONE_13)  # type: ignore[arg-type]
    try:
        phone = await context.new_page()
        await phone.add_init_script(RECORD_PEER_CONNECTIONS)
        watch_errors(phone, errors)
        await phone.goto(f"{serve.url}/join#{token}")
        await expect(phone.locator("html")).to_have_attribute("lang", "de")
        join = phone.locator('[data-action="join"]')
        await expect(join).to_have_text(german("Join the call"))
        await expect(phone.locator('[data-region="status"]')).to_have_text(
            german("Ready when you are."))
        await assert_accessible(phone, "join page in German")

        await phone.select_option('[data-action="language"]', "es")
        await expect(phone.locator("html")).to_have_attribute("lang", "es")
        await expect(phone.locator("#job-title")).to_have_text("Heizung tropft")
        await expect(phone.locator('[data-region="status"]')).to_have_text(
            spanish("Ready when you are."))  # the link, inspected again, is still good
        assert phone.url == f"{serve.url}/join?lang=es"
        await expect(join).to_have_text(spanish("Join the call"))
        await join.tap()
        status = phone.locator('[data-region="status"]')
        await expect(status).to_have_text(spanish("Connected"))
        # Nobody else is in the call yet: who will come, in Spanish (a link the CLI
        # made names no one: the company).
        await expect(phone.locator('[data-region="picture-note"]')).to_have_text(
            spanish("{name} will join in a moment.", name="Acme Heating"))
        # Nobody else sends video: no small picture, nothing to hide or move.
        await expect(phone.locator('[data-region="remote-video"]')).to_be_hidden()
        for action in ("self-view", "self-view-move"):
            await expect(phone.locator(f'[data-action="{action}"]')).to_be_hidden()
        await assert_accessible(phone, "phone call in Spanish, waiting")
        await phone.screenshot(path=ARTIFACTS / "phone-call-waiting-es.png")

        await phone.reload()  # back in the call, still in Spanish
        await expect(status).to_have_text(spanish("Connected"))
        await expect(phone.locator("html")).to_have_attribute("lang", "es")
        assert phone.url == f"{serve.url}/join?lang=es"
        # The server refuses a drawing on someone not in the call (an error that leaves
        # the call open): said in Spanish, not in the server's English.
        await phone.evaluate("""() => window.__sockets.at(-1).send(JSON.stringify(
            {type: "annotation.clear", target: 424242}))""")
        await expect(status).to_have_text(spanish("They are no longer in the call."))
        await phone.locator('[data-action="leave"]').tap()
        await expect(phone.locator("#ended-title")).to_have_text(spanish("You left the call."))
        await assert_accessible(phone, "phone, call ended, in Spanish")
    finally:
        await context.close()
    assert errors == []


async def test_the_expert_s_call_has_a_page_and_an_address_of_its_own(
        browser: BrowserContext, chromium: Browser, serve: ServeProcess) -> None:
    """Joining puts the call on a page of its own, /jobs/ID/call: the picture, the tools,
    who is in it, its chat and the job's snapshots, nothing else. Back shows the whole
    record with the call still in it, Forward the call alone again; the two buttons do
    the same. A reload (the console signs out) and signing in again is back in the call
    at its address; when the call ends, the address is the record's."""
    errors: list[str] = []
    job_id = ok(serve.data_dir, "job", "create", "Radiator cold at the top").strip()
    token = ok(serve.data_dir, "invite", job_id, "--role", "customer").strip().split("#")[1]
    expert = await browser.new_page()
    await expert.set_viewport_size(DESKTOP)
    await expert.add_init_script(RECORD_PEER_CONNECTIONS)
    watch_errors(expert, errors)

    async def accept(dialog: Dialog) -> None:  # the reload's "leave the call?"
        await dialog.accept()

    expert.on("dialog", accept)
    phone = await chromium.new_context(viewport=IPHONE_13, is_mobile=True, has_touch=True)  # type: ignore[arg-type]
    try:
        customer = await phone.new_page()
        await customer.goto(f"{serve.url}/join#{token}")
        await customer.locator('[data-action="join"]').tap()
        await sign_in_expert(expert, serve)
        await expert.click(f'[data-job="{job_id}"]')
        await expect(expert).to_have_url(f"{serve.url}/jobs/{job_id}")
        await expert.click('[data-action="join"]')
        await expect(expert).to_have_url(f"{serve.url}/jobs/{job_id}/call")
        await frames_grow(expert)

        async def alone(on: bool) -> None:
            """The call alone on the page (``on``), or in the whole record."""
            for selector in ("#call", '[data-region="participants"]', "#draw-tools",
                             '#call [data-region="chat"]', "#job .snapshots-part"):
                await expect(expert.locator(selector)).to_be_visible()
            for selector, shown in (('[data-action="call-record"]', on),
                                    ('[data-action="call-focus"]', not on),
                                    ("#jobs", not on), ("#invite-form", not on),
                                    ('[data-region="events"]', not on),
                                    ("#note-form", not on)):
                if shown:
                    await expect(expert.locator(selector)).to_be_visible()
                else:
                    await expect(expert.locator(selector)).to_be_hidden()

        await alone(True)
        await expert.click('[data-action="snapshot"]')  # lands beside the call
        await expect(expert.locator('[data-region="snapshots"] [data-snapshot]')
                     ).to_have_count(1)
        await screenshots(expert, "expert-call-alone")
        await expert.set_viewport_size(DESKTOP)

        await expert.go_back()
        await expect(expert).to_have_url(f"{serve.url}/jobs/{job_id}")
        await alone(False)
        await expect(expert.locator('[data-region="remote-video"]')).to_be_visible()
        await expert.go_forward()
        await expect(expert).to_have_url(f"{serve.url}/jobs/{job_id}/call")
        await alone(True)
        await expert.click('[data-action="call-record"]')
        await expect(expert).to_have_url(f"{serve.url}/jobs/{job_id}")
        await alone(False)
        await expert.click('[data-action="call-focus"]')
        await expect(expert).to_have_url(f"{serve.url}/jobs/{job_id}/call")
        await alone(True)

        await expert.reload()
        await expect(expert.locator("#signin")).to_be_visible()
        await expect(expert).to_have_url(f"{serve.url}/jobs/{job_id}/call")
        await expert.fill("[name=username]", "dana")
        await expert.fill("[name=password]", PASSWORD)
        await expert.click('[data-action="sign-in"]')
        await frames_grow(expert)  # back in the call, the customer's camera live
        await expect(expert).to_have_url(f"{serve.url}/jobs/{job_id}/call")
        await alone(True)
        await expect(expert.locator('[data-region="participants"]')).to_contain_text("Customer")

        await end_call_for_all(expert)
        await expect(expert).to_have_url(f"{serve.url}/jobs/{job_id}")
        await expect(expert.locator('[data-region="events"]')).to_be_visible()
        await expect(expert.locator("#call")).to_be_hidden()
    finally:
        await phone.close()
        await expert.close()
    assert errors == [], errors
