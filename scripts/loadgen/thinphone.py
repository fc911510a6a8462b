"""The resilience benchmark's thin scenario: the customer is the real join page in
Debian's Chromium, run in the namespace (``ip netns exec``) so that all its traffic
crosses the shaped veth pair, the expert a ``Keeper`` on this machine. The page's own
adaptation (web/static/js/adapt.js) chooses its media mode; nothing here tells it to.

After a steady start (the expert gets the page's audio and video), the pair is held
at 300 kbit/s each way with 10 % of the packets lost on the link for the window
(``--thin-seconds``); meanwhile the page writes a chat line, and the expert a chat line
and an arrow on the page's video. What the expert got in the window is measured: the
modes the page took and why (``media.mode``), its stills (how often, how big), its
audio frames each second. Then the link is restored and the time until the page says
it is back to full video is taken, and everything written must have arrived.

Where a still's lateness comes from (``still_timeline``): the page's own record of when
it put each still on its socket and when the server's ``still.relayed`` came back, set
against when the server took it (the relayed header's ``at``: one machine, one clock),
and the page's TCP connections as ``ss`` sees them inside the namespace every 0.2 s
(retransmissions, the retransmission timeout and its backoff). The longest interval
between two stills is split into what the sender waited and what the link took.
"""

from __future__ import annotations

import asyncio
import logging
import re
import statistics
import time
from itertools import pairwise
from pathlib import Path
from typing import Any

from playwright.async_api import async_playwright, expect

from loadgen.keeper import Keeper
from loadgen.probes import percentile
from loadgen.reload import SEEN, customer_id, expert_and_link
from loadgen.server import ServerProcess
from tests.support import netns
from tests.support.browser import CHROMIUM, FLAGS, PHONE, open_chat

logger = logging.getLogger("bench")

THIN_KBIT, THIN_LOSS_PERCENT = 300, 10  # the thin link
SETUP_S = 30.0
BACK_WITHIN_S = 60.0  # to full video once the link is back: measured, not cut short
SETTLE_S = 15.0
STILL_EVERY_TARGET_S = 2.0  # issue 19: a readable still at least every 2 s
STILL_MIN_SIZE = (640, 480)
TCP_EVERY_S = 0.2  # how often the page's TCP connections are looked at

# The page's record of its stills (in its epoch milliseconds, the machine's clock): when
# each went on the socket, what the socket had not sent yet then, and when the server's
# still.relayed for it came. Wraps WebSocket.send; the client itself is untouched.
STILLS_RECORD = """(() => {
  window.__stills = {};
  const now = () => performance.timeOrigin + performance.now();
  const send = WebSocket.prototype.send;
  WebSocket.prototype.send = function (data) {
    try {  // the record's own trouble must never stop the client's send
      if (data instanceof Uint8Array) {
        const length = (data[0] << 8) | data[1];
        const header = JSON.parse(new TextDecoder().decode(data.subarray(2, 2 + length)));
        if (header.type === "still") {
          window.__stills[header.seq] = { sent: now(), queued: this.bufferedAmount };
        }
        if (!this.__stillsWatched) {
          this.__stillsWatched = true;
          this.addEventListener("message", (event) => {
            try {
              if (typeof event.data !== "string") return;
              const message = JSON.parse(event.data);
              const still = message.type === "still.relayed" && window.__stills[message.seq];
              if (still) still.relayed = now();
            } catch (error) { console.warn("bench: still record", error); }
          });
        }
      }
    } catch (error) { console.warn("bench: still record", error); }
    return send.call(this, data);
  };
})();"""


async def run(net: netns.Netns, server: ServerProcess, workdir: Path,
              seconds: float, http: Any) -> dict[str, Any]:
    """One thin window with the web client as the customer; the sample as a dict."""
    expert, invite = await expert_and_link(server, http, "bench thin")
    link = invite.split("#", 1)[1]
    wrapper = workdir / "chromium-in-namespace"
    wrapper.write_text(f'#!/bin/sh\nexec ip netns exec {net.name} {CHROMIUM} "$@"\n')
    wrapper.chmod(0o755)
    await expert.start()
    try:
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(
                executable_path=str(wrapper), headless=True,
                args=[*FLAGS, f"--unsafely-treat-insecure-origin-as-secure={server.url}"])
            try:
                context = await browser.new_context(viewport=PHONE, is_mobile=True,
                                                    has_touch=True)
                context.set_default_timeout(SETUP_S * 1000)
                page = await context.new_page()
                await page.add_init_script(STILLS_RECORD)
                errors: list[str] = []
                page.on("pageerror", lambda error: errors.append(str(error)))
                await page.goto(f"{server.url}/join#{link}")
                await page.locator('[data-action="join"]').tap()
                await expect(page.locator('[data-region="status"]')).to_have_text("Connected")
                async with asyncio.timeout(SETUP_S):
                    while True:  # the keeper's tap says nothing but what it kept
                        if expert.arrivals.untagged and expert.arrivals.audio:
                            break
                        await asyncio.sleep(0.05)
                sample = await window(net, expert, page, seconds, server.port)
                sample["page_errors"] = errors[:5]
                return sample
            finally:
                await browser.close()
    finally:
        await expert.close()


