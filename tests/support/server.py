"""The in-process server and its client.

``start_app`` starts the whole aiohttp app (middlewares, cleanup contexts, access log)
on a socket bound to 127.0.0.1 port 0, with real SQLite files, and gives a ``Server``:
a real aiohttp client over loopback and helpers that act as staff and participants.
``Clock`` is injected into the app: tests move time with ``advance``. The fixtures
that start servers for a test (``server``, ``server_factory``, ``servers``) are in the
conftest files.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import itertools
import logging
import os
import random
import socket
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp import web
from aioice.ice import get_host_addresses

from tests.support.netns import TEST_NETWORK
from videoassist.actors import CLI
from videoassist.app import create_app
from videoassist.appkeys import REFUSALS, STORE
from videoassist.config import Settings
from videoassist.domain import accounts, invitations
from videoassist.domain.refusals import Refusals
from videoassist.logs import ACCESS_LOGGER, AccessLogger
from videoassist.storage import Store

if TYPE_CHECKING:
    from tests.support.databases import ServerDatabases

PASSWORD = "correct horse battery"


class Clock:
    """Wall time plus an offset the test controls."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


@dataclass
class Server:
    url: str
    settings: Settings
    app: web.Application
    clock: Clock
    http: aiohttp.ClientSession
    _names: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    @property
    def store(self) -> Store:
        return self.app[STORE]

    @property
    def refusals(self) -> Refusals:
        return self.app[REFUSALS]

    @property
    def origin(self) -> str:
        return self.settings.public_origin

    async def request(
        self,
        method: str,
        path: str,
        *,
        token: str | None = None,
        json: Any = None,
        headers: dict[str, str] | None = None,
        data: bytes | str | None = None,
    ) -> tuple[int, Any, aiohttp.typedefs.LooseHeaders]:
        """One HTTP call; returns (status, parsed JSON body, text, or bytes for binary
        content such as images and archives, headers)."""
        all_headers = dict(headers or {})
        if token is not None:
            all_headers["Authorization"] = f"Bearer {token}"
        async with self.http.request(
            method, self.url + path, json=json, data=data, headers=all_headers
        ) as response:
            if response.content_type in ("image/jpeg", "application/zip"):
                return response.status, await response.read(), response.headers
            text = await response.text()
            try:
                body: Any = await response.json(content_type=None) if text else None
            except ValueError:
                body = text
            return response.status, body, response.headers

    async def add_user(self, role: str = "expert", password: str | None = PASSWORD,
                       username: str | None = None) -> Any:
        name = username or f"{role}{next(self._names)}"
        return await accounts.add_user(self.store, name, role, password, actor=CLI)

    async def sign_in(self, username: str, password: str = PASSWORD) -> str:
        status, body, _ = await self.request(
            "POST", "/api/session", json={"username": username, "password": password}
        )
        assert status == 200, body
        token: str = body["token"]
        return token

    async def staff(self, role: str = "expert") -> tuple[Any, str]:
        """A new signed-in staff user and its token."""
        user = await self.add_user(role)
        return user, await self.sign_in(user.username)

    async def job(self, token: str, title: str = "Boiler makes a noise") -> int:
        status, body, _ = await self.request("POST", "/api/jobs", token=token,
                                             json={"title": title})
        assert status == 201, body
        job_id: int = body["id"]
        return job_id

    async def invite(self, token: str, job_id: int, role: str = "customer", **extra: Any) -> str:
        """Create a join link through the API; return the token from its fragment."""
        status, body, _ = await self.request(
            "POST", f"/api/jobs/{job_id}/invites", token=token, json={"role": role, **extra}
        )
        assert status == 201, body
        url: str = body["url"]
        assert url.startswith(f"{self.settings.public_url}/join#")
        return url.split("#", 1)[1]

    async def redeem(self, link_token: str) -> tuple[int, Any]:
        status, body, _ = await self.request("POST", "/api/invites/redeem",
                                             json={"token": link_token})
        return status, body

    async def participant(self, staff_token: str, job_id: int, role: str = "customer") -> str:
        """A redeemed join link's participant token."""
        status, body = await self.redeem(await self.invite(staff_token, job_id, role))
        assert status == 200, body
        token: str = body["token"]
        return token

    async def password_link(self, user: Any) -> str:
        link = await invitations.create_password_link(self.store, self.settings, user, CLI)
        return link.url.split("#", 1)[1]

    async def cli(self, *args: str, **env: str) -> tuple[int, str, str]:
        """Run the ``videoassist`` command, a process of its own, on this server's data
        directory, as an operator would beside the running server; ``env``: extra
        ``VIDEOASSIST_*`` variables (none other is passed on). The event loop, and the
        server with it, runs meanwhile. Returns (exit code, stdout, stderr)."""
        environ = {k: v for k, v in os.environ.items() if not k.startswith("VIDEOASSIST_")}
        if self.settings.database_url is not None:  # the server's database, on PostgreSQL
            environ["VIDEOASSIST_DATABASE_URL"] = self.settings.database_url.reveal()
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "videoassist", *args,
            "--data-dir", str(self.settings.data_dir),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            env={**environ, **env}, cwd=self.settings.data_dir.parent)
        try:
            async with asyncio.timeout(30):
                out, err = await proc.communicate()
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise
        assert proc.returncode is not None
        return proc.returncode, out.decode(), err.decode()

    async def ws(self, origin: str | None = "default",
                 **kwargs: Any) -> aiohttp.ClientWebSocketResponse:
        headers = {}
        if origin == "default":
            headers["Origin"] = self.origin
        elif origin is not None:
            headers["Origin"] = origin
        ws: aiohttp.ClientWebSocketResponse = await self.http.ws_connect(
            self.url + "/ws", headers=headers, **kwargs)
        return ws

    async def join_call(self, token: str, job_id: int | None = None
                        ) -> tuple[aiohttp.ClientWebSocketResponse, dict[str, Any]]:
        """Open /ws and authenticate; returns the socket and the 'joined' message."""
        ws = await self.ws()
        auth: dict[str, Any] = {"type": "auth", "token": token}
        if job_id is not None:
            auth["job"] = job_id
        await ws.send_json(auth)
        joined = await receive(ws)
        assert joined["type"] == "joined", joined
        return ws, joined


