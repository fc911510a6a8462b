"""docs/deploy.md's nginx and HAProxy configurations, as written there, in front of a
real server.

The ``nginx`` and ``haproxy`` blocks are taken from the doc; only what a test must
change is replaced (listening addresses, certificate paths, the log, the upstream port;
for HAProxy also the chroot, the user switch and the stats socket in /run, which need
root, and the client and server timeouts, shortened so that a silent WebSocket outlives
them within the test), each replacement checked to apply. The real programs (Debian's
packages, which scripts/test installs) run them in the foreground; clients connect
from other loopback addresses (127.0.0.2, ...) so that the address the proxy sees
differs from its own. Debian's Chromium, driven by Playwright, checks the one thing
aiohttp's client cannot: a WebSocket over HTTP/2, which HAProxy offers.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import signal
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from playwright.async_api import async_playwright

from tests.support import nginx
from tests.support.browser import CHROMIUM, FLAGS
from tests.support.certs import self_signed
from tests.support.haproxy import command as haproxy_command
from tests.support.haproxy import write_conf as write_haproxy_conf
from tests.support.process import ServeProcess, ok
from tests.support.server import PASSWORD, Clock, Server, free_port, leave, receive
from videoassist.config import Settings

# HAProxy's client and server timeouts in the test: a WebSocket silent for longer shows
# that "timeout tunnel" governs it once upgraded.
HAPROXY_TEST_TIMEOUT_S = 2


def nginx_conf(directory: Path, tls_port: int, http_port: int, upstream_port: int) -> Path:
    cert, key = self_signed(directory)
    return nginx.write_conf(
        directory, nginx.site([upstream_port], tls_port, http_port, cert, key,
                              directory / "access.log"),
        error_log=directory / "error.log")


def upstream(data_dir: Path, tls_port: int) -> ServeProcess:
    """A server of two workers with bob (expert) and job 1, trusting the proxy in front
    of it for the client's address; serving and ready when this returns."""
    ok(data_dir, "user", "add", "bob", "--role", "expert", "--password-stdin",
       stdin=PASSWORD + "\n")
    ok(data_dir, "job", "create", "Boiler makes a noise")
    server = ServeProcess(data_dir, env={
        "VIDEOASSIST_WORKERS": "2",  # as on a machine of two cores, whatever this one has
        "VIDEOASSIST_PUBLIC_URL": f"https://127.0.0.1:{tls_port}",
        "VIDEOASSIST_TRUST_FORWARDED_FOR": "true",
        "VIDEOASSIST_SIGNIN_MAX_FAILURES_PER_CLIENT": "2",
    })
    try:
        server.wait_for(r"serving on .* with 2 workers")
        server.wait_ready()
    except BaseException:
        server.stop()
        raise
    return server


def wait_listening(proc: subprocess.Popen[bytes], port: int, *logs: Path) -> None:
    """Until the proxy accepts TCP connections on ``port``; fail with its logs if it
    exits or takes more than 10 s."""
    def said() -> str:
        return "".join(log.read_text() for log in logs if log.exists())

    deadline = time.monotonic() + 10
    while True:
        assert proc.poll() is None, said()
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            assert time.monotonic() < deadline, said()
            time.sleep(0.05)


def stop(proc: subprocess.Popen[bytes], sig: int) -> None:
    proc.send_signal(sig)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


@pytest.fixture
def proxy(tmp_path: Path) -> Iterator[tuple[ServeProcess, int, int, Path]]:
    """A server with bob (expert) and job 1, behind nginx: (server, TLS port, HTTP
    port, nginx's directory)."""
    tls_port, http_port = free_port(), free_port()
    server = upstream(tmp_path / "data", tls_port)
    directory = tmp_path / "nginx"
    directory.mkdir()
    conf = nginx_conf(directory, tls_port, http_port, server.port)
    output = directory / "stderr.log"
    with output.open("wb") as sink:
        proc = subprocess.Popen(nginx.command(conf), stdout=sink, stderr=subprocess.STDOUT)
    try:
        wait_listening(proc, tls_port, output, directory / "error.log")
        yield server, tls_port, http_port, directory
    finally:
        stop(proc, signal.SIGQUIT)
        assert server.stop() == 0, server.output


