"""The admin console in Chromium against ``videoassist serve`` as a real process.

An admin adds a technician, who sets a password through the link, signs in and joins a
call; the admin disables them, and within a second the technician's page is signed
out and the server holds no connection of theirs. The dashboard shows the figures of
a seeded database. The other admin views (API keys, audit log, role change, password
reset) are driven the same way, through the handles of docs/ui.md.
"""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

import aiohttp
import pytest
from playwright.async_api import BrowserContext, Dialog, Page, expect
from prometheus_client.parser import text_string_to_metric_families

from tests.support import seed
from tests.support.browser import (
    DESKTOP,
    PHONE,
    assert_accessible,
    assert_usable,
    screenshots,
    watch_errors,
)
from tests.support.process import ServeProcess, ok
from tests.support.server import PASSWORD
from videoassist.storage import Store

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="package")]

ADMIN = "boss"
NEW_PASSWORD = "a long new password"
# The words of the cells given that are broken across lines though they would fit on
# one: each word's text, laid out, spans more than one line.
SPLIT_WORDS = """(cells) => cells.flatMap((cell) => {
  const split = [];
  const walker = document.createTreeWalker(cell, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    for (const match of node.textContent.matchAll(/\\S+/g)) {
      const range = document.createRange();
      range.setStart(node, match.index);
      range.setEnd(node, match.index + match[0].length);
      const lines = new Set([...range.getClientRects()].map((r) => Math.round(r.top)));
      const width = range.getBoundingClientRect().width;
      if (lines.size > 1 && width < cell.clientWidth) split.push(match[0]);
    }
  }
  return split;
})"""


# Records when the sign-in form comes back (the page's own clock), for the test to read.
SIGNED_OUT_AT = """() => {
  const form = document.querySelector("#signin");
  new MutationObserver(() => {
    if (!form.hidden && window.signedOutAt === undefined) window.signedOutAt = Date.now();
  }).observe(form, { attributes: true, attributeFilter: ["hidden"] });
}"""


async def accept(dialog: Dialog) -> None:
    await dialog.accept()


def add_user(serve: ServeProcess, name: str, role: str) -> None:
    """A staff account with PASSWORD, made by the CLI while the server runs."""
    serve.wait_ready()
    ok(serve.data_dir, "user", "add", name, "--role", role, "--password-stdin",
       stdin=PASSWORD + "\n")


def add_admin(serve: ServeProcess) -> None:
    add_user(serve, ADMIN, "admin")


async def sign_in(page: Page, serve: ServeProcess, username: str, password: str) -> None:
    await page.goto(serve.url + "/")
    await page.fill("[name=username]", username)
    await page.fill("[name=password]", password)
    await page.click('[data-action="sign-in"]')
    await expect(page.locator('[data-region="status"]')).to_have_text(f"Signed in as {username}")


async def admin_page(browser: BrowserContext, serve: ServeProcess, errors: list[str]) -> Page:
    page = await browser.new_page()
    watch_errors(page, errors)
    await page.set_viewport_size(DESKTOP)
    page.on("dialog", accept)
    await sign_in(page, serve, ADMIN, PASSWORD)
    return page


async def api(serve: ServeProcess, method: str, path: str, token: str | None = None,
              body: Any = None) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with aiohttp.ClientSession() as http, http.request(
            method, serve.url + path, json=body, headers=headers) as response:
        assert response.status < 300, (path, response.status, await response.text())
        return await response.json()


async def connections(serve: ServeProcess) -> dict[str, float]:
    """What the server holds now, from /metrics parsed by prometheus_client."""
    async with aiohttp.ClientSession() as http, http.get(serve.url + "/metrics") as response:
        assert response.status == 200
        text = await response.text()
    held = {"websocket": 0.0, "peer": 0.0, "participants": 0.0}
    names = {"videoassist_websocket_connections": "websocket",
             "videoassist_peer_connections": "peer", "videoassist_participants": "participants"}
    for family in text_string_to_metric_families(text):
        if family.name in names:
            held[names[family.name]] += sum(sample.value for sample in family.samples)
    return held


async def admin_token(serve: ServeProcess) -> str:
    answer = await api(serve, "POST", "/api/session",
                       body={"username": ADMIN, "password": PASSWORD})
    return str(answer["token"])