async def receive(ws: aiohttp.ClientWebSocketResponse, timeout: float = 5.0,
                  skip: tuple[str, ...] = ()) -> dict[str, Any]:
    """The next JSON message (skipping the listed types), bounded in time."""
    while True:
        msg = await ws.receive(timeout=timeout)
        assert msg.type == aiohttp.WSMsgType.TEXT, (msg.type, msg.data, msg.extra)
        message: dict[str, Any] = msg.json()
        if message.get("type") not in skip:
            return message


async def join_call(remote: Server, token: str, job: int | None = None
                    ) -> aiohttp.ClientWebSocketResponse:
    """A socket to ``remote`` that has sent ``auth`` (with ``job`` for staff) and been
    let in: its ``joined`` read (others' ``participant.joined`` before it skipped)."""
    ws = await remote.ws()
    await ws.send_json({"type": "auth", "token": token} | ({} if job is None else {"job": job}))
    answer = await receive(ws, timeout=10, skip=("participant.joined",))
    assert answer["type"] == "joined", answer
    return ws


async def leave(ws: aiohttp.ClientWebSocketResponse) -> None:
    """Leave the call on purpose, as a client does when its person leaves: ``leave``,
    then close. (A socket closed without it is a lost connection: its participant stays
    in the call, away, for ``call_away_s``.)"""
    if not ws.closed:
        with contextlib.suppress(ConnectionError):  # its network gone already
            await ws.send_json({"type": "leave"})
    await ws.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def free_udp_ports(count: int, address: str = "127.0.0.1") -> tuple[int, int]:
    """(first, last) of ``count`` consecutive UDP ports free on ``address`` now, below the
    kernel's ephemeral range (32768 and up here), which other programs' port-0 binds
    take from: for ``VIDEOASSIST_MEDIA_PORTS``."""
    rng = random.Random()
    for _ in range(100):
        first = rng.randrange(20000, 32000 - count)
        socks: list[socket.socket] = []
        try:
            for port in range(first, first + count):
                sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                socks.append(sock)
                sock.bind((address, port))
        except OSError:
            continue
        finally:
            for sock in socks:
                sock.close()
        return first, first + count - 1
    raise AssertionError(f"no {count} consecutive free UDP ports on {address}")


