"""A socket that goes silent without closing is given up by the web client
(web/static/js/call-watch.js): when a phone's network goes away, the browser keeps its
socket "open" until TCP gives up, minutes later, while the server let it go long
before (docs/protocol.md, Liveness). After 4 s without a message the client sends a
ping; nothing within 25 s more, and it reconnects as after a lost connection, as the
same participant. Rather than wait those 25 s, the test moves the page's
``Date.now()`` on by 25 s once the unanswered ping went out (init script ``SHIFTABLE``;
the client's other watches see the jump too: its media connection, silent by that
clock, is replaced as well).

The page's socket is made silent from the page's side (init script ``SILENCEABLE``):
the server's messages stop reaching the page's code and what the page sends goes
nowhere, while the real socket stays open and the browser still answers the server's
WebSocket pings, so the server keeps it: only the client can tell.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from playwright.async_api import BrowserContext, expect

from tests.support.browser import RECEIVED, RECORD_PEER_CONNECTIONS, join_link, watch_errors
from tests.support.process import ServeProcess, ok

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="package")]

# After RECORD_PEER_CONNECTIONS (whose record of messages still sees them all).
SILENCEABLE = """
window.__sent = [];
const Recorded = window.WebSocket;
window.WebSocket = class extends Recorded {
  constructor(...args) {
    super(...args);
    // Registered before the page's own listener: it hears nothing once silent.
    this.addEventListener("message", (event) => {
      if (this.silent) event.stopImmediatePropagation();
    });
  }
  send(data) {
    window.__sent.push({ socket: window.__sockets.indexOf(this), data: JSON.parse(data) });
    if (!this.silent) super.send(data);
  }
  silence() { this.silent = true; }
};
"""
SHIFTABLE = """
window.__shift = 0;
const realNow = Date.now;
Date.now = () => realNow() + window.__shift;
"""
SENT = "(type) => window.__sent.filter((s) => s.data.type === type).map((s) => s.socket)"
PONG_WITHIN_MS = 25_000  # web/static/js/call-watch.js
# After the clock's jump, a look at the socket within 1 s, then 1 s to the first retry,
# and the join: about 2.5 s. The bound is wide for a loaded machine (a new socket's
# join took seconds beside two CPU hogs); without the check it never comes.
BACK_WITHIN_S = 20


async def test_a_socket_that_answers_no_ping_is_given_up_for_a_new_one(
        browser: BrowserContext, serve: ServeProcess, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    serve.wait_ready()
    job_id = ok(data_dir, "job", "create", "Boiler hums").strip()
    errors: list[str] = []
    customer = await browser.new_page()
    watch_errors(customer, errors)
    await customer.add_init_script(SHIFTABLE + RECORD_PEER_CONNECTIONS + SILENCEABLE)
    await customer.goto(join_link(serve, data_dir, job_id, "customer"))
    await customer.locator('[data-action="join"]').click()
    status = customer.locator('[data-region="status"]')
    await expect(status).to_have_text("Connected")
    first = (await customer.evaluate(RECEIVED, "joined"))[0]

    # Alone in the call, nothing comes for a while: a ping goes out, and its pong
    # comes back on the same socket, which stays.
    async with asyncio.timeout(15):
        while not await customer.evaluate(RECEIVED, "pong"):
            await asyncio.sleep(0.2)
    assert set(await customer.evaluate(SENT, "ping")) == {0}
    assert await customer.evaluate("() => window.__sockets.length") == 1

    # The socket goes silent: its next ping goes unanswered...
    pings = len(await customer.evaluate(SENT, "ping"))
    await customer.evaluate("() => window.__sockets[0].silence()")
    async with asyncio.timeout(15):
        while len(await customer.evaluate(SENT, "ping")) == pings:
            await asyncio.sleep(0.2)
    # ...not given up before its answer is due...
    await asyncio.sleep(1.5)
    assert await customer.evaluate("() => window.__sockets.length") == 1
    # ...and, 25 s later by the page's clock, given up for a new one, which takes the
    # participant's place.
    silenced = time.monotonic()
    await customer.evaluate(f"() => {{ window.__shift = {PONG_WITHIN_MS}; }}")
    async with asyncio.timeout(BACK_WITHIN_S):
        while len(joined := await customer.evaluate(RECEIVED, "joined")) < 2:
            await asyncio.sleep(0.2)
    back_s = time.monotonic() - silenced
    assert joined[1]["resumed"] is True, joined[1]
    assert joined[1]["you"]["id"] == first["you"]["id"]
    await expect(status).to_have_text("Connected")
    assert errors == [], errors
    print(f"the page was back in the call {back_s:.1f} s after its clock said the ping "
          f"was due")