async def test_a_disabled_technician_is_signed_out_within_a_second(
        browser: BrowserContext, serve: ServeProcess) -> None:
    add_admin(serve)
    errors: list[str] = []
    admin = await admin_page(browser, serve, errors)
    await admin.fill("#job-form [name=title]", "Leaking valve")
    await admin.click('[data-action="job-create"]')
    await expect(admin.locator("#job-heading")).to_have_text("Leaking valve")

    # The admin adds a technician; the page shows their one-time link.
    await admin.click('[data-action="view-people"]')
    await admin.fill("#user-form [name=username]", "sam")
    await admin.fill("#user-form [name=display_name]", "Sam Okoro")
    await admin.select_option("#user-form [name=role]", "technician")
    await admin.click('[data-action="user-add"]')
    link_text = admin.locator('[data-region="user-link"]')
    await expect(link_text).to_contain_text("/setup#")
    link = re.search(r"http\S+/setup#\S+", await link_text.inner_text())
    assert link, await link_text.inner_text()
    row = admin.locator('[data-region="users"] tr[data-username="sam"]')
    await expect(row.locator("[data-state]")).to_contain_text("no password yet")
    shown = row.locator('[data-action="user-display-name"]')
    await expect(shown).to_have_value("Sam Okoro")
    await assert_usable(admin, "admin people")
    await assert_accessible(admin, "admin people")

    # The technician sets a password, signs in and joins the job's call.
    tech = await browser.new_page()
    watch_errors(tech, errors)
    await tech.goto(link[0])
    await tech.fill("[name=password]", NEW_PASSWORD)
    await tech.fill("[name=password2]", NEW_PASSWORD)
    await tech.click('[data-action="set-password"]')
    await expect(tech.locator('[data-action="go-sign-in"]')).to_be_visible()
    await sign_in(tech, serve, "sam", NEW_PASSWORD)
    await tech.click('[data-region="jobs"] button:has-text("Leaking valve")')
    await tech.click('[data-action="join"]')
    await expect(tech.locator('[data-region="status"]')).to_have_text("Connected")

    # The admin sees them in the call, media up.
    sam_id = await row.get_attribute("data-user")
    person = admin.locator(f'[data-region="live-calls"] li[data-user="{sam_id}"]')
    await expect(person).to_contain_text("Sam Okoro · Technician")
    await expect(person).not_to_contain_text("no media yet", timeout=15_000)
    await expect(row.locator("[data-state]")).to_contain_text("in a call")
    await screenshots(admin, "admin-people")

    # Disabled: within a second the technician's page is signed out. Both moments are
    # taken in the browsers (one machine, one clock), not through Playwright's polling.
    await tech.evaluate(SIGNED_OUT_AT)
    clicked_at = await admin.evaluate("""() => {
      const button = document.querySelector('tr[data-username="sam"] [data-action="user-disable"]');
      const at = Date.now();
      button.click();
      return at;
    }""")
    await expect(tech.locator('[data-region="status"]')).to_have_text(
        "You have been signed out.", timeout=2000)
    await expect(tech.locator("#signin")).to_be_visible()
    signed_out_at = await tech.evaluate("() => window.signedOutAt")
    assert signed_out_at - clicked_at < 1000, signed_out_at - clicked_at
    # ...and within that second the server holds no connection of theirs: no WebSocket,
    # no PeerConnection (they were the only one in the call).
    while (held := await connections(serve)) != {"websocket": 0, "peer": 0, "participants": 0}:
        assert time.time() * 1000 - clicked_at < 1000, held
        await asyncio.sleep(0.02)
    print(f"signed out after {signed_out_at - clicked_at} ms; no connection after "
          f"{time.time() * 1000 - clicked_at:.0f} ms at most")
    await expect(tech.locator("#call")).to_be_hidden()
    token = await admin_token(serve)
    live = await api(serve, "GET", "/api/calls/live", token)
    assert not [p for c in live["calls"] for p in c["participants"]
                if p["user_id"] == int(sam_id or 0)], live
    await expect(row.locator("[data-state]")).to_have_attribute("data-state", "disabled")
    await expect(person).to_have_count(0)
    # Their set password no longer signs in, and re-enabling brings them back.
    async with aiohttp.ClientSession() as http, http.post(
            serve.url + "/api/session", json={"username": "sam", "password": NEW_PASSWORD}
    ) as response:
        assert response.status == 401
    await row.locator('[data-action="user-enable"]').click()
    await expect(row.locator("[data-state]")).to_have_attribute("data-state", "active")
    assert errors == []


