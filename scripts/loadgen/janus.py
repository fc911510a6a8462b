"""Debian's Janus (1.1) as the relay's other server: its videoroom plugin over its HTTP
transport, a child process with a configuration of its own in a temporary directory.

The same calls as on videoassist: a call is a videoroom room; its publisher joins as a
publisher and publishes (its offer with the ``publish`` request, Janus's answer in the
``configured`` event); a viewer is a subscriber to the publisher's feed (``join`` as a
subscriber, Janus's offer in the ``attached`` event, the viewer's answer with
``start``). Each participant has a Janus session of its own, as a browser would, with a
long poll for its events and a keepalive. Both sides put every candidate in their
SDP (``"trickle": false``), as aiortc does. The API: Janus's ``janus_videoroom.c`` and
its "RESTful, HTTP" API documentation.

Janus listens for HTTP on 127.0.0.1 only (no admin API, no other transport or
plugin), uses no STUN server, and gathers ICE candidates on the same addresses as the
load generator's aiortc peers (aioice's host addresses, this machine's own). Janus
never offers a loopback interface as a candidate (its ``ice.c`` skips them), and aioice
leaves 127.0.0.1 out whenever the machine has another address: so media between the
two goes to this machine's own address, never off it, as between the generator and
videoassist.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import secrets
import shutil
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiohttp
from aioice.ice import get_host_addresses
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCPeerConnection,
    RTCSessionDescription,
)

from loadgen import BenchError
from loadgen.media import FrameSink, PacketCount, count_packets, tap_tracks
from loadgen.server import ChildProcess, die_with_parent, free_port

logger = logging.getLogger("bench")

PLUGIN = "janus.plugin.videoroom"
KEEPALIVE_S = 25.0       # sessions time out after 60 s without a request
LONG_POLL_S = 30.0       # Janus answers a long poll with a keepalive after 30 s
EVENT_TIMEOUT_S = 20.0   # for the answer to an asynchronous request
RTP_PORTS = (20000, 40000)


def janus_binary() -> str | None:
    return shutil.which("janus") or next(
        (p for p in ("/usr/bin/janus", "/usr/sbin/janus") if Path(p).is_file()), None)


def module_folders() -> dict[str, Path]:
    """Where Debian's package put the plugins, transports, event handlers, loggers."""
    for base in [*sorted(Path("/usr/lib").glob("*/janus")), Path("/usr/lib/janus")]:
        if (base / "plugins").is_dir() and (base / "transports").is_dir():
            return {kind: base / kind for kind in ("plugins", "transports", "events",
                                                   "loggers")}
    raise BenchError("Janus's plugins are not installed (Debian package 'janus': "
                     "scripts/test installs it)")


def others(folder: Path, keep: str) -> str:
    """Every module of ``folder`` but ``keep``, for a ``disable`` line."""
    names = sorted({p.name.split(".so")[0] + ".so" for p in folder.glob("libjanus_*.so*")})
    return ",".join(name for name in names if name != keep)


def configuration(workdir: Path, port: int, ice_addresses: Sequence[str]) -> Path:
    """Write janus.jcfg and the videoroom's and HTTP transport's files into
    ``workdir``/conf; the folder."""
    conf = workdir / "conf"
    conf.mkdir()
    folders = module_folders()
    (conf / "janus.jcfg").write_text(f"""\
general: {{
    configs_folder = "{conf}"
    plugins_folder = "{folders['plugins']}"
    transports_folder = "{folders['transports']}"
    events_folder = "{folders['events']}"
    loggers_folder = "{folders['loggers']}"
    debug_level = 4
    debug_colors = false
    session_timeout = 60
    admin_secret = "{secrets.token_urlsafe(18)}"
}}
certificates: {{
}}
media: {{
    ipv6 = false
    rtp_port_range = "{RTP_PORTS[0]}-{RTP_PORTS[1]}"
}}
nat: {{
    nice_debug = false
    ice_enforce_list = "{','.join(ice_addresses)}"
}}
plugins: {{
    disable = "{others(folders['plugins'], 'libjanus_videoroom.so')}"
}}
transports: {{
    disable = "{others(folders['transports'], 'libjanus_http.so')}"
}}
loggers: {{
    disable = "{others(folders['loggers'], '')}"
}}
events: {{
    broadcast = false
}}
""")
    (conf / "janus.transport.http.jcfg").write_text(f"""\
general: {{
    json = "plain"
    base_path = "/janus"
    http = true
    port = {port}
    ip = "127.0.0.1"
    https = false
}}
admin: {{
    admin_http = false
    admin_https = false
}}
cors: {{
}}
""")
    (conf / "janus.plugin.videoroom.jcfg").write_text("""\
general: {
}
""")
    return conf


