"""Real coturn processes for tests: turn/turnserver.conf run on loopback.

``derived`` is the shipped file with only these lines changed, so that a test runs
what operators install: replaced, ``listening-port`` and ``tls-listening-port`` (free
ports), ``cert`` and ``pkey`` (a certificate made for the test, ``certificate``),
``static-auth-secret`` (the test's secret); added, ``listening-ip`` and ``relay-ip``
(127.0.0.1, plus ::1 as a relay address when the machine has IPv6 loopback),
``userdb`` and ``pidfile`` (in the test's directory, so that no system file is read
or written), and what the test passes as ``extra``. ``start`` runs coturn on a
configuration until a STUN binding request answers; ``echo_peer`` runs
turnutils_peer, a UDP echo server, as a relay's peer.

``coturn`` is a plain loopback coturn for tests of the relay path: the test flags of
docs, no configuration file, loopback peers allowed (the shipped file's hardening is
tests/media/test_turn.py's).
"""

from __future__ import annotations

import datetime
import os
import signal
import socket
import struct
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "turn" / "turnserver.conf"
REPLACED = {"listening-port", "tls-listening-port", "cert", "pkey", "static-auth-secret"}
ADDED = {"listening-ip", "relay-ip", "userdb", "pidfile"}
START_TIMEOUT_S = 5.0
STOP_TIMEOUT_S = 5.0


def directives(text: str) -> list[tuple[str, str]]:
    """(key, value) of every active line of a coturn configuration."""
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            out.append((key.strip(), value.strip()))
    return out


def free_port() -> int:
    """A port free for both UDP and TCP on 127.0.0.1."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind(("127.0.0.1", 0))
            port: int = udp.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                try:
                    tcp.bind(("127.0.0.1", port))
                except OSError:
                    continue
        return port
    raise AssertionError("no free port")


def has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


def stun_binding_request() -> tuple[bytes, bytes]:
    """A STUN binding request and its transaction id."""
    txid = os.urandom(12)
    return struct.pack("!HHI", 0x0001, 0, 0x2112A442) + txid, txid


def is_binding_success(data: bytes, txid: bytes) -> bool:
    return len(data) >= 20 and data[:2] == b"\x01\x01" and data[8:20] == txid


def wait_udp_echo(port: int, payload: bytes, ok: Callable[[bytes], bool],
                  proc: subprocess.Popen[bytes], log: Path) -> None:
    """Send ``payload`` to 127.0.0.1:port until an answer satisfying ``ok`` comes back."""
    deadline = time.monotonic() + START_TIMEOUT_S
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(0.05)
        while time.monotonic() < deadline:
            assert proc.poll() is None, f"exited with {proc.returncode}:\n{log.read_text()}"
            s.sendto(payload, ("127.0.0.1", port))
            try:
                data = s.recv(2048)
            except (TimeoutError, ConnectionRefusedError):
                continue
            if ok(data):
                return
    raise AssertionError(f"nothing answered on 127.0.0.1:{port}:\n{log.read_text()}")


def wait_stun(port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    request, txid = stun_binding_request()
    wait_udp_echo(port, request, lambda data: is_binding_success(data, txid), proc, log)


def stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(STOP_TIMEOUT_S)


@dataclass
class Coturn:
    proc: subprocess.Popen[bytes]
    port: int
    tls_port: int
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@contextmanager
def start(directory: Path, conf: str, port: int, tls_port: int = 0) -> Iterator[Coturn]:
    """coturn running ``conf`` (written to ``directory``), answering STUN on ``port``."""
    directory.mkdir(parents=True, exist_ok=True)
    conf_path = directory / "turnserver.conf"
    conf_path.write_text(conf)
    conf_path.chmod(0o600)
    log_path = directory / "coturn.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            ["turnserver", "-c", str(conf_path)], stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    try:
        wait_stun(port, proc, log_path)
        yield Coturn(proc, port, tls_port, log_path)
    finally:
        stop(proc)


def derived(directory: Path, port: int, tls_port: int, cert: Path, key: Path, secret: str,
            extra: tuple[str, ...] = ()) -> str:
    """The shipped file with only the documented lines replaced or added."""
    shipped = SHIPPED.read_text()
    keys = {k for k, _ in directives(shipped)}
    assert keys >= REPLACED and not keys & ADDED
    kept = [
        line for line in shipped.splitlines()
        if line.startswith("#") or line.partition("=")[0].strip() not in REPLACED
    ]
    relays = ["relay-ip=127.0.0.1"] + (["relay-ip=::1"] if has_ipv6_loopback() else [])
    overrides = [
        "listening-ip=127.0.0.1", *relays,
        f"listening-port={port}", f"tls-listening-port={tls_port}",
        f"cert={cert}", f"pkey={key}", f"static-auth-secret={secret}",
        f"userdb={directory / 'turndb'}", f"pidfile={directory / 'turnserver.pid'}",
        *extra,
    ]
    return "\n".join([*kept, "", *overrides, ""])


def certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for ``localhost`` and its key: (cert.pem, key.pem)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ))
    return cert_path, key_path


@contextmanager
def echo_peer(directory: Path) -> Iterator[int]:
    """turnutils_peer, a UDP echo server, on 127.0.0.1; yields its port."""
    port = free_port()
    log_path = directory / "peer.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            ["turnutils_peer", "-L", "127.0.0.1", "-p", str(port)],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
    try:
        wait_udp_echo(port, b"ping", lambda data: data == b"ping", proc, log_path)
        yield port
    finally:
        stop(proc)


@contextmanager
def coturn(directory: Path, secret: str) -> Iterator[int]:
    """A coturn on 127.0.0.1 sharing ``secret`` (TURN REST credentials); its port."""
    port = free_port()
    log_path = directory / "coturn-loopback.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            ["turnserver", "-n", "--listening-ip=127.0.0.1", "--relay-ip=127.0.0.1",
             f"--listening-port={port}", "--use-auth-secret",
             f"--static-auth-secret={secret}", "--realm=test",
             f"--userdb={directory / 'turndb'}", "--no-cli", "--no-tls", "--no-dtls",
             "--allow-loopback-peers", f"--pidfile={directory / 'turn.pid'}",
             "--log-file=stdout", "--simple-log"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        wait_stun(port, proc, log_path)
        yield port
    finally:
        stop(proc)