async def test_the_dashboard_shows_the_seeded_figures(
        browser: BrowserContext, serve: ServeProcess) -> None:
    add_admin(serve)
    store = await Store.open(serve.data_dir / "videoassist.sqlite3")
    try:
        await seed.seed(store)
    finally:
        await store.close()
    want = seed.expected()
    errors: list[str] = []
    page = await admin_page(browser, serve, errors)
    await page.click('[data-action="view-dashboard"]')
    await page.fill("#dashboard-form [name=from]", seed.FIRST_DAY)
    await page.fill("#dashboard-form [name=to]", seed.LAST_DAY)
    await page.click('[data-action="dashboard-load"]')
    await expect(page.locator('[data-region="status"]')).to_have_text(
        f"Dashboard for {seed.FIRST_DAY} to {seed.LAST_DAY} (UTC)")

    figures = {f["name"]: f for f in await page.eval_on_selector_all(
        '[data-region="figures"] [data-figure]',
        "(nodes) => nodes.map((n) => ({name: n.dataset.figure, value: n.dataset.value,"
        " text: n.querySelector('dd').textContent}))")}
    numbers = {name: float(f["value"]) for name, f in figures.items()}
    assert numbers == pytest.approx({
        "calls": want["calls"]["total"],
        "duration-median": want["duration_s"]["median"],
        "duration-p95": want["duration_s"]["p95"],
        "invite-to-join-median": want["invite_to_join_s"]["median"],
        "invite-to-join-p95": want["invite_to_join_s"]["p95"],
        "invites-redeemed": want["invites"]["customer"]["redeemed_share"],
        "snapshots-per-call": want["snapshots"]["per_call"],
        "first-time-fix": want["first_time_fix"]["rate"],
    })
    # What people read says the same: 7 min 30 s median, 75 % of links, 67 % fixed.
    assert figures["duration-median"]["text"] == "7 min 30 s"
    assert figures["invites-redeemed"]["text"].startswith("75 % (3 of 4, 1 still open)")
    assert figures["first-time-fix"]["text"].startswith("67 % (2 of 3 answered")

    columns = await page.eval_on_selector_all('[data-region="chart-calls"] rect.bar title',
                                              "(nodes) => nodes.map((n) => n.textContent)")
    assert columns == [f"{d['day'][5:]}: {d['calls']}" for d in want["calls_per_day"]]
    bars = await page.eval_on_selector_all('[data-region="chart-people"] rect.bar title',
                                           "(nodes) => nodes.map((n) => n.textContent)")
    drawn = {}
    for title in bars:
        label, _, calls = title.rpartition(": ")
        drawn[label] = int(calls)
    assert drawn == {("Technicians by link" if name is None else f"{name} ({role})"): calls
                     for (name, role), calls in want["people"].items()}
    # On a phone the charts' words are as large as on a desk: drawn again at the
    # phone's width, not a desk's drawing shrunk (they were 5 px high).
    for size in (PHONE, DESKTOP):
        await page.set_viewport_size(size)
        await page.wait_for_function("""() => [...document.querySelectorAll(".chart svg")]
          .every((svg) => Math.abs(svg.viewBox.baseVal.width - svg.clientWidth) < 2)""")
        heights = await page.eval_on_selector_all(
            ".chart text", "(nodes) => nodes.map((n) => n.getBoundingClientRect().height)")
        assert heights and min(heights) >= 12, (size, sorted(heights)[:3])
    await screenshots(page, "admin-dashboard")
    assert errors == []


