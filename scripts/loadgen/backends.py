"""The servers the relay benchmark can measure, behind one face: videoassist (its
HTTP API and /ws signalling, a job per call) or Janus's videoroom (a room per call).

The load is the same on both: the same publishers and clip, the same viewers, tapped
and counted the same way (``media``). Only how a call is made and joined differs.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

import aiohttp
from aiortc import MediaStreamTrack, RTCPeerConnection

from loadgen.fleet import Fleet
from loadgen.janus import JanusParticipant, JanusProcess, create_room
from loadgen.media import FrameSink, PacketCount
from loadgen.peers import Participant
from loadgen.server import ServerProcess, post_json, scrape_event_loop_cpu


class Peer(Protocol):
    """A participant of a call, whichever the server."""

    id: int | None
    pc: RTCPeerConnection

    async def join(self, within: float = ...) -> None: ...

    async def leave(self) -> None: ...


class Process(Protocol):
    """The server as a child process."""

    url: str

    @property
    def pids(self) -> list[int]:
        """The server's processes (a fleet: its nodes), each with those under it."""

    @property
    def side_pids(self) -> dict[str, int]:
        """Processes beside the server whose CPU is reported too (a fleet's proxy and
        database), by role."""

    def start(self) -> None: ...

    async def wait_ready(self, http: aiohttp.ClientSession, within: float = ...) -> None: ...

    def check_alive(self) -> None: ...

    def output_tail(self, lines: int = ...) -> str: ...

    def stop(self) -> None: ...


class Served(Process, Protocol):
    """videoassist, one server or a fleet behind its proxy: where, and who signs in."""

    username: str
    password: str


class Backend(Protocol):
    name: str
    # Whether a new viewer's first frame must be a keyframe (videoassist starts a
    # viewer at its cached keyframe), or the benchmark waits for the first keyframe
    # (Janus forwards whatever comes next and asks the publisher for a keyframe).
    starts_at_keyframe: bool

    @property
    def process(self) -> Process: ...

    async def sign_in(self, http: aiohttp.ClientSession) -> None: ...

    async def open_call(self, number: int) -> int: ...

    def participant(self, room: int, feed: int | None, tracks: Sequence[MediaStreamTrack],
                    sink: FrameSink | None = None,
                    packets: PacketCount | None = None) -> Peer: ...

    async def event_loop_cpu(self) -> dict[str, float] | None: ...


class Videoassist:
    """``videoassist serve``: a staff user signs in, a job per call, everyone on /ws."""

    name = "videoassist"
    starts_at_keyframe = True

    def __init__(self, server: Served) -> None:
        self.process: Process = server
        self.server = server
        self.http: aiohttp.ClientSession | None = None
        self.token = ""

    async def sign_in(self, http: aiohttp.ClientSession) -> None:
        self.http = http
        session = await self._api("/api/session", {"username": self.server.username,
                                                   "password": self.server.password})
        self.token = session["token"]

    async def _api(self, path: str, body: dict[str, Any]) -> Any:
        assert self.http is not None
        return await post_json(self.http, self.server.url, path, body, self.token)

    async def open_call(self, number: int) -> int:
        job = await self._api("/api/jobs", {"title": f"bench call {number}"})
        return int(job["id"])

    def participant(self, room: int, feed: int | None, tracks: Sequence[MediaStreamTrack],
                    sink: FrameSink | None = None,
                    packets: PacketCount | None = None) -> Peer:
        assert self.http is not None
        return Participant(self.http, self.server.url, self.token, room, tracks, sink,
                           packets=packets)

    async def event_loop_cpu(self) -> dict[str, float] | None:
        assert self.http is not None
        return await scrape_event_loop_cpu(self.http, self.server.url)


class Janus:
    """Debian's Janus: a videoroom room per call, a session per participant."""

    name = "janus"
    starts_at_keyframe = False

    def __init__(self, process: JanusProcess) -> None:
        self.process = self.janus = process
        self.http: aiohttp.ClientSession | None = None

    async def sign_in(self, http: aiohttp.ClientSession) -> None:
        self.http = http  # the rooms are open to anyone who reaches 127.0.0.1

    async def open_call(self, number: int) -> int:
        assert self.http is not None
        await create_room(self.http, self.janus.url, number)
        return number

    def participant(self, room: int, feed: int | None, tracks: Sequence[MediaStreamTrack],
                    sink: FrameSink | None = None,
                    packets: PacketCount | None = None) -> Peer:
        assert self.http is not None
        return JanusParticipant(self.http, self.janus.url, room, tracks, sink, packets, feed)

    async def event_loop_cpu(self) -> dict[str, float] | None:
        return None  # threads of C, no event loop of ours to read


class FleetBackend(Videoassist):
    """videoassist nodes behind nginx (``fleet``): the same API and /ws as one server,
    reached through the proxy; each node's event loop read on its own port."""

    def __init__(self, fleet: Fleet) -> None:
        super().__init__(fleet)
        self.fleet = fleet

    async def event_loop_cpu(self) -> dict[str, float] | None:
        assert self.http is not None
        return await self.fleet.event_loop_cpu(self.http)

    async def nodes_report(self, cores: dict[int, float],
                           busy: dict[str, float] | None) -> dict[str, dict[str, Any]]:
        """By node name: the calls placed on it, its CPU (cores over the window, by pid)
        and its event loop's busy fraction (by node name)."""
        calls = await self.fleet.calls_by_pid()
        return {node.name: {"calls": calls.get(node.pid, 0),
                            "cpu_cores": round(cores.get(node.pid, 0.0), 3),
                            "event_loop_busy": None if busy is None else busy.get(node.name)}
                for node in self.fleet.nodes}


@contextlib.contextmanager
def backend(server: str, mode: str, profile: Path | None,
            workers: int | None, nodes: int | None = None) -> Iterator[Backend]:
    """The server's backend in a temporary directory, not yet started: Janus,
    videoassist, or ``nodes`` videoassist nodes behind nginx."""
    with tempfile.TemporaryDirectory(prefix=f"{server}-bench-") as workdir:
        if server == "janus":
            yield Janus(JanusProcess(Path(workdir)))
        elif nodes is not None:
            yield FleetBackend(Fleet(mode, Path(workdir), nodes))
        else:
            yield Videoassist(ServerProcess(mode, Path(workdir), profile, workers))