async def window(net: netns.Netns, expert: Keeper, page: Any,
                 seconds: float, port: int) -> dict[str, Any]:
    phone = customer_id(expert)
    tcp: list[tuple[float, dict[int, dict[str, int]]]] = []
    watcher = asyncio.create_task(watch_tcp(net, port, tcp))
    net.rate(THIN_KBIT)
    net.loss(THIN_LOSS_PERCENT, on_link=True)
    start = time.monotonic()
    customer_text, expert_text = "thin from the customer", "thin from the expert"
    drawn = False
    try:
        await asyncio.sleep(min(2.0, seconds / 4))
        # As a person does: Chat, type, send, back to the picture.
        await open_chat(page)
        await page.locator("[name=message]").fill(customer_text)
        await page.locator('[data-action="chat-send"]').tap()
        await page.locator('[data-action="panel"]').tap()
        await asyncio.sleep(max(0.0, start + seconds / 2 - time.monotonic()))
        await expert.send_chat(expert_text)
        drawn = phone is not None and await expert.annotate(phone, "thin-1")
        await asyncio.sleep(max(0.0, start + seconds - time.monotonic()))
    finally:
        dropped = net.dropped()
        end = time.monotonic()
        net.no_loss()
        net.unlimited()
        watcher.cancel()
    sample = measure(expert, start, end)
    sample["still_timeline"] = still_timeline(
        [h for at, h, _ in expert.stills if start <= at <= end],
        await page.evaluate("() => window.__stills"), tcp)
    sample.update(kbit=THIN_KBIT, loss_percent=THIN_LOSS_PERCENT,
                  seconds=round(end - start, 1), packets_dropped_by_loss=dropped)
    # Back to full video, as the page says (its media.mode), once the link is back.
    sample["back_to_video_s"] = None
    async with asyncio.timeout(BACK_WITHIN_S):
        while True:
            if expert.modes and expert.modes[-1][1]["mode"] == "video" \
                    and expert.modes[-1][0] > end:
                sample["back_to_video_s"] = round(expert.modes[-1][0] - end, 1)
                break
            if sample["mode"] == "video":  # it never left: nothing to come back from
                break
            await asyncio.sleep(0.1)
    deadline = time.monotonic() + SETTLE_S
    while True:
        lines, shapes = await page.evaluate(SEEN, expert_text)
        seen = list(expert.chat.values()).count(customer_text)
        if (lines and seen and shapes >= int(drawn)) or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.1)
    sample.update(chat_sent=2, chat_lost=int(lines == 0) + int(seen == 0),
                  chat_duplicated=max(0, lines - 1) + max(0, seen - 1),
                  annotations_sent=int(drawn), annotations_lost=int(drawn and shapes < 1),
                  annotations_not_sent=int(not drawn))
    return sample


def measure(expert: Keeper, start: float, end: float) -> dict[str, Any]:
    """What the expert got of the page between ``start`` and ``end``."""
    modes = [(at, m) for at, m in expert.modes if start <= at <= end]
    rank = {"video": 0, "reduced": 1, "stills": 2}
    worst = max((m["mode"] for _, m in modes), key=rank.__getitem__, default="video")
    stills_at = next((at for at, m in modes if m["mode"] == "stills"), None)
    sample: dict[str, Any] = {
        "mode": worst,
        "modes": [[round(at - start, 1), m["mode"], m["reason"]] for at, m in modes],
        "stills_mode_after_s": None if stills_at is None else round(stills_at - start, 1),
    }
    stills = [(at, header, size) for at, header, size in expert.stills
              if stills_at is not None and stills_at <= at <= end]
    intervals = [b[0] - a[0] for a, b in pairwise(stills)]
    sample["stills"] = len(stills)
    sample["still_interval_s"] = {
        "p50": percentile(intervals, 50), "max": round(max(intervals), 2) if intervals else None,
        "target_max": STILL_EVERY_TARGET_S}
    sample["still_sizes"] = sorted({f"{h['width']}x{h['height']}" for _, h, _ in stills})
    sample["still_bytes_avg"] = round(statistics.mean(s for _, _, s in stills)) if stills \
        else None
    sample["stills_readable"] = bool(stills) and all(
        h["width"] * h["height"] >= STILL_MIN_SIZE[0] * STILL_MIN_SIZE[1]
        and min(h["width"], h["height"]) >= min(STILL_MIN_SIZE) for _, h, _ in stills)
    # The page's audio, frames each whole second of the window after its first 2 s
    # (the impairment's own start: queues fill); 50 a second is all of it.
    audio = [at for at in expert.arrivals.audio if start + 2 <= at <= end]
    whole = int(end - start - 2)
    per_second = [sum(1 for at in audio if start + 2 + i <= at < start + 3 + i)
                  for i in range(whole)]
    sample["audio_frames_per_second"] = {
        "min": min(per_second) if per_second else None,
        "p50": percentile([float(n) for n in per_second], 50),
        "seconds_without": sum(1 for n in per_second if n == 0)}
    video = [at for at, _ in expert.arrivals.untagged if start <= at <= end]
    sample["video_frames"] = len(video)
    return sample