async def test_keys_audit_roles_and_resets_in_the_console(
        browser: BrowserContext, serve: ServeProcess) -> None:
    add_admin(serve)
    add_user(serve, "lee", "technician")
    errors: list[str] = []
    page = await admin_page(browser, serve, errors)

    # An API key: shown once, then only its hint; revoked at once.
    await page.click('[data-action="view-keys"]')
    await page.fill("#key-form [name=name]", "Salesforce")
    await page.check('#key-form [value="jobs:read"]')
    await page.check('#key-form [value="analytics:read"]')
    await page.click('[data-action="key-create"]')
    value = page.locator('[data-region="key-value"]')
    await expect(value).to_have_text(re.compile(r"^vak_[A-Za-z0-9_-]{43}$"))
    key = await value.inner_text()
    row = page.locator('[data-region="keys"] tr[data-key]')
    await expect(row).to_contain_text(f"Salesforce (…{key[-4:]})")
    await expect(row).to_contain_text("jobs:read, analytics:read")
    await expect(row).to_contain_text("never")
    await page.click('[data-action="key-hide"]')
    await expect(page.locator('[data-region="key-secret"]')).to_be_hidden()
    assert key not in await page.content()
    await api(serve, "GET", "/api/analytics", key)  # used once: the list shows when
    await page.click('[data-action="view-people"]')
    await page.click('[data-action="view-keys"]')
    await expect(row).not_to_contain_text("never")
    await row.locator('[data-action="key-revoke"]').click()
    await expect(row).to_contain_text("Revoked")

    # A role change and a password reset.
    await page.click('[data-action="view-people"]')
    lee = page.locator('[data-region="users"] tr[data-username="lee"]')
    await lee.locator('[data-action="user-role"]').select_option("expert")
    await expect(page.locator('[data-region="status"]')).to_have_text(
        "lee is now expert; they sign in again.")
    # Renamed in place: nobody signed out; cleared, the username shows again.
    name_field = lee.locator('[data-action="user-display-name"]')
    await name_field.fill("Lee Ahn")
    await name_field.press("Enter")
    await expect(page.locator('[data-region="status"]')).to_have_text(
        "lee is shown as Lee Ahn in calls they join")
    await expect(name_field).to_have_value("Lee Ahn")
    await expect(lee.locator('[data-action="user-role"]')).to_have_value("expert")
    await expect(lee.locator('[data-action="user-role"] option:checked')).to_have_text("Expert")
    await lee.locator('[data-action="user-reset"]').click()
    await expect(page.locator('[data-region="user-link"]')).to_contain_text(
        "One-time link for lee")
    await expect(lee.locator("[data-state]")).to_contain_text("no password yet")

    # All of it is in the audit log, newest first, and the filter narrows it. The
    # status line's words about the people view are gone with it.
    await expect(page.locator('[data-region="status"]')).not_to_have_text("")
    await page.click('[data-action="view-audit"]')
    await expect(page.locator('[data-region="status"]')).to_have_text("")
    actions = page.locator('[data-region="audit"] tr[data-audit] td:nth-child(4)')
    await expect(actions.first).to_have_text("password_link.created")
    shown = await actions.all_inner_texts()
    for action in ("user.password_reset", "user.role_changed", "apikey.revoked",
                   "apikey.used", "apikey.created", "signin.ok"):
        assert action in shown, (action, shown)
    await page.fill("#audit-form [name=action]", "apikey.")
    await page.click('[data-action="audit-filter"]')
    await expect(actions.first).to_have_text("apikey.revoked")
    assert set(await actions.all_inner_texts()) == {"apikey.created", "apikey.used",
                                                    "apikey.revoked"}
    assert key not in await page.content()
    # Read as people read: who by name (and the reference the filter takes), details
    # as words, no JSON.
    created = page.locator('[data-region="audit"] tr[data-audit]').filter(
        has_text="apikey.created")
    await expect(created.locator("td:nth-child(3)")).to_have_text(
        re.compile(r"^boss user:\d+$"))
    await expect(created.locator("td:nth-child(5)")).to_have_text(
        re.compile(r"^Salesforce apikey:\d+$"))
    await expect(created.locator("td.detail")).to_contain_text("scopes: jobs:read, analytics:read")
    assert "{" not in "".join(await page.locator('[data-region="audit"] td.detail')
                              .all_inner_texts())
    # On a phone, the details wrap between words, and a filter's example reads as one.
    await page.set_viewport_size(PHONE)
    split = await page.locator('[data-region="audit"] td.detail').evaluate_all(SPLIT_WORDS)
    assert split == [], split
    assert await page.locator("#audit-form [name=action]").evaluate(
        "(input) => getComputedStyle(input, '::placeholder').fontStyle") == "italic"
    await page.set_viewport_size(DESKTOP)
    await screenshots(page, "admin-audit")
    for view in ("keys", "audit", "dashboard"):
        await page.click(f'[data-action="view-{view}"]')
        await assert_usable(page, f"admin {view}")
    assert errors == []