def own_addresses() -> list[str]:
    """This machine's addresses as aioice lists them (192.0.2.2 and fd00::2 here), less
    the root ends of veth pairs that the tests' network namespaces add and remove
    (``netns.SUBNETS``): stable for the whole run, where another test's veth is not."""
    return [address for address in get_host_addresses(use_ipv4=True, use_ipv6=True)
            if ipaddress.ip_address(address) not in TEST_NETWORK]


def local_peers() -> tuple[str, ...]:
    """VIDEOASSIST_ICE_ALLOWED_PEERS for the tests' servers: loopback and this machine's
    own addresses (in ranges the default policy denies), which is where the tests'
    peers are. Attack tests start servers without it.

    Not the root end of a veth pair that a test beside this one made for its network
    namespace: a peer of this machine gathers a candidate there too, and a pair on it
    that ICE chose dies with the namespace, taking a call's media with it (aiortc has
    no ICE restart; seen as a viewer that never got a publisher's frames). Refused by
    the server, such a candidate never forms a pair (``netns.isolate_gathering`` keeps
    the server's own candidates off them). A test whose peers are in a namespace adds
    ``netns.SUBNETS`` itself."""
    return ("127.0.0.0/8", "::1", *own_addresses())


ServerFactory = Callable[..., Awaitable[Server]]


async def start_app(clock: Clock, *, sock: socket.socket | None = None,
                    **settings: Any) -> tuple[Server, web.AppRunner]:
    """The whole app serving on 127.0.0.1, on a port of its own (or on ``sock``, bound
    there), and a client session for it. ``settings``: fields of ``Settings`` over the
    tests' defaults (``data_dir`` is needed). The caller closes ``server.http``, then
    cleans the runner up."""
    if sock is None:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    values: dict[str, Any] = {"host": "127.0.0.1", "port": port, "ws_heartbeat_s": 5.0,
                              "ice_allowed_peers": local_peers()}
    values.update(settings)
    app_settings = Settings(**values)
    app = create_app(app_settings, clock)
    runner = web.AppRunner(app, access_log=logging.getLogger(ACCESS_LOGGER),
                           access_log_class=AccessLogger, shutdown_timeout=2.0,
                           keepalive_timeout=app_settings.http_idle_timeout_s)
    await runner.setup()
    try:
        await web.SockSite(runner, sock).start()
    except BaseException:
        await runner.cleanup()
        raise
    http = aiohttp.ClientSession()
    return Server(f"http://127.0.0.1:{port}", app_settings, app, clock, http), runner


class Servers:
    """Real servers (as ``server_factory`` starts them) that can be stopped mid-test."""

    def __init__(self, tmp_path: Path, clock: Clock,
                 databases: ServerDatabases | None = None) -> None:
        self._tmp_path = tmp_path
        self._clock = clock
        self._databases = databases
        self._running: dict[int, tuple[web.AppRunner, aiohttp.ClientSession]] = {}

    async def start(self, **overrides: Any) -> Server:
        settings = {"data_dir": self._tmp_path / "data", **overrides}
        if self._databases is not None:
            settings = self._databases.settings(settings)
        server, runner = await start_app(self._clock, **settings)
        self._running[id(server.app)] = (runner, server.http)
        return server

    async def stop(self, server: Server) -> None:
        """Shut the server down as SIGTERM would: shutdown, then cleanup contexts."""
        runner, http = self._running.pop(id(server.app))
        await http.close()
        await runner.cleanup()

    async def stop_all(self) -> None:
        for runner, http in self._running.values():
            await http.close()
            await runner.cleanup()
        self._running.clear()


async def two_parties(server: Server) -> tuple[str, str, int]:
    """A signed-in expert with a job, and a customer who came by a link to it: (expert
    token, customer token, job id)."""
    _, staff_token = await server.staff("expert")
    job_id = await server.job(staff_token)
    return staff_token, await server.participant(staff_token, job_id), job_id
