"""Participants of a call as the server sees them, and the baseline's direct pair.

A ``Participant`` does what the web client does: /ws, ``auth``, one RTCPeerConnection
whose first offer carries what it publishes, answers to the server's offers. A
``Camera`` it publishes hears the server's keyframe requests; other server messages
go to ``on_message``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import aiohttp
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCPeerConnection,
    RTCSessionDescription,
)

from loadgen import BenchError
from loadgen.media import (
    Camera,
    FrameSink,
    PacketCount,
    Viewer,
    audio_track,
    count_packets,
    tap_tracks,
    video_track,
)
from videoassist.media import aiortc_hooks

logger = logging.getLogger("bench")


class Participant:
    def __init__(self, http: aiohttp.ClientSession, server_url: str, token: str,
                 job_id: int, tracks: Sequence[MediaStreamTrack],
                 sink: FrameSink | None = None,
                 on_message: Callable[[dict[str, Any]], None] | None = None,
                 packets: PacketCount | None = None) -> None:
        self.http = http
        self.server_url = server_url
        self.token = token
        self.job_id = job_id
        self.tracks = tracks
        self.on_message = on_message
        self.id: int | None = None  # the participant id, once joined
        self.joined_at: float | None = None  # time.monotonic() when ``joined`` came
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        if sink is not None:
            tap_tracks(self.pc, sink)
        if packets is not None:
            count_packets(self.pc, packets)
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self._answer: asyncio.Future[None] | None = None
        self._pump_task: asyncio.Task[None] | None = None

    async def join(self, within: float = 20.0) -> None:
        """Join the job's call and negotiate media; the server's offers follow."""
        async with asyncio.timeout(within):
            self.ws = await self.http.ws_connect(self.server_url + "/ws",
                                                 headers={"Origin": self.server_url})
            await self.ws.send_json({"type": "auth", "token": self.token, "job": self.job_id})
            joined = await self.ws.receive_json()
            if joined.get("type") != "joined":
                raise BenchError(f"joining job {self.job_id} failed: {joined}")
            self.joined_at = time.monotonic()
            self.id = joined["you"]["id"]
            self._pump_task = asyncio.create_task(self._pump())
            for track in self.tracks:
                transceiver = self.pc.addTransceiver(track, direction="sendonly")
                if isinstance(track, Camera):
                    aiortc_hooks.on_keyframe_request(transceiver.sender,
                                                     track.keyframe_requested)
            if not self.tracks:  # a viewer only: one recvonly transceiver makes an offer
                self.pc.addTransceiver("video", direction="recvonly")
            await self.pc.setLocalDescription(await self.pc.createOffer())
            self._answer = asyncio.get_running_loop().create_future()
            await self.ws.send_json({"type": "sdp.offer", "sdp": self.pc.localDescription.sdp})
            await self._answer

    async def _pump(self) -> None:
        """Server messages, in order: an answer is applied before the next offer."""
        assert self.ws is not None
        async for msg in self.ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                break
            message = msg.json()
            kind = message.get("type")
            if kind == "sdp.answer" and self._answer is not None and not self._answer.done():
                await self.pc.setRemoteDescription(RTCSessionDescription(message["sdp"], "answer"))
                self._answer.set_result(None)
            elif kind == "sdp.offer":
                await self.pc.setRemoteDescription(RTCSessionDescription(message["sdp"], "offer"))
                await self.pc.setLocalDescription(await self.pc.createAnswer())
                await self.ws.send_json({"type": "sdp.answer", "sdp": self.pc.localDescription.sdp})
            elif kind == "error" and self._answer is not None and not self._answer.done():
                logger.warning("job %d: the server says %s", self.job_id, message)
                self._answer.set_exception(BenchError(f"offer refused: {message}"))
            elif self.on_message is not None:
                self.on_message(message)
            elif kind == "error":
                logger.warning("job %d: the server says %s", self.job_id, message)

    async def leave(self) -> None:
        with contextlib.suppress(Exception):
            if self.ws is not None and not self.ws.closed:
                await self.ws.send_json({"type": "leave"})
                await self.ws.close()
        if self._pump_task is not None:
            self._pump_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._pump_task
        await self.pc.close()


class DirectPair:
    """A publisher and a viewer like the others, connected to each other without the
    server: the same clip, tracks, tap and event loop, one hop instead of two."""

    def __init__(self, clip: tuple[bytes, ...], audio: bool) -> None:
        self.track = video_track(clip)
        self.viewer = Viewer(self.track, clip)
        self.sender = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.receiver = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        tap_tracks(self.receiver, self.viewer.on_frame)
        for track in [self.track, *([audio_track()] if audio else [])]:
            self.sender.addTransceiver(track, direction="sendonly")

    async def start(self) -> None:
        await self.sender.setLocalDescription(await self.sender.createOffer())
        await self.receiver.setRemoteDescription(self.sender.localDescription)
        await self.receiver.setLocalDescription(await self.receiver.createAnswer())
        await self.sender.setRemoteDescription(self.receiver.localDescription)

    async def close(self) -> None:
        await self.sender.close()
        await self.receiver.close()