async def test_the_expert_records_whether_the_visit_fixed_it(
        browser: BrowserContext, serve: ServeProcess) -> None:
    add_admin(serve)
    add_user(serve, "dana", "expert")
    errors: list[str] = []
    page = await browser.new_page()
    watch_errors(page, errors)
    await page.set_viewport_size(DESKTOP)
    await sign_in(page, serve, "dana", PASSWORD)
    await expect(page.locator("#tabs")).to_be_hidden()  # not an admin: no admin views
    await page.fill("#job-form [name=title]", "Dripping tap")
    await page.click('[data-action="job-create"]')
    await page.click('[data-action="join"]')
    await expect(page.locator('[data-region="status"]')).to_have_text("Connected")
    await page.click('[data-action="leave"]')

    await expect(page.locator("#outcome")).to_be_visible()
    await assert_usable(page, "outcome question")
    await page.click('[data-action="outcome-yes"]')
    await expect(page.locator('[data-region="status"]')).to_have_text(
        "Recorded: fixed on this visit.")
    await expect(page.locator("#outcome")).to_be_hidden()
    await expect(page.locator('[data-region="calls"]')).to_contain_text("fixed on this visit")
    token = await admin_token(serve)
    figures = await api(serve, "GET", "/api/analytics", token)
    assert figures["first_time_fix"] == {"yes": 1, "no": 0, "unanswered": 0, "rate": 1.0}
    assert errors == []


async def signed_in_at(page: Page, url: str, username: str) -> None:
    """Open ``url`` (a reload, a bookmark, a link from a colleague) and sign in there."""
    if page.url != url:
        await page.goto(url)
    else:
        await page.reload()
    await expect(page.locator("#signin")).to_be_visible()  # the session was the page's
    await page.fill("#signin [name=username]", username)
    await page.fill("#signin [name=password]", PASSWORD)
    await page.click('[data-action="sign-in"]')
    await expect(page.locator("#signin")).to_be_hidden()


async def test_each_view_has_an_address_that_back_a_reload_and_a_link_follow(
        browser: BrowserContext, serve: ServeProcess) -> None:
    """docs/ui.md, Addresses: a job's record and each admin view at its own address;
    Back and Forward between them; a reload (which signs out) or a pasted address
    lands there once signed in; what this user may not see, or a job that is not
    there, lands on the jobs at /."""
    add_admin(serve)
    add_user(serve, "dana", "expert")
    job_id = ok(serve.data_dir, "job", "create", "Boiler makes a noise").strip()
    errors: list[str] = []
    page = await admin_page(browser, serve, errors)
    heading, record = page.locator("#job-heading"), page.locator("#job")
    await expect(page).to_have_url(serve.url + "/")
    await page.click(f'button[data-job="{job_id}"]')
    await expect(heading).to_have_text("Boiler makes a noise")
    await expect(page).to_have_url(f"{serve.url}/jobs/{job_id}")
    await page.click('[data-action="view-audit"]')
    await expect(page).to_have_url(serve.url + "/audit")
    await expect(record).to_be_hidden()

    await page.go_back()
    await expect(page).to_have_url(f"{serve.url}/jobs/{job_id}")
    await expect(heading).to_be_visible()
    await expect(page.locator("#audit")).to_be_hidden()
    await expect(page.locator('[data-action="view-jobs"]')).to_have_attribute(
        "aria-pressed", "true")
    await page.go_back()
    await expect(page).to_have_url(serve.url + "/")
    await expect(record).to_be_hidden()
    await page.go_forward()
    await expect(heading).to_be_visible()

    await signed_in_at(page, f"{serve.url}/jobs/{job_id}", ADMIN)  # a reload
    await expect(heading).to_have_text("Boiler makes a noise")
    await signed_in_at(page, serve.url + "/audit", ADMIN)
    await expect(page.locator("#audit")).to_be_visible()
    await expect(page.locator('[data-action="view-audit"]')).to_have_attribute(
        "aria-pressed", "true")
    assert errors == []

    await signed_in_at(page, serve.url + "/jobs/999999", ADMIN)  # Chromium logs its 404
    await expect(page.locator('[data-region="status"]')).to_have_text("No such job.")
    await expect(page).to_have_url(serve.url + "/")
    await expect(record).to_be_hidden()
    await signed_in_at(page, serve.url + "/people", "dana")  # an admin view, not dana's
    await expect(page).to_have_url(serve.url + "/")
    await expect(page.locator("#jobs")).to_be_visible()
    await expect(page.locator("#people")).to_be_hidden()
    assert "token" not in page.url