async def watch_tcp(net: netns.Netns, port: int,
                    into: list[tuple[float, dict[int, dict[str, int]]]]) -> None:
    """Every TCP_EVERY_S until cancelled: (the machine's time, by local port what ``ss``
    says of each of the page's connections to the server) into ``into``."""
    while True:
        try:
            out = await asyncio.to_thread(
                netns.run, "ip", "netns", "exec", net.name, "ss", "-tinH", "dport", f"= :{port}")
        except netns.CommandError:
            out = ""
        into.append((time.time(), parse_ss(out)))
        await asyncio.sleep(TCP_EVERY_S)


SS_FIELDS = {"rto": r"\brto:([0-9.]+)", "backoff": r"\bbackoff:(\d+)",
             "retrans": r"\bretrans:\d+/(\d+)", "bytes_sent": r"\bbytes_sent:(\d+)",
             "unacked": r"\bunacked:(\d+)"}


def parse_ss(out: str) -> dict[int, dict[str, int]]:
    """``ss -tinH`` (a socket's line, then its details' line): by local port, the
    fields of SS_FIELDS (0 when absent: no retransmission yet, say)."""
    sockets: dict[int, dict[str, int]] = {}
    port = None
    for line in out.splitlines():
        if not line.startswith((" ", "\t")):
            columns = line.split()
            port = int(columns[3].rsplit(":", 1)[1]) if len(columns) >= 5 else None
        elif port is not None:
            sockets[port] = {name: int(float(m[1])) if (m := re.search(pattern, line)) else 0
                             for name, pattern in SS_FIELDS.items()}
    return sockets


def still_timeline(headers: list[dict[str, Any]], page: dict[str, dict[str, float]],
                   tcp: list[tuple[float, dict[int, dict[str, int]]]]) -> dict[str, Any]:
    """The window's stills, from the page's send to the server's taking them: the
    intervals at each end, the time on the way, and for the longest interval at the
    server, what the sender waited and what the link took; the socket's TCP."""
    stills = [(h["seq"], page[str(h["seq"])]["sent"] / 1000, h["at"],
               page[str(h["seq"])].get("relayed"), page[str(h["seq"])]["queued"])
              for h in headers if str(h["seq"]) in page]
    if len(stills) < 2:
        return {"stills": len(stills)}
    transit = [at - sent for _, sent, at, _, _ in stills]
    pairs = list(pairwise(stills))
    longest = max(pairs, key=lambda pair: pair[1][2] - pair[0][2])
    (_, sent_a, at_a, relayed_a, _), (_, sent_b, at_b, _, queued_b) = longest
    # The page's socket to the server: the one that sent the most.
    last = tcp[-1][1] if tcp else {}
    ws = max(last, key=lambda p: last[p]["bytes_sent"], default=None)
    during = [(t, s[ws]) for t, s in tcp if ws in s]
    span = [s for t, s in during if sent_a - TCP_EVERY_S <= t <= at_b + TCP_EVERY_S]
    return {
        "stills": len(stills),
        "send_interval_s": {"p50": percentile([b[1] - a[1] for a, b in pairs], 50),
                            "max": round(max(b[1] - a[1] for a, b in pairs), 2)},
        "transit_s": {"p50": percentile(transit, 50), "max": round(max(transit), 2)},
        "longest": {
            "interval_s": round(at_b - at_a, 2),
            "send_interval_s": round(sent_b - sent_a, 2),
            "transit_before_s": round(at_a - sent_a, 2),
            "transit_s": round(at_b - sent_b, 2),
            "acknowledged_after_s": None if relayed_a is None
            else round(relayed_a / 1000 - sent_a, 2),
            "sent_after_acknowledgement_s": None if relayed_a is None
            else round(sent_b - relayed_a / 1000, 2),
            "socket_unsent_bytes_at_send": queued_b,
            "tcp_retransmits": (span[-1]["retrans"] - span[0]["retrans"]) if span else None,
            "tcp_rto_max_ms": max((s["rto"] for s in span), default=None),
            "tcp_backoff_max": max((s["backoff"] for s in span), default=None)},
        "tcp": {"retransmits": (during[-1][1]["retrans"] - during[0][1]["retrans"])
                if during else None,
                "rto_max_ms": max((s["rto"] for _, s in during), default=None),
                "backoff_max": max((s["backoff"] for _, s in during), default=None),
                "samples": len(during)},
    }


def short(sample: dict[str, Any]) -> str:
    return (f"mode={sample['mode']} after={sample['stills_mode_after_s']} "
            f"stills={sample['stills']} every={sample['still_interval_s']} "
            f"sizes={sample['still_sizes']} audio={sample['audio_frames_per_second']} "
            f"back_to_video_s={sample['back_to_video_s']} chat_lost={sample['chat_lost']} "
            f"annotations_lost={sample['annotations_lost']}")
