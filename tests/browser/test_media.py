"""Chromium with a fake camera publishes through the server to a second Chromium page.

Both pages join from one-time links (a technician and a customer) and run the real
client (web/static/js/media.js). An init script records each page's
RTCPeerConnections so the test can read ``getStats()``; nothing else is injected.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from playwright.async_api import BrowserContext, Page

from tests.support.browser import RECEIVED, Served, frame_counts, join_link, join_page
from tests.support.coturn import coturn
from tests.support.process import ServeProcess, ok

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="package")]

LOCAL_CANDIDATE_TYPE = """async () => {
  for (const pc of window.__pcs) {
    const stats = await pc.getStats();
    let pair = null;
    stats.forEach((r) => { if (r.type === "transport" && r.selectedCandidatePairId) {
      pair = stats.get(r.selectedCandidatePairId); } });
    if (pair) return stats.get(pair.localCandidateId).candidateType;
  }
  return null;
}"""


async def _call(browser: BrowserContext, serve: ServeProcess, data_dir: Path
                ) -> tuple[Page, Page]:
    serve.wait_ready()
    job_id = ok(data_dir, "job", "create", "Dishwasher leaks").strip()
    technician = await join_page(browser, join_link(serve, data_dir, job_id, "technician"))
    customer = await join_page(browser, join_link(serve, data_dir, job_id, "customer"))
    return technician, customer


async def test_chromium_publishes_to_another_page(browser: BrowserContext,
                                                  served: Served) -> None:
    serve = served()
    technician, customer = await _call(browser, serve, serve.data_dir)
    for page in (technician, customer):
        first, later = await frame_counts(page)
        assert later > first, (first, later)
    await _steer_the_customers_camera(technician, customer)
    assert serve.stop() == 0


async def _steer_the_customers_camera(technician: Page, customer: Page) -> None:
    """The technician asks for the torch; the customer's page (media.js) tries, and
    reports its camera: the fake camera has no torch, and says so."""
    customer_id = (await customer.evaluate(RECEIVED, "joined"))[0]["you"]["id"]
    reports_before = len(await technician.evaluate(RECEIVED, "camera.state"))
    await technician.evaluate(
        """(target) => window.__sockets[0].send(JSON.stringify(
             {type: "camera.control", target, action: "torch", value: true}))""",
        customer_id)
    async with asyncio.timeout(5):
        while len(reports := await technician.evaluate(RECEIVED, "camera.state")) <= (
                reports_before):
            await asyncio.sleep(0.05)
    report = reports[-1]
    assert report["from"] == customer_id
    assert report["torch"] is None and "torch" not in report["can"], report
    assert (await customer.evaluate(RECEIVED, "camera.control"))[-1]["action"] == "torch"


async def test_a_customer_relayed_through_coturn(browser: BrowserContext, served: Served,
                                                 tmp_path: Path) -> None:
    secret = "test-turn-secret-0123456789abcdef"
    with coturn(tmp_path, secret) as turn_port:
        serve = served(env={
            "VIDEOASSIST_TURN_URLS": f"turn:127.0.0.1:{turn_port}?transport=udp",
            "VIDEOASSIST_TURN_SECRET": secret,
        })
        technician, customer = await _call(browser, serve, serve.data_dir)
        first, later = await frame_counts(technician)
        assert later > first, (first, later)
        assert await customer.evaluate(LOCAL_CANDIDATE_TYPE) == "relay"
        first, later = await frame_counts(customer)
        assert later > first, (first, later)
        assert serve.stop() == 0
