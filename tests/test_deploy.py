"""docs/deploy.md's nginx configuration, as written there, in front of a real server.

The ``nginx`` block is taken from the doc; only what a test must change is replaced
(listening addresses, certificate paths, the log file, the upstream port), each
replacement checked to apply. A real nginx (Debian's package, which scripts/test
installs) runs it in the foreground; clients connect from other loopback addresses
(127.0.0.2, ...) so that the address nginx sees differs from its own.
"""

from __future__ import annotations

import datetime
import ipaddress
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.support.docs import fenced_blocks
from tests.support.process import ServeProcess, ok
from tests.support.server import PASSWORD, Clock, Server, free_port, receive
from videoassist.config import Settings

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


def documented_site() -> str:
    [block] = [b for b in fenced_blocks("deploy.md") if b.info == "nginx"]
    return block.body


def self_signed(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / "fullchain.pem", directory / "privkey.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def nginx_conf(directory: Path, tls_port: int, http_port: int, upstream_port: int) -> Path:
    cert, key = self_signed(directory)
    site = documented_site()
    for old, new in [
        ("listen 443 ssl http2;", f"listen 127.0.0.1:{tls_port} ssl http2;"),
        ("listen 80;", f"listen 127.0.0.1:{http_port};"),
        ("    listen [::]:443 ssl http2;\n", ""),  # IPv6 may be off on a test machine
        ("    listen [::]:80;\n", ""),
        ("/etc/letsencrypt/live/assist.example.com/fullchain.pem", str(cert)),
        ("/etc/letsencrypt/live/assist.example.com/privkey.pem", str(key)),
        ("/var/log/nginx/videoassist.access.log", str(directory / "access.log")),
        ("server 127.0.0.1:8080;", f"server 127.0.0.1:{upstream_port};"),
    ]:
        assert site.count(old) == 1, f"docs/deploy.md's nginx block has no {old!r}"
        site = site.replace(old, new)
    temp = "\n".join(f"    {kind}_temp_path {directory / kind};"
                     for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    conf = directory / "nginx.conf"
    conf.write_text(f"""daemon off;
master_process off;
worker_processes 1;
pid {directory / 'nginx.pid'};
error_log {directory / 'error.log'} info;
events {{ worker_connections 256; }}
http {{
{temp}
{site}
}}
""")
    return conf


def nginx(conf: Path, *args: str) -> list[str]:
    return [NGINX, "-c", str(conf), "-p", str(conf.parent), "-e", str(conf.parent / "e.log"),
            *args]


@pytest.fixture
def proxy(tmp_path: Path) -> Iterator[tuple[ServeProcess, int, int, Path]]:
    """A server with bob (expert) and job 1, behind nginx: (server, TLS port, HTTP
    port, nginx's directory)."""
    data_dir = tmp_path / "data"
    ok(data_dir, "user", "add", "bob", "--role", "expert", "--password-stdin",
       stdin=PASSWORD + "\n")
    ok(data_dir, "job", "create", "Boiler makes a noise")
    tls_port, http_port = free_port(), free_port()
    directory = tmp_path / "nginx"
    directory.mkdir()
    conf = nginx_conf(directory, tls_port, http_port, upstream_port := free_port())
    server = ServeProcess(data_dir, port=upstream_port, env={
        "VIDEOASSIST_WORKERS": "2",  # as on a machine of two cores, whatever this one has
        "VIDEOASSIST_PUBLIC_URL": f"https://127.0.0.1:{tls_port}",
        "VIDEOASSIST_TRUST_FORWARDED_FOR": "true",
        "VIDEOASSIST_SIGNIN_MAX_FAILURES_PER_CLIENT": "2",
    })
    output = directory / "stderr.log"
    with output.open("wb") as sink:
        proc = subprocess.Popen(nginx(conf), stdout=sink, stderr=subprocess.STDOUT)
    try:
        server.wait_for(r"serving on .* with 2 workers")
        server.wait_ready()
        deadline = time.monotonic() + 10
        while True:
            assert proc.poll() is None, output.read_text()
            try:
                socket.create_connection(("127.0.0.1", tls_port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, (directory / "error.log").read_text()
                time.sleep(0.05)
        yield server, tls_port, http_port, directory
    finally:
        proc.send_signal(signal.SIGQUIT)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        assert server.stop() == 0, server.output


def test_the_documented_config_passes_nginx_t(tmp_path: Path) -> None:
    conf = nginx_conf(tmp_path, free_port(), free_port(), 8080)
    result = subprocess.run(nginx(conf, "-t"), capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert "test is successful" in result.stderr
    assert "[warn]" not in result.stderr, result.stderr


def client(source: str) -> aiohttp.ClientSession:
    """An HTTP client connecting from ``source``, a loopback address of its own."""
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(
        ssl=False, local_addr=(source, 0)))


async def test_a_call_through_nginx_and_the_client_address_it_passes(
        proxy: tuple[ServeProcess, int, int, Path]) -> None:
    server, tls_port, http_port, directory = proxy
    public = f"https://127.0.0.1:{tls_port}"
    async with client("127.0.0.2") as http:
        remote = Server(public, Settings(port=tls_port, public_url=public),
                        None, Clock(), http)  # type: ignore[arg-type]
        assert (await remote.request("GET", "/healthz"))[0] == 200
        assert (await remote.request("GET", "/metrics"))[0] == 404  # kept off the proxy
        async with http.get(f"{server.url}/metrics") as direct:
            assert direct.status == 200  # on the server's own port: every worker's
            scraped = await direct.text()
            for worker in ("0", "1"):
                assert f'videoassist_worker_up{{worker="{worker}"}} 1' in scraped
        async with http.get(f"http://127.0.0.1:{http_port}/join",
                            allow_redirects=False) as plain:
            assert plain.status == 301
            assert plain.headers["Location"] == "https://127.0.0.1/join"
        status, _, headers = await remote.request("GET", "/join?token=not-in-the-log")
        assert status == 200 and headers["Strict-Transport-Security"]

        # A call over wss:// through nginx: join, chat relayed both ways.
        staff_token = await remote.sign_in("bob")
        expert, joined = await remote.join_call(staff_token, 1)
        customer, _ = await remote.join_call(await remote.participant(staff_token, 1))
        assert (await receive(expert))["type"] == "participant.joined"
        await customer.send_json({"type": "chat.message", "text": "through the proxy"})
        for ws in (expert, customer):
            chat = await receive(ws)
            assert chat["message"]["text"] == "through the proxy", chat
        assert joined["call"]["id"] >= 1
        await customer.close()
        await expert.close()

    # Sign-in limits count the client nginx saw: a forged X-Forwarded-For changes
    # nothing (2 failures per client, then 429), another client has its own count.
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

    log = (directory / "access.log").read_text()
    assert re.search(r'^127\.0\.0\.2 .*"GET /join" 200', log, re.M), log
    assert "not-in-the-log" not in log
