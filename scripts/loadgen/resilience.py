"""The resilience benchmark: a call through real outages, and how soon it is live again.

An expert (a ``Keeper`` on this machine) and a customer (a ``Keeper`` in a network
namespace of its own, tests/support/netns.py) are in one call through ``videoassist
serve``, bound to this machine's end of the namespace's veth pair, so that every
packet between the customer and anyone crosses the pair. Each publishes a
``TaggedCamera`` and a microphone; each frame's tag says when it was sent
(loadgen/frames.py). Scenarios (``kind-SECONDS`` where a length applies):

- ``stall-S``: the server process is stopped (SIGSTOP) for S seconds, then resumed;
- ``offline-S``: the customer's link is cut (its interface down) for S seconds;
- ``move``: the customer's address moves to another veth pair (another /24), and its
  browser is taken to see it at once (its socket given up as lost);
- ``drop-S``: the customer's link drops to 100 kbit/s each way for S seconds;
- ``thin``: one window at 300 kbit/s with 10 % loss each way (not repeated);
- ``thin-phone``: the same window with the customer the real join page in Chromium,
  in the namespace, whose own adaptation chooses its mode (stills, below a floor):
  the modes taken, the stills' rate and size, the audio each second
  (loadgen/thinphone.py);
- ``reload``: the customer is Debian's Chromium on the join page instead, and reloads
  it (loadgen/reload.py).

Each repetition starts from a steady call (new frames both ways), impairs, and from
the moment the network is back (``back_at``: the link restored, the server resumed,
the address moved, the rate restored) waits for each side's first frame that the
other sent at or after that moment. During the impairment the customer writes two
chat messages, and the expert two chat messages and two arrows on the customer's
video; all must have reached the other side once the call settled (each chat line
once). After the video is back, the frames sent in the next 3 s that never arrived
are counted as lost. The method and the results: docs/performance.md.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import re
import signal
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any

import aiohttp

from loadgen import BenchError
from loadgen.choices import parse_scenario
from loadgen.frames import Arrivals, TaggedCamera, live_audio
from loadgen.keeper import Keeper
from loadgen.media import camera_clip
from loadgen.probes import percentile
from loadgen.server import ServerProcess, post_json
from tests.support import netns

logger = logging.getLogger("bench")

TARGETS_S = {"offline-5": 3.0, "stall-25": 5.0, "reload": 4.0}  # the issue's, p95
THIN_KBIT, THIN_LOSS_PERCENT, DROP_KBIT = 300, 10, 100
CUSTOMER_CAMERA, EXPERT_CAMERA = (640, 480), (640, 360)
# Bounds of a repetition's waits: wide, so that a slow recovery is measured rather than
# cut short; a side not back by then counts as "not back".
BACK_WITHIN_S = 60.0
SETTLE_S = 15.0      # messages not arrived this long after the video is back are lost
STEADY_WITHIN_S = 30.0
AFTER_S = 3.0        # frames sent in this long after the video is back, counted for loss
THIN_SETTLE_S = 2.0  # the start of a thin window not measured (queues drain)


@dataclass(frozen=True)
class Options:
    scenarios: tuple[str, ...]
    repetitions: int
    thin_seconds: float
    socket_ping: bool = True  # False: the keepers as the web client before it pinged


@dataclass
class Call:
    expert: Keeper
    customer: Keeper  # runs on ``inside``'s loop: call its coroutines with inside.run
    expert_camera: TaggedCamera
    customer_camera: TaggedCamera


@dataclass
class Sent:
    """What each side wrote during one impairment."""

    customer_chat: list[str] = field(default_factory=list)
    expert_chat: list[str] = field(default_factory=list)
    shapes: list[str] = field(default_factory=list)
    shapes_not_sent: int = 0  # the expert's socket was not in the call: nothing drawn

    def lost(self, call: Call) -> dict[str, int]:
        at_expert = collections.Counter(call.expert.chat.values())
        at_customer = collections.Counter(call.customer.chat.values())
        chat = [(text, at_expert) for text in self.customer_chat] + \
            [(text, at_customer) for text in self.expert_chat]
        return {"chat_sent": len(chat),
                "chat_lost": sum(seen[text] == 0 for text, seen in chat),
                "chat_duplicated": sum(max(0, seen[text] - 1) for text, seen in chat),
                "annotations_sent": len(self.shapes),
                "annotations_lost": sum(s not in call.customer.shapes for s in self.shapes),
                "annotations_not_sent": self.shapes_not_sent}


class Bench:
    def __init__(self, options: Options, net: netns.Netns, inside: netns.Inside,
                 server: ServerProcess, http: aiohttp.ClientSession) -> None:
        self.options = options
        self.net = net
        self.inside = inside
        self.server = server
        self.http = http
        self.token = ""
        self.calls_opened = 0

    async def _api(self, path: str, body: dict[str, Any], token: str = "") -> Any:
        return await post_json(self.http, self.server.url, path, body, token)

    async def open_call(self) -> Call:
        if not self.token:
            session = await self._api("/api/session", {"username": self.server.username,
                                                       "password": self.server.password})
            self.token = session["token"]
        self.calls_opened += 1
        job = await self._api("/api/jobs", {"title": f"bench resilience {self.calls_opened}"},
                              self.token)
        invite = await self._api(f"/api/jobs/{job['id']}/invites", {"role": "customer"},
                                 self.token)
        redeemed = await self._api("/api/invites/redeem",
                                   {"token": invite["url"].split("#", 1)[1]})
        expert_camera = TaggedCamera(camera_clip(*EXPERT_CAMERA, 60), publisher=1)
        customer_camera = TaggedCamera(camera_clip(*CUSTOMER_CAMERA, 60), publisher=2)
        expert = Keeper(self.server.url, self.token, int(job["id"]),
                        [expert_camera, live_audio()], "expert",
                        socket_ping=self.options.socket_ping)

        async def customer_keeper() -> Keeper:
            keeper = Keeper(self.server.url, redeemed["token"], None,
                            [customer_camera, live_audio()], "customer",
                            socket_ping=self.options.socket_ping)
            await keeper.start()
            return keeper

        await expert.start()
        try:
            customer = await self.inside.run(customer_keeper())
        except BaseException:
            await expert.close()
            raise
        return Call(expert, customer, expert_camera, customer_camera)

    async def close_call(self, call: Call) -> None:
        with contextlib.suppress(Exception):
            await self.inside.run(call.customer.close())
        await call.expert.close()

    async def steady(self, call: Call) -> bool:
        """Whether both sides get the other's new frames again (within 30 s)."""
        now = time.monotonic()
        deadline = now + STEADY_WITHIN_S
        while time.monotonic() < deadline:
            if call.expert.ready and call.customer.ready \
                    and call.expert.arrivals.first_new(call.customer_camera, now) \
                    and call.customer.arrivals.first_new(call.expert_camera, now):
                return True
            await asyncio.sleep(0.05)
        return False

    async def write(self, call: Call, sent: Sent, label: str) -> None:
        """Each side writes once: a chat line each, and an arrow of the expert's."""
        text = f"{label} from the customer"
        sent.customer_chat.append(text)
        await self.inside.run(call.customer.send_chat(text))
        text = f"{label} from the expert"
        sent.expert_chat.append(text)
        await call.expert.send_chat(text)
        target = customer_id(call)
        shape = re.sub(r"[^A-Za-z0-9_-]", "-", label)
        if target is not None and await call.expert.annotate(target, shape):
            sent.shapes.append(shape)
        else:
            sent.shapes_not_sent += 1

    @staticmethod
    async def settle(call: Call, sent: Sent, deadline: float) -> None:
        """Until everything written arrived, or the deadline."""
        while time.monotonic() < deadline:
            lost = sent.lost(call)
            if not lost["chat_lost"] and not lost["annotations_lost"]:
                return
            await asyncio.sleep(0.1)

    async def scenario(self, name: str) -> dict[str, Any]:
        kind, seconds = parse_scenario(name)
        repetitions = 1 if kind == "thin" else self.options.repetitions
        samples: list[dict[str, Any]] = []
        logger.info("%s: opening a call", name)
        call = await self.open_call()
        reopened = 0
        try:
            for rep in range(repetitions):
                if not await self.steady(call):
                    logger.warning("%s: the call was not steady again within %.0f s; a new "
                                   "call", name, STEADY_WITHIN_S)
                    reopened += 1
                    await self.close_call(call)
                    call = await self.open_call()
                if kind == "thin":
                    sample = await self.thin(call)
                else:
                    sample = await self.outage(call, kind, seconds, f"{name} {rep + 1}")
                samples.append(sample)
                logger.info("%s %d/%d: %s", name, rep + 1, repetitions, short(sample))
        finally:
            self.net.unlimited()
            self.net.no_loss()
            await self.close_call(call)
        result = summarise(samples) if kind != "thin" else samples[0]
        result["calls_reopened"] = reopened
        if name in TARGETS_S:
            result["target_p95_s"] = TARGETS_S[name]
        return result

    async def impair(self, kind: str, seconds: float, call: Call,
                     during: Callable[[int], Awaitable[None]]) -> float:
        """Impair, write (``during``) twice meanwhile, end it; the moment it ended."""
        if kind == "offline":
            self.net.cut()
        elif kind == "stall":
            os.kill(self.server.pid, signal.SIGSTOP)
        elif kind == "drop":
            self.net.rate(DROP_KBIT)
        elif kind == "move":
            self.net.move_client()
            await self.inside.run(call.customer.network_changed())
        try:
            await during(1)
            await asyncio.sleep(seconds / 2)
            await during(2)
            await asyncio.sleep(seconds / 2)
        finally:
            if kind == "offline":
                self.net.restore()
            elif kind == "stall":
                os.kill(self.server.pid, signal.SIGCONT)
            elif kind == "drop":
                self.net.unlimited()
        return time.monotonic()

    async def outage(self, call: Call, kind: str, seconds: float, label: str) -> dict[str, Any]:
        sent = Sent()
        start = time.monotonic()
        during_start, during_end = start, start + seconds
        back_at = await self.impair(kind, seconds, call,
                                    lambda n: self.write(call, sent, f"{label} #{n}"))
        # Seen from each side: the other's first frame sent after the network's return.
        sides = {"expert": (call.expert.arrivals, call.customer_camera),
                 "customer": (call.customer.arrivals, call.expert_camera)}
        firsts: dict[str, float | None] = dict.fromkeys(sides)
        deadline = back_at + BACK_WITHIN_S
        while time.monotonic() < deadline and None in firsts.values():
            for side, (arrivals, camera) in sides.items():
                firsts[side] = firsts[side] or arrivals.first_new(camera, back_at)
            await asyncio.sleep(0.05)
        back = max((t for t in firsts.values() if t is not None), default=back_at)
        await self.settle(call, sent, back + SETTLE_S)
        await asyncio.sleep(max(0.0, back + AFTER_S + 1.0 - time.monotonic()))
        sample: dict[str, Any] = {
            "back_s": None if None in firsts.values() else round(back - back_at, 3)}
        frames_sent = frames_lost = 0
        for side, (arrivals, camera) in sides.items():
            first = firsts[side]
            sample[f"{side}_back_s"] = None if first is None else round(first - back_at, 3)
            keyframe = arrivals.first_new(camera, back_at, keyframe=True)
            sample[f"{side}_keyframe_s"] = None if keyframe is None \
                else round(keyframe - back_at, 3)
            if first is not None:
                count, got = arrivals.delivered(camera, first, first + AFTER_S)
                frames_sent += count
                frames_lost += count - got
        sample.update(frames_sent_after=frames_sent, frames_lost_after=frames_lost)
        if kind == "drop":
            count, got = call.expert.arrivals.delivered(call.customer_camera, during_start,
                                                        during_end)
            sample["fps_during"] = round(got / seconds, 2)
        sample.update(sent.lost(call))
        customer = call.customer
        joins = [(at, resumed) for at, resumed in customer.joins if at > start]
        sample["customer_socket"] = ("kept" if not joins else
                                     f"rejoined {joins[0][0] - back_at:+.1f} s"
                                     f"{'' if joins[0][1] else ' as a new participant'}")
        sample["media_restarts"] = sum(at > start for at in [*customer.restarts,
                                                             *call.expert.restarts])
        return sample

    async def thin(self, call: Call) -> dict[str, Any]:
        """One window on a thin, lossy link: what each side still got of the other."""
        seconds = self.options.thin_seconds
        sent = Sent()
        self.net.rate(THIN_KBIT)
        self.net.loss(THIN_LOSS_PERCENT)
        start = time.monotonic()
        try:
            await self.write(call, sent, "thin #1")
            await asyncio.sleep(seconds / 2)
            await self.write(call, sent, "thin #2")
            await asyncio.sleep(seconds / 2)
        finally:
            dropped = self.net.dropped()
            end = time.monotonic()
            self.net.no_loss()
            self.net.unlimited()
        await self.settle(call, sent, end + SETTLE_S)
        window = (start + THIN_SETTLE_S, end)
        result: dict[str, Any] = {"kbit": THIN_KBIT, "loss_percent": THIN_LOSS_PERCENT,
                                  "seconds": round(window[1] - window[0], 1),
                                  "packets_dropped_by_loss": dropped,
                                  # Neither the server nor the client has a still-image
                                  # mode yet: the video is the only mode there is.
                                  "mode": None}
        for side, arrivals, camera, size in (
                ("expert", call.expert.arrivals, call.customer_camera, CUSTOMER_CAMERA),
                ("customer", call.customer.arrivals, call.expert_camera, EXPERT_CAMERA)):
            result[f"{side}_gets"] = link_quality(arrivals, camera, *window, size)
        result.update(sent.lost(call))
        return result


