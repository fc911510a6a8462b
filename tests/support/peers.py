"""A real aiortc client of the server: signalling over /ws, media over loopback."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiortc import (
    RTCConfiguration,
    RTCIceServer,
    RTCPeerConnection,
    RTCRtpSender,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from aiortc.rtcconfiguration import RTCIceTransportPolicy
from aiortc.sdp import SessionDescription

from tests.support.clips import (
    AUDIO_STEP,
    CLIP_FRAMES,
    FPS,
    VIDEO_RATE,
    PacketTrack,
    audio_track,
    read_id,
    video_track,
)
from tests.support.server import Server, leave, receive
from videoassist.media import aiortc_hooks
from videoassist.media.frames import is_keyframe


@dataclass
class Received:
    """What a client got of one publication (a remote track while it carried it)."""

    track: MediaStreamTrack
    ids: list[int] = field(default_factory=list)       # frame ids (video)
    times: list[float] = field(default_factory=list)   # monotonic arrival of each frame
    pts: list[int] = field(default_factory=list)       # each frame's RTP timestamp
    frames: int = 0
    encoded: list[bytes] = field(default_factory=list)  # video frames as they came (tap)
    skipped: int = 0  # video frames this client's receiver gave up on (tap)
    # What aiortc's receiver counts ``pts`` from: a frame's RTP timestamp as it came is
    # (pts + rtp_origin) mod 2**32 (tap; see ``rtp_origin``).
    rtp_origin: int | None = None

    def rtp(self, at: int) -> int:
        """The RTP timestamp frame ``at`` came with (tap)."""
        assert self.rtp_origin is not None
        return (self.pts[at] + self.rtp_origin) & 0xFFFFFFFF


def rtp_origin(receiver: Any) -> int | None:
    """The RTP timestamp aiortc's receiver maps to 0 (its ``TimestampMapper``'s origin;
    aiortc 1.x keeps it private), modulo 2**32; None before the first frame."""
    mapper = getattr(receiver, "_RTCRtpReceiver__timestamp_mapper", None)
    origin = getattr(mapper, "_origin", None)
    return None if origin is None else int(origin) & 0xFFFFFFFF


# How long a test waits for frames from a participant by default: a guard against
# media that never comes, not a latency bound (the benchmark measures that). A new
# peer connection's first frames take about a second on a quiet machine and took over
# 10 s beside two CPU hogs and other tests' servers (ICE, DTLS and aiortc's encoder
# and decoder all compete for the two cores).
MEDIA_WAIT_S = 30.0

# The web client's watch of its socket (web/static/js/call-watch.js): a ping after 4 s
# without a message, the socket given up as lost when nothing came within 25 s of it; a
# lost socket is opened again after 1, 2, 4, 8, then 10 s (call-retry.js;
# ``MediaClient.keep_socket``).
WATCH_S = 1.0
PING_AFTER_S = 4.0
PONG_WITHIN_S = 25.0
RETRY_DELAYS_S = (1.0, 2.0, 4.0, 8.0, 10.0)

class MediaClient:
    def __init__(self, server: Server, token: str, job_id: int | None = None, *,
                 video: bool = True, audio: bool = True, read: bool = True,
                 video_codec: str = "VP8", offer_codecs: tuple[str, ...] = (),
                 video_size: tuple[int, int] = (640, 360), keyframes_on_request: bool = False,
                 keyframe_delay: int = 0, keyframe_every: int = 60,
                 clip_frames: int = CLIP_FRAMES,
                 encoded: bool = False, answer_delay: float = 0,
                 answer_gate: asyncio.Event | None = None,
                 joined_ice: bool = False) -> None:
        """``video_codec``: what the published clip is encoded with (offered first);
        ``offer_codecs``: the video codecs offered, in order (default: aiortc's);
        ``video_size``: the published clip's width and height;
        ``keyframes_on_request``: a keyframe request restarts the clip at its keyframe,
        as an encoder would make one, ``keyframe_delay`` frames later (see PacketTrack);
        ``keyframe_every``, ``clip_frames``: the clip's own keyframes (every 2 s by
        default) and its length (5 s);
        ``encoded``: received video is kept encoded, as it came (``Received.encoded``),
        not decoded;
        ``answer_delay``: seconds to wait before answering each of the server's offers
        (a slow phone); ``answered_at`` holds when each answer went out;
        ``answer_gate``: each of the server's offers is answered only once this is set
        (a test decides when the server's senders to this client start);
        ``joined_ice``: the peer connection takes the ICE servers and transport policy
        ``joined`` gives (TURN, relay-only for a customer), as the web client does;
        else none (host candidates only)."""
        self.server = server
        self.token = token
        self.job_id = job_id
        self.read = read
        self.keyframes_on_request = keyframes_on_request
        self.encoded = encoded
        self.joined_ice = joined_ice
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        width, height = video_size
        self.video = video_track(codec_name=video_codec, width=width, height=height,
                                 frames=clip_frames,
                                 keyframe_every=keyframe_every) if video else None
        if self.video is not None:
            self.video.keyframe_delay = keyframe_delay
        self.offer_codecs = offer_codecs or ((video_codec,) if video_codec != "VP8" else ())
        self.audio = audio_track() if audio else None
        self.received: dict[str, Received] = {}  # by publication (msid track id)
        self.labels: dict[str, str] = {}  # mid to the publication it carries now
        self.messages: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.stills: list[tuple[float, bytes]] = []  # (monotonic time, frame) as they came
        self.offers_answered = 0
        self.server_sdps: list[str] = []  # the server's answer, then each of its offers
        self.answer_delay = answer_delay
        self.answer_gate = answer_gate
        self.answered_at: list[float] = []
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.joined: dict[str, Any] = {}
        self.abandoned: list[aiohttp.ClientWebSocketResponse] = []  # sockets given up on
        # A new peer connection is on its way: the server's offers until its answer are
        # the replaced session's (docs/protocol.md, Coming back), and are ignored.
        self._restarting = False
        self.participant_id = -1
        self._answer: asyncio.Future[str] | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.new_track = asyncio.Event()
        # What the call showed this client, as the web client keeps it: the chat
        # (text by message id) and the shapes (target, shape id), from the messages and
        # from each ``joined``.
        self.chat: dict[int, str] = {}
        self.shapes: set[tuple[int, str]] = set()
        self.received_at = 0.0  # monotonic: the last message on the current socket
        self.reconnects = 0  # reconnections begun (each gives up the peer connection)
        self.lost_at: list[float] = []  # ``keep_socket``: when it found its socket lost
        self.rejoined_at: list[float] = []  # ...and when a new one's joined came

    async def start(self) -> MediaClient:
        self.ws, joined = await self.server.join_call(self.token, self.job_id)
        self._joined(joined)
        self._tasks.append(asyncio.create_task(self._pump()))
        await self._negotiate()
        return self

    def _new_pc(self) -> RTCPeerConnection:
        if not self.joined_ice:
            return RTCPeerConnection(RTCConfiguration(iceServers=[]))
        return RTCPeerConnection(RTCConfiguration(
            iceServers=[RTCIceServer(**server) for server in self.joined["ice_servers"]],
            iceTransportPolicy=RTCIceTransportPolicy(self.joined["ice_transport_policy"])))

    async def _negotiate(self, **extra: Any) -> None:
        """Offer this client's tracks from its peer connection and apply the answer."""
        assert self.ws is not None
        if self.joined_ice:
            await self.pc.close()
            self.pc = self._new_pc()
        for track in (self.video, self.audio):
            if track is not None:
                transceiver = self.pc.addTransceiver(track, direction="sendonly")
                if track is self.video and self.keyframes_on_request:
                    aiortc_hooks.on_keyframe_request(transceiver.sender, self.video.restart)
        self.pc.on("track", self._on_track)
        if self.video is None and self.audio is None:
            # A viewer only: one recvonly transceiver makes a valid first offer.
            self.pc.addTransceiver("video", direction="recvonly")
        if self.offer_codecs:
            capabilities = RTCRtpSender.getCapabilities("video").codecs
            preferred = [c for name in self.offer_codecs for c in capabilities
                         if c.mimeType.lower() == f"video/{name}".lower()]
            preferred += [c for c in capabilities if c.mimeType.lower() == "video/rtx"][:1]
            for transceiver in self.pc.getTransceivers():
                if transceiver.kind == "video":
                    transceiver.setCodecPreferences(preferred)
        await self.pc.setLocalDescription(await self.pc.createOffer())
        for transceiver in self.pc.getTransceivers():
            # Send what the answer puts first, as browsers do (aiortc would re-sort the
            # answer by its own preferences).
            transceiver._preferred_codecs = []
        self._answer = asyncio.get_running_loop().create_future()
        await self.ws.send_json({"type": "sdp.offer", "sdp": self.pc.localDescription.sdp,
                                 **extra})
        await asyncio.wait_for(self._answer, 10)

    async def _drop_media(self) -> None:
        """Give up this client's peer connection as a lost network does: its ICE
        sockets closed first, so that nothing more of it reaches the server (not even
        DTLS's close); its tracks go on, for the next one."""
        for task in [t for t in self._tasks if t.get_name().startswith("read ")]:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
            self._tasks.remove(task)
        for transport in {t.sender.transport for t in self.pc.getTransceivers()
                          if t.sender.transport is not None}:
            await transport.transport.stop()
        await self.pc.close()
        self.labels.clear()
        self.received.clear()  # what the new connection receives, apart
        self.pc = self._new_pc()

    async def restart_media(self, **extra: Any) -> None:
        """What a client does when its media connection is lost: a new peer
        connection with the same tracks, offered on the open socket (``extra``: fields
        of the offer, such as ``restart``)."""
        self._restarting = True
        await self._drop_media()
        await self._negotiate(**extra)

    async def reconnect(self, *, resume: bool = True, chat_after: int | None = None,
                        media: bool = True) -> dict[str, Any]:
        """What a client does when its socket is lost: a new socket with the same
        token (``resume``: naming the participant it was), then (``media``) a new peer
        connection. The old socket is left unread and open, as a lost network leaves it:
        the server sees nothing of it until its heartbeat. Returns ``joined``."""
        pump = self._tasks[0]
        pump.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await pump
        if self.ws is not None and self.ws not in self.abandoned:
            self.abandoned.append(self.ws)
        ws = await self.server.ws()
        auth: dict[str, Any] = {"type": "auth", "token": self.token}
        if self.job_id is not None:
            auth["job"] = self.job_id
        if resume:
            auth["resume"] = self.participant_id
        if chat_after is not None:
            auth["chat_after"] = chat_after
        await ws.send_json(auth)
        try:
            joined = await receive(ws, skip=("pong",))
        except BaseException:
            await ws.close()
            raise
        assert joined["type"] == "joined", joined
        self.rejoined_at.append(time.monotonic())
        self.ws = ws
        self._joined(joined)
        self._restarting = media
        self._tasks[0] = asyncio.create_task(self._pump())
        if media:
            self.reconnects += 1
            await self._drop_media()
            await self._negotiate()
        return joined

    def _joined(self, joined: dict[str, Any]) -> None:
        self.joined = joined
        self.participant_id = joined["you"]["id"]
        self.received_at = time.monotonic()
        self.chat.update((m["id"], m["text"]) for m in joined["chat"])
        self.shapes = {(a["target"], a["shape"]["id"]) for a in joined["annotations"]}

    def keep_socket(self) -> None:
        """Watch the socket from now on as the web client does (call.js,
        docs/protocol.md, Liveness and Coming back): a ``ping`` after ``PING_AFTER_S``
        without a message; a socket that closed, or that got nothing within
        ``PONG_WITHIN_S`` of its ping, is lost: left as it is, and a new one is tried
        after 1, 2, 4, 8 then 10 s (``reconnect``: ``resume``, ``chat_after`` its
        newest chat message, a new peer connection) until one is let in."""
        self._tasks.append(asyncio.create_task(self._keep(), name="keep"))

    async def _keep(self) -> None:
        pinged_at = 0.0
        while True:
            await asyncio.sleep(WATCH_S)
            ws, now = self.ws, time.monotonic()
            lost = ws is None or ws.closed
            if not lost and pinged_at > self.received_at:
                lost = now - pinged_at >= PONG_WITHIN_S
            elif not lost and now - self.received_at >= PING_AFTER_S:
                assert ws is not None
                with contextlib.suppress(ConnectionError, aiohttp.ClientError):
                    await ws.send_json({"type": "ping"})
                pinged_at = now
            if not lost:
                continue
            self.lost_at.append(now)
            rejoins = len(self.rejoined_at)
            for tries in itertools.count():
                await asyncio.sleep(RETRY_DELAYS_S[min(tries, len(RETRY_DELAYS_S) - 1)])
                try:
                    await self.reconnect(chat_after=max(self.chat, default=None))
                    break
                except (OSError, aiohttp.ClientError, TimeoutError):
                    if len(self.rejoined_at) > rejoins:
                        break  # let in, but its new peer connection got no answer
                    # else no network yet: the next try
            pinged_at = 0.0

    def _on_track(self, track: MediaStreamTrack) -> None:
        """A new m-section (aiortc fires no event when the server reuses one)."""
        mid = next(t.mid for t in self.pc.getTransceivers() if t.receiver.track is track)
        assert mid is not None
        self.new_track.set()
        if self.encoded and track.kind == "video":
            receiver = next(t.receiver for t in self.pc.getTransceivers()
                            if t.receiver.track is track)

            last: list[tuple[str, int]] = []  # the label and RTP time of the frame before

            def publication(label: str) -> Received:
                if label not in self.received:
                    self.received[label] = Received(track)
                return self.received[label]

            def take(codec: str, data: bytes, timestamp: int) -> None:
                # The tap hands frames over as they complete. A frame a lost packet held
                # back (its gap shows only with the next packet, which may be the next
                # publication's first) still belongs to the publication before if it is
                # one frame after that one's last, as in ``_read``.
                label = self.labels[mid]
                if last and label != last[0][0] and (
                        (timestamp - last[0][1]) % 2**32 == VIDEO_RATE // FPS):
                    label = last[0][0]
                last[:] = [(label, timestamp)]
                received = publication(label)
                received.encoded.append(data)
                received.times.append(time.monotonic())
                received.pts.append(timestamp)
                received.rtp_origin = rtp_origin(receiver)
                received.frames += 1

            def skipped(count: int) -> None:
                publication(self.labels[mid]).skipped += count

            aiortc_hooks.tap_receiver(receiver, take, skipped)
        elif self.read:
            self._tasks.append(asyncio.create_task(self._read(track, mid), name=f"read {mid}"))

    def _learn_labels(self, sdp: str) -> None:
        """Which publication each m-section carries now: its a=msid track id."""
        for media in SessionDescription.parse(sdp).media:
            if media.rtp.muxId and media.msid and " " in media.msid:
                self.labels[media.rtp.muxId] = media.msid.split()[1]

    async def _read(self, track: MediaStreamTrack, mid: str) -> None:
        """Frames of one m-section, filed under the publication it carries.

        aiortc's receiver holds a video frame until the next frame's first packet (and
        audio a few packets), so the last frames of a publication come out after the
        next one on the same m-section began. A frame exactly one frame after the one
        before it on the RTP clock (the clips' step: 3000 ticks of video at 30 fps,
        960 of audio) still belongs to that one's publication; the next publication
        starts after the time between, as the server's clock for the m-section goes on.
        """
        loop = asyncio.get_running_loop()
        step = VIDEO_RATE // FPS if track.kind == "video" else AUDIO_STEP
        last: tuple[str, int] | None = None
        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await track.recv()
                label = self.labels[mid]
                if last is not None and label != last[0] and (
                        (frame.pts - last[1]) % 2**32 == step):
                    label = last[0]
                last = (label, frame.pts)
                received = self.received.get(label)
                if received is None:
                    received = self.received[label] = Received(track)
                received.frames += 1
                received.times.append(time.monotonic())
                received.pts.append(frame.pts)
                if track.kind == "video":
                    image = await loop.run_in_executor(None, frame.to_ndarray, "gray")
                    received.ids.append(read_id(image))

    async def _pump(self) -> None:
        assert self.ws is not None
        async for msg in self.ws:
            self.received_at = time.monotonic()
            if msg.type == aiohttp.WSMsgType.BINARY:  # a still (docs/protocol.md, Stills)
                self.stills.append((time.monotonic(), msg.data))
                continue
            if msg.type != aiohttp.WSMsgType.TEXT:
                break
            message = msg.json()
            kind = message["type"]
            # Messages are handled in order: the server may send its own offer right
            # after its answer, and the answer must be applied first.
            if kind == "sdp.answer" and self._answer is not None and not self._answer.done():
                self._restarting = False
                await self.pc.setRemoteDescription(RTCSessionDescription(message["sdp"], "answer"))
                self.server_sdps.append(message["sdp"])
                self._answer.set_result(message["sdp"])
            elif kind == "sdp.offer" and self._restarting:
                continue  # the replaced session's: the new one's come after its answer
            elif kind == "sdp.offer":
                self.server_sdps.append(message["sdp"])
                await asyncio.sleep(self.answer_delay)
                if self.answer_gate is not None:
                    await self.answer_gate.wait()
                await self.pc.setRemoteDescription(RTCSessionDescription(message["sdp"], "offer"))
                self._learn_labels(message["sdp"])
                await self.pc.setLocalDescription(await self.pc.createAnswer())
                await self.ws.send_json({"type": "sdp.answer",
                                         "sdp": self.pc.localDescription.sdp})
                self.answered_at.append(time.monotonic())
                self.offers_answered += 1
            else:
                if kind == "chat.message":
                    self.chat[message["message"]["id"]] = message["message"]["text"]
                elif kind == "annotation.add":
                    self.shapes.add((message["target"], message["shape"]["id"]))
                elif kind == "annotation.remove":
                    self.shapes.discard((message["target"], message["id"]))
                elif kind == "annotation.clear":
                    self.shapes = {s for s in self.shapes if s[0] != message["target"]}
                if (kind == "error" and message.get("ref") == "sdp.offer"
                        and self._answer is not None and not self._answer.done()):
                    self._answer.set_exception(AssertionError(f"no answer: {message}"))
                await self.messages.put(message)

    async def next_message(self, kind: str, timeout: float = 5.0) -> dict[str, Any]:
        """The next message of that type this client got (others are passed over)."""
        async with asyncio.timeout(timeout):
            while True:
                message = await self.messages.get()
                if message["type"] == kind:
                    return message

    def local_candidate_type(self) -> str | None:
        """The type of this client's candidate in the ICE pair in use (``relay``:
        through TURN), or None before one is nominated."""
        transport = self.pc.getTransceivers()[0].sender.transport.transport
        pair = transport._connection._nominated.get(1)
        return None if pair is None else str(pair.local_candidate.type)

    def ice_ufrag(self) -> str:
        """This client's ICE username fragment (its ``a=ice-ufrag``)."""
        transport = self.pc.getTransceivers()[0].sender.transport.transport
        return str(transport._connection.local_username)

    def remote(self, participant_id: int, kind: str = "video") -> Received | None:
        """What this client received from that participant's newest track of a kind."""
        found = None
        for label, received in self.received.items():
            if label.startswith(f"p{participant_id}-{kind}-"):
                found = received
        return found

    async def wait_remote(self, participant_id: int, kind: str = "video",
                          frames: int = 1, timeout: float = MEDIA_WAIT_S) -> Received:
        try:
            async with asyncio.timeout(timeout):
                while True:
                    received = self.remote(participant_id, kind)
                    if received is not None and received.frames >= frames:
                        return received
                    await asyncio.sleep(0.02)
        except TimeoutError:
            raise AssertionError(f"participant {participant_id}'s {kind}: not {frames} "
                                 f"frames within {timeout} s; {self.state()}") from None

    def state(self) -> str:
        """What this client has of the call, for a test that failed waiting on it."""
        pc = self.pc
        transceivers = [f"{t.mid}:{t.kind}:{t.direction}/{t.currentDirection}"
                        for t in pc.getTransceivers()]
        got = {label: received.frames for label, received in self.received.items()}
        msids = [line for line in (self.server_sdps[-1] if self.server_sdps else "")
                 .splitlines() if line.startswith(("a=mid:", "a=msid:", "m="))]
        return (f"participant {self.participant_id}, connection {pc.connectionState}, "
                f"ICE {pc.iceConnectionState}, signalling {pc.signalingState}; "
                f"transceivers {transceivers}; mids to publications {self.labels}; "
                f"frames by publication {got}; {self.offers_answered} offers answered, "
                f"{len(self.server_sdps)} server SDPs, the last's {msids}")

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self.pc.close()
        # A client done with the call says so: a socket closed without ``leave`` is a
        # lost connection, whose participant stays in the call a while, away.
        for ws in [*self.abandoned, self.ws]:
            if ws is not None:
                await leave(ws)


def sdp_candidates(sdp: str) -> list[tuple[str, int, str]]:
    """(address, port, type) of every candidate of an SDP, and of each m-section's c=
    line and port (type ``c=``: what a client without candidates would use)."""
    found = []
    for media in SessionDescription.parse(sdp).media:
        found += [(c.ip, c.port, c.type) for c in media.ice_candidates]
        found.append((str(media.host), media.port, "c="))
    return found


def published(client: MediaClient) -> PacketTrack:
    assert client.video is not None
    return client.video


def sent_numbers(received: Received, sent: PacketTrack) -> list[int]:
    """Which frame the publisher's track sent each encoded frame the viewer got was:
    its number in send order (an index of ``sent.log``).

    The RTP timestamps give the frames' distances in send order (the track sends frame
    n with pts n * step, and the server keeps the publisher's timestamps but for a
    constant shift); the bytes must then be, at one offset, those sent there, each
    sent before it arrived. Of such offsets (the clip loops) the latest is the one:
    the same frames a loop earlier would have arrived seconds late."""
    where = {data: index for index, data in enumerate(sent.packets)}
    assert len(where) == len(sent.packets), "every frame of the clip must differ"
    indexes = [where.get(data, -1) for data in received.encoded]
    assert -1 not in indexes, f"a frame the publisher never sent: {indexes}"
    assert len(received.pts) == len(indexes)
    distances = []
    for at, pts in enumerate(received.pts):
        ticks = (pts - received.pts[0]) % 2**32
        assert ticks % sent.step == 0, (
            f"frame {at} is {ticks} RTP ticks after frame 0, not whole frames of the "
            f"publisher's: {received.pts[:at + 1]} at {received.times[:at + 1]}")
        distances.append(ticks // sent.step)
    log, sent_at = sent.log, sent.sent_at
    for first in reversed([n for n, index in enumerate(log) if index == indexes[0]]):
        if all(first + d < len(log) and log[first + d] == index and sent_at[first + d] <= at
               for d, index, at in zip(distances, indexes, received.times, strict=True)):
            return [first + d for d in distances]
    raise AssertionError(f"frames the publisher did not send at those times: {indexes}")


def check_decodable(received: Received, sent: PacketTrack) -> list[int]:
    """Every frame the viewer got is a whole frame the publisher sent, and each is a
    keyframe or the frame sent right after the one before it: nothing the viewer could
    not decode. Returns each frame's number in send order (``sent_numbers``)."""
    numbers = sent_numbers(received, sent)
    for at, (before, number) in enumerate(zip([-2, *numbers], numbers, strict=False)):
        keyframe = is_keyframe("VP8", sent.packets[sent.log[number]])
        assert keyframe or number == before + 1, (
            f"frame {at} (sent {number}) follows the frame sent {before}: {numbers}")
    return numbers