def test_the_documented_config_passes_nginx_t(tmp_path: Path) -> None:
    conf = nginx_conf(tmp_path, free_port(), free_port(), 8080)
    result = subprocess.run(nginx.command(conf, "-t"), capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert "test is successful" in result.stderr
    assert "[warn]" not in result.stderr, result.stderr


def haproxy_conf(directory: Path, tls_port: int, http_port: int, upstream_port: int) -> Path:
    return write_haproxy_conf(directory, [upstream_port], tls_port, http_port,
                              timeout_s=HAPROXY_TEST_TIMEOUT_S)


def test_the_documented_config_passes_haproxy_c(tmp_path: Path) -> None:
    conf = haproxy_conf(tmp_path, free_port(), free_port(), 8080)
    result = subprocess.run(haproxy_command(conf, "-c"), capture_output=True, text=True,
                            timeout=30)
    said = result.stdout + result.stderr
    assert result.returncode == 0, said
    assert "Configuration file is valid" in said
    assert "WARNING" not in said and "ALERT" not in said, said


@pytest.fixture
def haproxy(tmp_path: Path) -> Iterator[tuple[ServeProcess, int, int, Path]]:
    """A server with bob (expert) and job 1, behind HAProxy: (server, TLS port, HTTP
    port, HAProxy's output: its access log and alerts)."""
    tls_port, http_port = free_port(), free_port()
    server = upstream(tmp_path / "data", tls_port)
    directory = tmp_path / "haproxy"
    directory.mkdir()
    conf = haproxy_conf(directory, tls_port, http_port, server.port)
    output = directory / "output.log"
    with output.open("wb") as sink:  # -db: in the foreground, logging to stdout
        proc = subprocess.Popen(haproxy_command(conf), stdout=sink,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        wait_listening(proc, tls_port, output)
        yield server, tls_port, http_port, output
    finally:
        stop(proc, signal.SIGTERM)
        assert server.stop() == 0, server.output


class _KeptConnector(aiohttp.TCPConnector):
    """Keeps every transport it made, WebSockets' included (aiohttp hands those over
    and no longer closes them itself)."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.transports: list[asyncio.Transport] = []

    async def _wrap_create_connection(self, *args: Any, **kwargs: Any) -> Any:
        made = await super()._wrap_create_connection(*args, **kwargs)
        self.transports.append(made[0])
        return made


@contextlib.asynccontextmanager
async def client(source: str) -> AsyncIterator[aiohttp.ClientSession]:
    """An HTTP client connecting from ``source``, a loopback address of its own.

    On the way out its connections are cut, not only closed: a closed WebSocket's TLS
    connection shuts down in the background, which a busy machine had not finished when
    the test's loop ended, and the socket, collected in a later test, failed it with a
    ResourceWarning."""
    connector = _KeptConnector(ssl=False, local_addr=(source, 0))
    async with aiohttp.ClientSession(connector=connector) as http:
        yield http
    for transport in connector.transports:
        transport.abort()
    await asyncio.sleep(0)  # their connection_lost, which closes the sockets


def remote_server(public: str, http: aiohttp.ClientSession) -> Server:
    """The test client's helpers, aimed at the proxy's public address."""
    port = int(public.rsplit(":", 1)[1])
    return Server(public, Settings(port=port, public_url=public),
                  None, Clock(), http)  # type: ignore[arg-type]


async def pages_and_api(remote: Server, server: ServeProcess, plain_url: str,
                        redirected_to: str) -> None:
    """Health, metrics kept off the proxy, the plain HTTP redirect and a page."""
    http = remote.http
    assert (await remote.request("GET", "/healthz"))[0] == 200
    assert (await remote.request("GET", "/metrics"))[0] == 404  # kept off the proxy
    async with http.get(f"{server.url}/metrics") as direct:
        assert direct.status == 200  # on the server's own port: every worker's
        scraped = await direct.text()
        for worker in ("0", "1"):
            assert f'videoassist_worker_up{{worker="{worker}"}} 1' in scraped
    async with http.get(plain_url, allow_redirects=False) as plain:
        assert plain.status == 301
        assert plain.headers["Location"] == redirected_to
    status, _, headers = await remote.request("GET", "/join?token=not-in-the-log")
    assert status == 200 and headers["Strict-Transport-Security"]
    status, body, _ = await remote.request("GET", "/api/jobs/1",
                                           token=await remote.sign_in("bob"))
    assert status == 200 and body["title"] == "Boiler makes a noise", body


async def a_call(remote: Server) -> tuple[aiohttp.ClientWebSocketResponse,
                                          aiohttp.ClientWebSocketResponse]:
    """bob (expert) and a customer by a join link in job 1's call over wss://: (expert,
    customer), each having seen the other join and one chat message."""
    staff_token = await remote.sign_in("bob")
    expert, joined = await remote.join_call(staff_token, 1)
    assert joined["call"]["id"] >= 1
    customer, _ = await remote.join_call(await remote.participant(staff_token, 1))
    assert (await receive(expert))["type"] == "participant.joined"
    await chat(expert, customer, "through the proxy")
    return expert, customer


async def chat(expert: aiohttp.ClientWebSocketResponse,
               customer: aiohttp.ClientWebSocketResponse, text: str) -> None:
    """The customer's chat message reaches both."""
    await customer.send_json({"type": "chat.message", "text": text})
    for ws in (expert, customer):
        message = await receive(ws)
        assert message.get("message", {}).get("text") == text, message


async def forged_forwarded_for_is_ignored(public: str) -> None:
    """Sign-in limits count the client the proxy saw: a forged X-Forwarded-For changes
    nothing (2 failures per client, then 429), another client has its own count."""
    async def fail(source: str, username: str, forged: str | None = None) -> int:
        headers = {"X-Forwarded-For": forged} if forged else {}
        async with client(source) as http, http.post(
                f"{public}/api/session", headers=headers,
                json={"username": username, "password": "not the password"}) as response:
            return response.status

    assert await fail("127.0.0.3", "eve1", "203.0.113.1") == 401
    assert await fail("127.0.0.3", "eve2", "203.0.113.2") == 401
    assert await fail("127.0.0.3", "eve3", "203.0.113.3") == 429
    assert await fail("127.0.0.4", "eve4") == 401  # its own address reached the server


async def test_a_call_through_nginx_and_the_client_address_it_passes(
        proxy: tuple[ServeProcess, int, int, Path]) -> None:
    server, tls_port, http_port, directory = proxy
    public = f"https://127.0.0.1:{tls_port}"
    async with client("127.0.0.2") as http:
        remote = remote_server(public, http)
        await pages_and_api(remote, server, f"http://127.0.0.1:{http_port}/join",
                            "https://127.0.0.1/join")
        expert, customer = await a_call(remote)
        await leave(customer)
        await leave(expert)
    await forged_forwarded_for_is_ignored(public)

    log = (directory / "access.log").read_text()
    assert re.search(r'^127\.0\.0\.2 .*"GET /join" 200', log, re.M), log
    assert "not-in-the-log" not in log


async def test_a_call_through_haproxy_outlives_its_timeouts_and_the_client_address_passes(
        haproxy: tuple[ServeProcess, int, int, Path]) -> None:
    server, tls_port, http_port, output = haproxy
    public = f"https://127.0.0.1:{tls_port}"
    async with client("127.0.0.2") as http:
        remote = remote_server(public, http)
        expert, customer = await a_call(remote)
        silent_since = time.monotonic()
        # While the call's WebSockets are silent: the rest through the same proxy.
        await pages_and_api(remote, server, f"http://127.0.0.1:{http_port}/join",
                            f"https://127.0.0.1:{http_port}/join")  # Host as the client sent it
        await forged_forwarded_for_is_ignored(public)
        # Silent past HAProxy's client and server timeouts: "timeout tunnel" keeps them.
        await asyncio.sleep(max(0.0, silent_since + HAPROXY_TEST_TIMEOUT_S + 0.5
                                - time.monotonic()))
        await chat(expert, customer, "still here")
        await leave(customer)
        await leave(expert)

    # HAProxy logs a request when it ends: a WebSocket's once both sides have closed.
    deadline = time.monotonic() + 5
    while not re.search(r'^127\.0\.0\.2 \[.*\] "GET /ws HTTP/1\.1" 101 ', log := output.read_text(),
                        re.M):
        assert time.monotonic() < deadline, log
        await asyncio.sleep(0.05)
    assert re.search(r'^127\.0\.0\.2 \[.*\] "GET /join HTTP/1\.1" 200 ', log, re.M), log
    assert "not-in-the-log" not in log


# A WebSocket opened in the page: the type of the first message it gets after ``auth``,
# or how it closed. It leaves the call it joined (closed without ``leave``, its
# participant would keep the call, and the server's drain, going while it is away).
FIRST_MESSAGE = """async ([url, token]) => new Promise((resolve) => {
    const ws = new WebSocket(url);
    ws.onopen = () => ws.send(JSON.stringify({type: "auth", token}));
    ws.onmessage = (event) => {
        resolve(JSON.parse(event.data).type);
        ws.send(JSON.stringify({type: "leave"}));
        ws.close();
    };
    ws.onclose = (event) => resolve(`closed ${event.code}`);
})"""


async def test_a_browser_opens_the_websocket_over_http2_through_haproxy(
        haproxy: tuple[ServeProcess, int, int, Path], tmp_path: Path) -> None:
    """The configuration offers HTTP/2: Chromium then opens /ws as an HTTP/2 stream
    (RFC 8441), which HAProxy hands to the server as an HTTP/1.1 upgrade."""
    _, tls_port, _, output = haproxy
    public = f"https://127.0.0.1:{tls_port}"
    async with client("127.0.0.2") as http:
        remote = remote_server(public, http)
        token = await remote.participant(await remote.sign_in("bob"), 1)
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch_persistent_context(
            tmp_path / "chromium-profile", executable_path=CHROMIUM, headless=True,
            args=FLAGS, ignore_https_errors=True)  # the test's self-signed certificate
        try:
            page = await browser.new_page()
            await page.goto(f"{public}/join")
            first = await asyncio.wait_for(
                page.evaluate(FIRST_MESSAGE, [f"wss://127.0.0.1:{tls_port}/ws", token]), 10)
        finally:
            await browser.close()
    assert first == "joined"
    deadline = time.monotonic() + 5
    while not re.search(r'"GET /ws HTTP/2\.0" 101 ', log := output.read_text()):
        assert time.monotonic() < deadline, log
        await asyncio.sleep(0.05)
    assert re.search(r'"GET /join HTTP/2\.0" 200 ', log), log
