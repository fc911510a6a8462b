"""The job record in the staff console, from a real call: Chromium's fake camera is
snapshotted through the server, and an admin's console shows the call, the
snapshot's image, chat, notes and caption (the export itself is tested through the API:
tests/snapshots/test_record.py)."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest
from playwright.async_api import BrowserContext, Dialog, expect

from tests.support.browser import (
    RECEIVED,
    frame_counts,
    join_link,
    join_page,
    screenshots,
    watch_errors,
)
from tests.support.process import ServeProcess, ok
from tests.support.server import PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="package")]

SNAPSHOT = """(camera) => window.__sockets[0].send(JSON.stringify({
  type: "snapshot.request", camera, request: "browser-1",
  shapes: [{id: "a1", kind: "arrow", points: [[0.2, 0.8], [0.5, 0.5]], color: "#ff3b30",
            width: 0.01}]}))"""


async def accept(dialog: Dialog) -> None:
    await dialog.accept()


async def test_a_snapshot_of_chromium_shows_in_the_job_record(
        browser: BrowserContext, serve: ServeProcess, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    serve.wait_ready()
    ok(data_dir, "user", "add", "boss", "--role", "admin", "--password-stdin",
       stdin=PASSWORD + "\n")
    job_id = ok(data_dir, "job", "create", "Heat pump error E7").strip()
    technician = await join_page(browser, join_link(serve, data_dir, job_id, "technician"))
    customer = await join_page(browser, join_link(serve, data_dir, job_id, "customer"))
    await frame_counts(technician)
    joined = (await technician.evaluate(RECEIVED, "joined"))[0]
    arrivals = await technician.evaluate(RECEIVED, "participant.joined")
    camera = arrivals[0]["participant"]["id"]  # the customer, who joined second
    assert camera != joined["you"]["id"]
    await technician.evaluate(SNAPSHOT, camera)
    async with asyncio.timeout(10):
        while not (saved := await technician.evaluate(RECEIVED, "snapshot.saved")):
            errors = await technician.evaluate(RECEIVED, "error")
            assert not errors, errors
            await asyncio.sleep(0.1)
    info = saved[0]["snapshot"]
    assert saved[0]["request"] == "browser-1" and info["camera"] == camera
    assert info["width"] >= 320 and info["height"] >= 240  # Chromium's fake camera, in full
    # The customer is told too, but gets no way to fetch it.
    async with asyncio.timeout(5):
        while not await customer.evaluate(RECEIVED, "snapshot.saved"):
            await asyncio.sleep(0.1)
    await technician.locator('[data-action="leave"]').click()
    await customer.locator('[data-action="leave"]').click()

    console = await browser.new_page()
    errors: list[str] = []
    watch_errors(console, errors)
    await console.goto(serve.url + "/")
    await console.fill("[name=username]", "boss")
    await console.fill("[name=password]", PASSWORD)
    await console.click('[data-action="sign-in"]')
    await console.click(f'[data-job="{job_id}"]')
    figure = console.locator(f'[data-snapshot="{info["id"]}"]')
    image = figure.locator("img")
    await expect(image).to_have_attribute("src", re.compile(r"^blob:"))  # never a plain URL
    width = await image.evaluate("(img) => img.decode().then(() => img.naturalWidth)")
    assert width == info["width"]
    await expect(figure.locator("figcaption")).to_contain_text("Customer's camera")
    calls = console.locator('[data-region="calls"]')
    await expect(calls).to_contain_text("Technician joined")
    await expect(calls).to_contain_text("Customer joined")
    await figure.locator("[name=caption]").fill("Error code on the display")
    await figure.locator('[data-action="snapshot-caption"]').click()
    await expect(console.locator('[data-region="status"]')).to_have_text("Caption saved")
    await console.fill("#note-form [name=text]", "Order a new control board.")
    await console.click('[data-action="note-add"]')
    await expect(console.locator('[data-region="notes"]')).to_contain_text("boss: Order a new")
    # A short call in seconds, not "1 min"; the timeline in words, with who did it (the
    # job and the links were made on the command line: nobody's name).
    await expect(calls).to_contain_text(re.compile(r"left after \d{1,2} s\b"))
    timeline = console.locator('[data-region="events"]')
    for said in ("Job created", "Link for a technician made", "Call started",
                 "Technician joined the call",
                 "Customer joined the call", "Snapshot taken by Technician",
                 "Customer left the call", "Call ended"):
        await expect(timeline).to_contain_text(said)
    await expect(timeline).not_to_contain_text("participant.joined")
    await screenshots(console, "job-record")

    # Closed, the job leaves the list of open jobs, its links cannot be made, and its
    # record is one search away.
    console.once("dialog", accept)
    await console.click('[data-action="job-close"]')
    await expect(console.locator("#job-heading")).to_have_text("Heat pump error E7 (closed)")
    await expect(console.locator('[data-region="invite-closed"]')).to_be_visible()
    for action in ("invite-customer", "invite-technician"):
        await expect(console.locator(f'[data-action="{action}"]')).to_be_disabled()
    await expect(console.locator("#invite-form [name=to]")).to_be_disabled()
    await expect(timeline).to_contain_text("Job closed by boss")
    jobs = console.locator('[data-region="jobs"]')
    await expect(jobs.locator(f'[data-job="{job_id}"]')).to_have_count(0)
    await expect(jobs).to_contain_text("No open jobs yet.")
    await console.reload()  # a new session, nothing of the last one's view kept
    await console.fill("[name=username]", "boss")
    await console.fill("[name=password]", PASSWORD)
    await console.click('[data-action="sign-in"]')
    await console.fill("#search-form [name=q]", "pump")
    await console.select_option('[data-action="job-filter"]', "closed")
    found = jobs.locator(f'button[data-job="{job_id}"]')
    await expect(found).to_contain_text("Heat pump error E7 closed")
    await found.click()
    await expect(console.locator("#job-heading")).to_have_text("Heat pump error E7 (closed)")
    await expect(image).to_have_attribute("src", re.compile(r"^blob:"))
    await expect(console.locator('[data-action="join"]')).to_be_hidden()
    await console.select_option('[data-action="job-filter"]', "open")
    await expect(jobs).to_contain_text('No open job matches "pump".')
    await screenshots(console, "job-record-closed")
    assert errors == []
