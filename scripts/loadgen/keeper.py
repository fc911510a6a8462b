"""A participant that keeps its call going as the web client does (web/static/js/call.js,
docs/protocol.md "Coming back"), in aiortc: the resilience benchmark's customer and
expert.

What it copies from the web client, rule for rule:

- a socket that closes (any code but 1000, 4401, 4403, 4410) is opened again after 1,
  2, 4, 8, then 10 s, with the same token, ``resume`` (the participant it was) and
  ``chat_after`` (its newest chat message); the server's WebSocket pings are answered
  (as browsers do). A socket in the call that received nothing for 4 s is sent a
  ``ping``; if nothing comes within 25 s more, it is given up as lost, left open as it
  is (a browser keeps a socket whose network went away "open" until TCP gives up);
- on ``joined``: a resumed participant whose media connection still works keeps it;
  otherwise a new RTCPeerConnection with the same tracks, offered with
  ``"restart": true`` when resumed; the server's offers are ignored from then until
  that offer's answer;
- every second the media connection is looked at: failed, or not connected 20 s after
  it started, or "disconnected" for 4 s: replaced by a new one. aiortc has no
  ``disconnected`` state; Chromium's ICE reports it when nothing was received for
  2.5 s (its receiving timeout), so a connected peer connection that got no media
  for 2.5 s counts as disconnected here. An offer the server refuses is tried again
  from a new connection 2 s later;
- chat carries a ``client_id`` and is kept until it comes back from the server; what
  did not is sent again after ``joined``. Shapes are not resent.

What it does not copy: the page, and what a browser's network stack does by itself.
``network_changed`` stands for a browser that saw its address go: its socket given up
(as 1006) and its media connection failed at once (Chromium drops the ICE ports of a
network that is gone; a connection left with none fails). That is assumed, not
measured here: a browser that notices later comes back later.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import struct
import time
from collections.abc import Sequence
from typing import Any

import aiohttp
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.sdp import SessionDescription

from loadgen.frames import Arrivals
from loadgen.media import Camera
from videoassist.media import aiortc_hooks

logger = logging.getLogger("bench")

RETRY_DELAYS_S = (1, 2, 4, 8, 10)
WATCH_S = 1.0
DISCONNECTED_S = 4.0
CONNECT_S = 20.0
OFFER_RETRY_S = 2.0
RECEIVING_TIMEOUT_S = 2.5  # Chromium's ICE: nothing received for this long
PING_AFTER_S, PONG_WITHIN_S = 4.0, 25.0
ENDS = (1000, 4401, 4403, 4410)  # close codes after which the web client stops


class Keeper:
    def __init__(self, url: str, token: str, job_id: int | None,
                 tracks: Sequence[MediaStreamTrack], name: str, *,
                 socket_ping: bool = True) -> None:
        """``socket_ping``: False for the web client before it watched its socket
        (before ``ping`` after 4 s of silence), for comparison."""
        self.url = url
        self.socket_ping = socket_ping
        self.token = token
        self.job_id = job_id
        self.tracks = tracks
        self.name = name
        self.arrivals = Arrivals()
        self.participant_id: int | None = None
        self.others: dict[int, dict[str, Any]] = {}  # the others in the call, by id
        self.ready = False  # the current socket is in the call (its joined came)
        self.ended: int | None = None  # the close code that ended the call for it
        self.joins: list[tuple[float, bool]] = []  # (when, resumed) of each joined
        self.restarts: list[float] = []  # when each new media connection started
        self.chat: dict[int, str] = {}  # the chat messages it saw, by id
        self.unconfirmed: dict[str, str] = {}  # sent, not back yet: client_id -> text
        self.shapes: set[str] = set()  # ids of shapes drawn on its video it got
        # (arrival, header, JPEG bytes) of each still another participant sent
        self.stills: list[tuple[float, dict[str, Any], int]] = []
        self.modes: list[tuple[float, dict[str, Any]]] = []  # (arrival, media.mode)
        self.pc: RTCPeerConnection | None = None
        self.labels: dict[str, str] = {}  # mid -> the publication it carries
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._abandoned: list[aiohttp.ClientWebSocketResponse] = []
        self._http: aiohttp.ClientSession | None = None
        self._restarting = False
        self._answer_pc: RTCPeerConnection | None = None  # whose offer awaits its answer
        self._media_since = 0.0  # the watch's "since": set while connected
        self._connected_at = 0.0
        self._network_gone = False  # the media connection's address went away
        self._received_at = 0.0  # the current socket's last message (or its opening)
        self._pinged_at = 0.0
        self._dropped = asyncio.Event()
        self._tasks: list[asyncio.Task[Any]] = []
        self._over = False

    # -- what the benchmark calls (on this keeper's loop) --------------------------

    async def start(self, within: float = 30.0) -> None:
        """Join, and return once media flows both ways' first frame came in."""
        self._http = aiohttp.ClientSession()
        self._tasks.append(asyncio.create_task(self._socket_loop(), name=f"{self.name} ws"))
        self._tasks.append(asyncio.create_task(self._watch_loop(), name=f"{self.name} watch"))
        async with asyncio.timeout(within):
            while True:
                if self.ready and self.pc is not None \
                        and self.pc.connectionState == "connected":
                    return
                await asyncio.sleep(0.05)

    async def send_chat(self, text: str) -> None:
        client_id = secrets.token_hex(8)
        self.unconfirmed[client_id] = text
        if self.ready:
            await self._send({"type": "chat.message", "text": text, "client_id": client_id})

    async def annotate(self, target: int, shape_id: str) -> bool:
        """An arrow on ``target``'s video; False if the socket was not in the call (the
        web client then draws nothing that reaches anyone)."""
        if not self.ready:
            return False
        await self._send({"type": "annotation.add", "target": target, "shape": {
            "id": shape_id, "kind": "arrow", "points": [[0.2, 0.2], [0.6, 0.5]],
            "color": "#ff3b30", "width": 0.01}})
        return True

    async def network_changed(self) -> None:
        """The browser saw its address go: the socket is abandoned as it is, open
        (the retry schedule begins), and the media connection counts as failed."""
        self._network_gone = True
        self._dropped.set()

    def media_state(self) -> str:
        return "none" if self.pc is None else self.pc.connectionState

    async def close(self) -> None:
        self._over = True
        ws = self._ws
        if ws is not None and not ws.closed:
            with contextlib.suppress(Exception):
                await ws.send_json({"type": "leave"})
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for socket in [*self._abandoned, *([ws] if ws is not None else [])]:
            with contextlib.suppress(Exception):  # from an address that is gone, no
                async with asyncio.timeout(1):     # close is answered: aiohttp waits 10 s
                    await socket.close()
        if self.pc is not None:
            await self._close_pc(self.pc)
        if self._http is not None:
            await self._http.close()

    # -- the socket ----------------------------------------------------------------

    async def _socket_loop(self) -> None:
        tries = 0
        assert self._http is not None
        while not self._over:
            code = 1006
            try:
                ws = await self._http.ws_connect(self.url + "/ws", autoping=True,
                                                 headers={"Origin": self.url})
            except (aiohttp.ClientError, OSError) as exc:
                logger.debug("%s: connecting failed: %r", self.name, exc)
            else:
                self._ws = ws
                self._received_at, self._pinged_at = time.monotonic(), 0.0
                auth: dict[str, Any] = {"type": "auth", "token": self.token}
                if self.job_id is not None:
                    auth["job"] = self.job_id
                if self.participant_id is not None:
                    auth["resume"] = self.participant_id
                if self.chat:
                    auth["chat_after"] = max(self.chat)
                self._dropped.clear()
                reader = asyncio.create_task(self._read(ws, auth))
                dropped = asyncio.create_task(self._dropped.wait())
                await asyncio.wait({reader, dropped}, return_when=asyncio.FIRST_COMPLETED)
                dropped.cancel()
                if reader.done():
                    code = reader.result()
                else:
                    reader.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await reader
                    self._abandoned.append(ws)
                    self._ws = None
                    if not self._network_gone:  # given up for no pong: call.js closes
                        self._tasks.append(asyncio.create_task(ws.close()))  # it too
                if self.ready:
                    tries = 0
            self.ready = False
            if self._over:
                return
            if code in ENDS:
                logger.warning("%s: the call ended for it (close %s)", self.name, code)
                self.ended = code
                return
            delay = RETRY_DELAYS_S[min(tries, len(RETRY_DELAYS_S) - 1)]
            tries += 1
            await asyncio.sleep(delay)

    async def _read(self, ws: aiohttp.ClientWebSocketResponse, auth: dict[str, Any]) -> int:
        """Authenticate, then handle the server's messages in order until the socket
        closes; its close code (1006 for a connection that broke)."""
        try:
            await ws.send_json(auth)
            async for msg in ws:
                if msg.type == aiohttp.WSMsgType.BINARY:  # a still (docs/protocol.md)
                    self._received_at = time.monotonic()
                    self._still(msg.data)
                    continue
                if msg.type != aiohttp.WSMsgType.TEXT:
                    break
                self._received_at = time.monotonic()
                await self._handle(msg.json())
        except (aiohttp.ClientError, OSError, ConnectionError) as exc:
            logger.debug("%s: socket broke: %r", self.name, exc)
        return ws.close_code or 1006

    def _still(self, frame: bytes) -> None:
        """Keep when a still came, its header and its JPEG's size."""
        if len(frame) < 2:
            return
        (length,) = struct.unpack_from(">H", frame)
        with contextlib.suppress(ValueError):
            header = json.loads(frame[2:2 + length])
            if isinstance(header, dict) and header.get("type") == "still":
                self.stills.append((self._received_at, header, len(frame) - 2 - length))

    async def _send(self, message: dict[str, Any]) -> None:
        ws = self._ws
        if ws is None or ws.closed:
            return
        with contextlib.suppress(aiohttp.ClientError, OSError, ConnectionError,
                                 RuntimeError):
            await ws.send_json(message)

    async def _handle(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == "joined":
            await self._joined(message)
        elif kind == "chat.message":
            self.chat[message["message"]["id"]] = message["message"]["text"]
            self.unconfirmed.pop(message.get("client_id", ""), None)
        elif kind == "annotation.add":
            if message.get("target") == self.participant_id:
                self.shapes.add(message["shape"]["id"])
        elif kind in ("participant.joined", "participant.back", "participant.away"):
            participant = message["participant"]
            self.others[participant["id"]] = participant
        elif kind == "media.mode":
            self.modes.append((time.monotonic(), message))
        elif kind == "participant.left":
            self.others.pop(message["participant"]["id"], None)
        elif kind == "sdp.answer":
            pc, self._answer_pc = self._answer_pc, None
            if pc is not None and pc is self.pc:
                self._restarting = False
                with contextlib.suppress(Exception):
                    await pc.setRemoteDescription(RTCSessionDescription(message["sdp"],
                                                                        "answer"))
        elif kind == "sdp.offer":
            if self._restarting or self.pc is None:
                return  # the replaced session's: the new one's come after its answer
            await self._answer_offer(self.pc, message["sdp"])
        elif kind == "error":
            if message.get("ref") == "sdp.offer" and self._answer_pc is not None:
                logger.info("%s: offer refused: %s", self.name, message.get("code"))
                pc, self._answer_pc = self._answer_pc, None
                self._tasks.append(asyncio.create_task(self._retry_offer(pc)))
            elif message.get("code") != "rate_limited":
                logger.info("%s: the server says %s", self.name, message)

    async def _joined(self, message: dict[str, Any]) -> None:
        resumed = bool(message.get("resumed"))
        self.participant_id = message["you"]["id"]
        self.others = {p["id"]: p for p in message["participants"]}
        self.ready = True
        self.joins.append((time.monotonic(), resumed))
        for line in message.get("chat", []):
            self.chat[line["id"]] = line["text"]
        for shape in message.get("annotations", []):
            if shape["target"] == self.participant_id:
                self.shapes.add(shape["shape"]["id"])
        for client_id, text in list(self.unconfirmed.items()):
            await self._send({"type": "chat.message", "text": text, "client_id": client_id})
        if resumed and self.pc is not None and self._working() and not self._restarting:
            return  # it goes on, on this socket
        self._restarting = True  # the server's offers are the old session's from now
        self._tasks.append(asyncio.create_task(self._start_media(restart=resumed)))

    # -- media ---------------------------------------------------------------------

    def _working(self) -> bool:
        """Connected, and not "disconnected" as Chromium would say (nothing received
        for its receiving timeout)."""
        if self.pc is None or self.pc.connectionState != "connected" or self._network_gone:
            return False
        last = max(self.arrivals.last, self._connected_at)
        return time.monotonic() - last < RECEIVING_TIMEOUT_S

    async def _start_media(self, restart: bool) -> None:
        old, self.pc = self.pc, None
        self._restarting = True
        self._answer_pc = None
        if old is not None:
            await self._close_pc(old)
        if self._over or not self.ready:
            return
        # aiortc's own, ending quietly when it is closed while it connects (a restart).
        pc = aiortc_hooks.PeerConnection(RTCConfiguration(iceServers=[]))
        self.pc = pc
        self._network_gone = False
        self.labels.clear()
        self._media_since = time.monotonic()
        self._connected_at = 0.0
        self.restarts.append(self._media_since)

        @pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            transceiver = next(t for t in pc.getTransceivers() if t.receiver.track is track)
            mid = transceiver.mid or ""

            def sink(codec: str, data: bytes, timestamp: int) -> None:
                self.arrivals.on_frame(codec, data, timestamp, self.labels.get(mid, ""))

            aiortc_hooks.tap_receiver(transceiver.receiver, sink)

        @pc.on("connectionstatechange")
        def on_state() -> None:
            if pc.connectionState == "connected":
                self._connected_at = time.monotonic()

        for track in self.tracks:
            transceiver = pc.addTransceiver(track, direction="sendonly")
            if isinstance(track, Camera):
                aiortc_hooks.on_keyframe_request(transceiver.sender, track.keyframe_requested)
        await pc.setLocalDescription(await pc.createOffer())
        if pc is not self.pc:  # another new connection came meanwhile
            await self._close_pc(pc)
            return
        self._answer_pc = pc
        await self._send({"type": "sdp.offer", "sdp": pc.localDescription.sdp,
                          **({"restart": True} if restart else {})})

    async def _answer_offer(self, pc: RTCPeerConnection, sdp: str) -> None:
        try:
            await pc.setRemoteDescription(RTCSessionDescription(sdp, "offer"))
            for media in SessionDescription.parse(sdp).media:
                if media.rtp.muxId and media.msid and " " in media.msid:
                    self.labels[media.rtp.muxId] = media.msid.split()[1]
            await pc.setLocalDescription(await pc.createAnswer())
        except Exception as exc:  # the watch replaces a connection that is broken
            logger.info("%s: the server's offer failed: %r", self.name, exc)
            return
        await self._send({"type": "sdp.answer", "sdp": pc.localDescription.sdp})

    async def _retry_offer(self, pc: RTCPeerConnection) -> None:
        await asyncio.sleep(OFFER_RETRY_S)
        if pc is self.pc and self.ready:
            await self._start_media(restart=True)

    async def _close_pc(self, pc: RTCPeerConnection) -> None:
        """Closed (its senders first: they stop reading the tracks, which the next
        connection reads) before anything else, within a few seconds whatever the
        network."""
        with contextlib.suppress(Exception):
            async with asyncio.timeout(5):
                await pc.close()

    async def _watch_socket(self) -> None:
        """A socket in the call that answers no ping is given up (``call-watch.js``)."""
        if not self.socket_ping or not self.ready or self._dropped.is_set():
            return
        now = time.monotonic()
        if self._pinged_at > self._received_at:
            if now - self._pinged_at >= PONG_WITHIN_S:
                logger.info("%s: no pong: the socket is given up", self.name)
                self._dropped.set()
        elif now - self._received_at >= PING_AFTER_S:
            self._pinged_at = now
            await self._send({"type": "ping"})

    async def _watch_loop(self) -> None:
        while not self._over:
            await asyncio.sleep(WATCH_S)
            await self._watch_socket()
            pc = self.pc
            if pc is None:
                continue
            now = time.monotonic()
            state = "failed" if self._network_gone else pc.connectionState
            if state in ("failed", "closed"):
                if self.ready:
                    logger.info("%s: media %s: a new connection", self.name, state)
                    await self._start_media(restart=True)
                else:
                    await self._close_pc(pc)
                    if pc is self.pc:
                        self.pc = None
                continue
            if not self.ready:
                continue
            if state == "connected" and self._working():
                self._media_since = now
                continue
            limit = DISCONNECTED_S if state == "connected" else CONNECT_S
            if now - self._media_since > limit:
                logger.info("%s: media %s for %.0f s: a new connection", self.name,
                            "disconnected" if state == "connected" else state, limit)
                await self._start_media(restart=True)