def link_quality(arrivals: Arrivals, camera: TaggedCamera, start: float, end: float,
                 size: tuple[int, int]) -> dict[str, Any]:
    """What a viewer got of a camera (and of the same side's microphone) in a window."""
    seconds = end - start
    count, got = arrivals.delivered(camera, start, end)
    stills = arrivals.keyframe_arrivals(camera, start, end)
    edges = [start, *stills, end]
    audio = [t for t in list(arrivals.audio) if start <= t < end]
    audio_edges = [start, *audio, end]
    return {"picture": f"{size[0]}x{size[1]}",
            "fps": round(got / seconds, 2), "frames_sent": count, "frames_got": got,
            "stills": len(stills),
            "longest_without_still_s": round(max(b - a for a, b in pairwise(edges)), 2),
            "audio_ratio": round(len(audio) / (seconds * 50), 3),
            "longest_audio_gap_s": round(max(b - a for a, b in pairwise(audio_edges)), 2)}


def customer_id(call: Call) -> int | None:
    """The customer's participant id as the expert knows it, or the customer's own."""
    ids = [pid for pid, p in call.expert.others.items() if p.get("role") == "customer"]
    return max(ids) if ids else call.customer.participant_id


def summarise(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Percentiles of each time, sums of each count, and the samples themselves."""
    result: dict[str, Any] = {"repetitions": len(samples)}
    for key in ("back_s", "expert_back_s", "customer_back_s", "expert_keyframe_s",
                "customer_keyframe_s"):
        values = [s[key] for s in samples if s.get(key) is not None]
        result[key] = {"p50": percentile(values, 50), "p95": percentile(values, 95),
                       "max": round(max(values), 2) if values else None,
                       "not_back": sum(s.get(key) is None for s in samples)}
    for key in ("frames_sent_after", "frames_lost_after", "chat_sent", "chat_lost",
                "chat_duplicated", "annotations_sent", "annotations_lost",
                "annotations_not_sent", "media_restarts"):
        result[key] = sum(s[key] for s in samples)
    if samples and "fps_during" in samples[0]:
        result["fps_during_p50"] = percentile([s["fps_during"] for s in samples], 50)
    result["customer_socket"] = dict(collections.Counter(s["customer_socket"].split(" ")[0]
                                                         for s in samples))
    result["samples"] = samples
    return result


def short(sample: dict[str, Any]) -> str:
    keys = ("back_s", "expert_back_s", "customer_back_s", "chat_lost", "annotations_lost",
            "customer_socket", "fps_during")
    found = {k: sample[k] for k in keys if k in sample}
    for side in ("expert_gets", "customer_gets"):
        if side in sample:
            found[side] = {k: sample[side][k] for k in ("fps", "stills", "audio_ratio")}
    return " ".join(f"{k}={v}" for k, v in found.items())


def bench_env(address: str) -> dict[str, str]:
    """The bench server's settings: media on the namespace pair's address; clients from
    the pairs' range; no drain on the way out. Every veth pair of the run leaves an
    address on this machine, which the expert's peer connection (on this machine)
    offers as a candidate: the default cap of 32 candidates a connection (which
    other tests' namespaces, made meanwhile, also fill) is lifted for the bench's
    server only."""
    return {"VIDEOASSIST_MEDIA_ADDRESSES": address,
            "VIDEOASSIST_ICE_ALLOWED_PEERS": f"127.0.0.0/8,::1,{netns.SUBNETS}",
            "VIDEOASSIST_ICE_MAX_CANDIDATES": "1000",
            "VIDEOASSIST_DRAIN_TIMEOUT_S": "0"}


async def run_network(options: Options, names: list[str], workdir: Path,
                      http: aiohttp.ClientSession) -> dict[str, Any]:
    reason = netns.unavailable(loss=True)
    if reason is not None:
        raise BenchError(f"the network scenarios need namespaces: {reason}")
    results: dict[str, Any] = {}
    with netns.Netns() as net, net.inside() as inside:
        server = ServerProcess("forward", workdir, host=net.server_address,
                               env=bench_env(net.server_address))
        try:
            server.start()
            await server.wait_ready(http)
            bench = Bench(options, net, inside, server, http)
            for name in names:
                if name == "thin-phone":
                    from loadgen import thinphone  # Playwright, only when a browser is needed

                    logger.info("thin-phone: the join page in Chromium, in the namespace")
                    results[name] = await thinphone.run(net, server, workdir,
                                                        options.thin_seconds, http)
                    logger.info("thin-phone: %s", thinphone.short(results[name]))
                else:
                    results[name] = await bench.scenario(name)
        finally:
            with contextlib.suppress(ProcessLookupError):
                if server.proc is not None:
                    os.kill(server.pid, signal.SIGCONT)  # never leave it stopped
            server.stop()
    return results


async def run(options: Options) -> dict[str, Any]:
    from loadgen import reload  # Playwright, only when a browser is needed

    load_before = os.getloadavg()
    results: dict[str, Any] = {}
    network = [n for n in options.scenarios if n != "reload"]
    with tempfile.TemporaryDirectory(prefix="videoassist-bench-") as tmp:
        async with aiohttp.ClientSession() as http:
            if network:
                (Path(tmp) / "net").mkdir()
                results.update(await run_network(options, network, Path(tmp) / "net", http))
            if "reload" in options.scenarios:
                (Path(tmp) / "reload").mkdir()
                results["reload"] = await reload.run(options.repetitions, Path(tmp) / "reload",
                                                     http)
    return {"benchmark": "resilience", "repetitions": options.repetitions,
            "socket_ping": options.socket_ping,
            "scenarios": {name: results[name] for name in options.scenarios},
            "load_before": [round(x, 2) for x in load_before],
            "load_after": [round(x, 2) for x in os.getloadavg()],
            "cpu_count": os.cpu_count()}