class JanusProcess(ChildProcess):
    """``janus`` as a child process; the same face as ``server.ServerProcess``."""

    name = "janus"

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/janus"
        self.log_path = workdir / "janus.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        binary = janus_binary()
        if binary is None:
            raise BenchError("no janus (Debian package 'janus': scripts/test installs it)")
        addresses = get_host_addresses(use_ipv4=True, use_ipv6=False)
        if not addresses:
            raise BenchError("no address for Janus's ICE candidates (it skips loopback)")
        conf = configuration(self.workdir, self.port, addresses)
        with self.log_path.open("wb") as out:
            self.proc = subprocess.Popen(
                [binary, "--configs-folder", str(conf), "--config", str(conf / "janus.jcfg")],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                cwd=self.workdir, preexec_fn=die_with_parent)


    async def wait_ready(self, http: aiohttp.ClientSession, within: float = 30.0) -> None:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            self.check_alive()
            with contextlib.suppress(aiohttp.ClientError, OSError, TimeoutError):
                async with http.get(self.url + "/info",
                                    timeout=aiohttp.ClientTimeout(total=2)) as response:
                    if response.status == 200:
                        info = await response.json(content_type=None)
                        if PLUGIN in info.get("plugins", {}):
                            return
                        raise BenchError(f"janus runs without {PLUGIN}: "
                                         f"{sorted(info.get('plugins', {}))}")
            await asyncio.sleep(0.1)
        raise BenchError(f"janus was not ready within {within:.0f} s; "
                         f"its last output:\n{self.output_tail()}")

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 10 s."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class JanusSession:
    """One Janus session over HTTP: requests, and a long poll that hands each event
    to whoever waits for its transaction (or its handle's ``webrtcup``)."""

    def __init__(self, http: aiohttp.ClientSession, url: str) -> None:
        self.http = http
        self.url = url
        self.id: int | None = None
        self._transactions = (f"t{n}" for n in itertools.count())
        self._waiting: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._webrtcup: dict[int, asyncio.Event] = {}
        self._tasks: list[asyncio.Task[None]] = []

    async def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        async with self.http.post(self.url + path, json=body) as response:
            answer: dict[str, Any] = await response.json(content_type=None)
        if response.status != 200 or answer.get("janus") == "error":
            raise BenchError(f"janus {body.get('janus')} {path}: {response.status} "
                             f"{answer.get('error', answer)}")
        return answer

    async def create(self) -> None:
        answer = await self._post("", {"janus": "create", "transaction": next(self._transactions)})
        self.id = int(answer["data"]["id"])
        self._tasks = [asyncio.create_task(self._poll()), asyncio.create_task(self._keepalive())]

    async def attach(self) -> int:
        answer = await self._post(f"/{self.id}", {
            "janus": "attach", "plugin": PLUGIN, "transaction": next(self._transactions)})
        handle = int(answer["data"]["id"])
        self._webrtcup[handle] = asyncio.Event()
        return handle

    async def request(self, handle: int, body: dict[str, Any]) -> dict[str, Any]:
        """A synchronous plugin request (``create``): the plugin's answer."""
        answer = await self._post(f"/{self.id}/{handle}", {
            "janus": "message", "body": body, "transaction": next(self._transactions)})
        data: dict[str, Any] = answer.get("plugindata", {}).get("data", {})
        if answer.get("janus") != "success" or "error_code" in data:
            raise BenchError(f"janus {body.get('request')}: {answer}")
        return data

    async def message(self, handle: int, body: dict[str, Any],
                      jsep: dict[str, Any] | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
        """An asynchronous plugin request: the event that answers it, and its JSEP."""
        transaction = next(self._transactions)
        future = asyncio.get_running_loop().create_future()
        self._waiting[transaction] = future
        message = {"janus": "message", "body": body, "transaction": transaction}
        if jsep is not None:
            message["jsep"] = jsep
        try:
            await self._post(f"/{self.id}/{handle}", message)  # "ack"
            async with asyncio.timeout(EVENT_TIMEOUT_S):
                event = await future
        finally:
            self._waiting.pop(transaction, None)
        data: dict[str, Any] = event.get("plugindata", {}).get("data", {})
        if "error_code" in data:
            raise BenchError(f"janus {body.get('request')}: {data.get('error')}")
        return data, event.get("jsep") or {}

    async def webrtcup(self, handle: int, within: float = EVENT_TIMEOUT_S) -> None:
        """Until Janus says the handle's PeerConnection is up (ICE and DTLS done)."""
        async with asyncio.timeout(within):
            await self._webrtcup[handle].wait()

    async def _poll(self) -> None:
        while True:
            try:
                async with self.http.get(
                        f"{self.url}/{self.id}", params={"maxev": "10"},
                        timeout=aiohttp.ClientTimeout(total=LONG_POLL_S + 10)) as response:
                    answer = await response.json(content_type=None)
            except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
                logger.debug("janus session %s: long poll failed (%r)", self.id, exc)
                await asyncio.sleep(0.2)
                continue
            for event in answer if isinstance(answer, list) else [answer]:
                self._dispatch(event)

    def _dispatch(self, event: dict[str, Any]) -> None:
        kind = event.get("janus")
        future = self._waiting.get(event.get("transaction", ""))
        if kind == "event" and future is not None and not future.done():
            future.set_result(event)
        elif kind == "webrtcup" and event.get("sender") in self._webrtcup:
            self._webrtcup[event["sender"]].set()
        elif kind == "hangup":
            logger.warning("janus session %s: hangup (%s)", self.id, event.get("reason"))

    async def _keepalive(self) -> None:
        while True:
            await asyncio.sleep(KEEPALIVE_S)
            with contextlib.suppress(aiohttp.ClientError, BenchError):
                await self._post(f"/{self.id}", {"janus": "keepalive",
                                                 "transaction": next(self._transactions)})

    async def destroy(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.id is not None:
            with contextlib.suppress(aiohttp.ClientError, BenchError):
                await self._post(f"/{self.id}", {"janus": "destroy",
                                                 "transaction": next(self._transactions)})


async def create_room(http: aiohttp.ClientSession, url: str, room: int) -> None:
    """A videoroom room for one call: one publisher, VP8 and Opus, no periodic keyframe
    requests (as videoassist, which asks only when a viewer needs one)."""
    session = JanusSession(http, url)
    await session.create()
    try:
        handle = await session.attach()
        await session.request(handle, {"request": "create", "room": room, "publishers": 1,
                                       "videocodec": "vp8", "audiocodec": "opus",
                                       "fir_freq": 0, "description": f"bench call {room}"})
    finally:
        await session.destroy()


class JanusParticipant:
    """A publisher (``tracks``) or a viewer (no tracks: a subscriber to ``feed``) of
    a room; the same face as ``peers.Participant``."""

    def __init__(self, http: aiohttp.ClientSession, url: str, room: int,
                 tracks: Sequence[MediaStreamTrack], sink: FrameSink | None = None,
                 packets: PacketCount | None = None, feed: int | None = None) -> None:
        self.session = JanusSession(http, url)
        self.room = room
        self.tracks = tracks
        self.feed = feed
        self.id: int | None = None  # a publisher's feed id, once joined
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        if sink is not None:
            tap_tracks(self.pc, sink)
        if packets is not None:
            count_packets(self.pc, packets)

    async def join(self, within: float = 20.0) -> None:
        """Publish and wait until Janus has the PeerConnection up (a subscription needs
        its publisher's), or subscribe and answer Janus's offer."""
        async with asyncio.timeout(within):
            await self.session.create()
            handle = await self.session.attach()
            if self.tracks:
                await self._publish(handle)
            else:
                await self._subscribe(handle)

    async def _publish(self, handle: int) -> None:
        joined, _ = await self.session.message(handle, {
            "request": "join", "ptype": "publisher", "room": self.room})
        self.id = int(joined["id"])
        for track in self.tracks:
            self.pc.addTransceiver(track, direction="sendonly")
        await self.pc.setLocalDescription(await self.pc.createOffer())
        offer = {"type": "offer", "sdp": self.pc.localDescription.sdp, "trickle": False}
        configured, answer = await self.session.message(handle, {"request": "publish"}, offer)
        if configured.get("configured") != "ok" or answer.get("type") != "answer":
            raise BenchError(f"janus publish: {configured}")
        await self.pc.setRemoteDescription(RTCSessionDescription(answer["sdp"], "answer"))
        await self.session.webrtcup(handle)

    async def _subscribe(self, handle: int) -> None:
        if self.feed is None:
            raise BenchError("a Janus viewer needs its publisher's feed")
        attached, offer = await self.session.message(handle, {
            "request": "join", "ptype": "subscriber", "room": self.room,
            "streams": [{"feed": self.feed}]})
        if attached.get("videoroom") != "attached" or offer.get("type") != "offer":
            raise BenchError(f"janus subscribe: {attached}")
        await self.pc.setRemoteDescription(RTCSessionDescription(offer["sdp"], "offer"))
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        answer = {"type": "answer", "sdp": self.pc.localDescription.sdp, "trickle": False}
        started, _ = await self.session.message(handle, {"request": "start"}, answer)
        if started.get("started") != "ok":
            raise BenchError(f"janus start: {started}")

    async def leave(self) -> None:
        """Destroy the session (Janus detaches its handles and hangs up), close the pc."""
        await self.session.destroy()
        await self.pc.close()
