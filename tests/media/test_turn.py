"""TURN: REST credentials, and turn/turnserver.conf run by a real coturn.

The coturn tests start /usr/bin/turnserver with the shipped turn/turnserver.conf copied
into a temporary directory, where these lines, and only these, are changed (the test
checks that the shipped file holds exactly the replaced keys and none of the added ones):

- replaced: ``listening-port`` and ``tls-listening-port`` (free ports), ``cert`` and
  ``pkey`` (a certificate made for the test), ``static-auth-secret`` (a test secret);
- added: ``listening-ip`` and ``relay-ip`` (127.0.0.1, plus ::1 as a relay address when
  the machine has IPv6 loopback), ``userdb`` and ``pidfile`` (in the temporary directory,
  so that no system file is read or written).

Everything else, the deny list included, is the file as shipped (``tests/support/coturn.py``
does this, for the TURN tier's tests too). turnutils_uclient only asks coturn on
127.0.0.1 to relay; coturn refuses a denied peer (403 Forbidden IP) before sending it
anything, so nothing leaves the machine. The runs that do relay use 127.0.0.1 peers
only (turnutils_peer, an echo server).

Three more coturns show that a relay does happen where it should, so that the 403s are
the configuration's doing: a minimal one without the deny list (the control), the shipped
file plus ``allowed-peer-ip=127.0.0.1`` (how the media server's address is let through),
and ``scripts/turn``, the development override.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import ipaddress
import itertools
import os
import re
import socket
import ssl
import subprocess
import time
import warnings
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from aioice import stun, turn

from tests.support import coturn
from tests.support.coturn import (
    REPO,
    SHIPPED,
    STOP_TIMEOUT_S,
    Coturn,
    derived,
    directives,
    free_port,
    has_ipv6_loopback,
    is_binding_success,
    start,
    stop,
    stun_binding_request,
    wait_stun,
)
from videoassist import keyfiles
from videoassist.config import Settings, load_settings
from videoassist.media.turn import turn_credentials

SECRET = "test-secret-shared-with-coturn"
UCLIENT_TIMEOUT_S = 12.0
FORBIDDEN = "error 403 (Forbidden IP)"
_user_ids = itertools.count(1)


# --- turn_credentials -------------------------------------------------------------------


def test_credentials_match_a_hand_computed_hmac() -> None:
    ice = turn_credentials(
        "s3cret-shared-with-coturn",
        ["turn:turn.example.com:3478?transport=udp", "turns:turn.example.com:443?transport=tcp"],
        600,
        "participant-42",
        now=1_700_000_000.9,
    )
    # printf %s "1700000600:participant-42" \
    #   | openssl dgst -sha1 -hmac "s3cret-shared-with-coturn" -binary | base64
    assert ice == {
        "urls": [
            "turn:turn.example.com:3478?transport=udp",
            "turns:turn.example.com:443?transport=tcp",
        ],
        "username": "1700000600:participant-42",
        "credential": "0xqvo9G3QdTWQ0BuNOwfZIL2kO0=",
    }
    # And the scheme itself, for any input.
    expected = hmac.new(b"k", b"1000010:u", hashlib.sha1).digest()
    assert turn_credentials("k", [], 10, "u", 1_000_000)["credential"] == (
        base64.b64encode(expected).decode()
    )


@pytest.mark.parametrize("ttl_s", [601, 3600, 0, -1])
def test_credentials_refuse_a_lifetime_outside_1_to_600_s(ttl_s: int) -> None:
    with pytest.raises(ValueError, match="lifetime"):
        turn_credentials(SECRET, ["turn:t:3478"], ttl_s, "u", time.time())


def test_credentials_refuse_a_single_url_string_and_empty_values() -> None:
    with pytest.raises(TypeError):
        turn_credentials(SECRET, "turn:t:3478", 600, "u", time.time())
    with pytest.raises(ValueError):
        turn_credentials("", ["turn:t:3478"], 600, "u", time.time())
    with pytest.raises(ValueError):
        turn_credentials(SECRET, ["turn:t:3478"], 600, "", time.time())


# --- the configuration file as text -----------------------------------------------------


def _ranges(text: str, key: str) -> list[tuple[ipaddress.IPv4Address | ipaddress.IPv6Address,
                                              ipaddress.IPv4Address | ipaddress.IPv6Address]]:
    ranges = []
    for k, value in directives(text):
        if k == key:
            first, _, last = value.partition("-")
            ranges.append((ipaddress.ip_address(first), ipaddress.ip_address(last or first)))
    return ranges


# Every special-purpose block (IANA registries) that a relay must not reach. coturn 4.6.1
# refuses :: and 0.0.0.0/8 itself; 0.0.0.0/8 is listed anyway.
MUST_DENY = [
    "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16",
    "172.16.0.0/12", "192.0.0.0/24", "192.0.2.0/24", "192.88.99.0/24", "192.168.0.0/16",
    "198.18.0.0/15", "198.51.100.0/24", "203.0.113.0/24", "224.0.0.0/4", "240.0.0.0/4",
    "255.255.255.255/32",
    "::/96", "::ffff:0:0/96", "::ffff:0:0:0/96", "64:ff9b::/96", "64:ff9b:1::/48",
    "100::/64", "2001::/23", "2001:db8::/32", "2002::/16", "3fff::/20", "5f00::/16",
    "fc00::/7", "fe80::/10", "fec0::/10", "ff00::/8",
]


def _byte_aligned(first: bytes, last: bytes) -> bool:
    """Whether coturn's byte-by-byte IPv6 comparison gives the numeric range FIRST-LAST."""
    i = 0
    while i < len(first) and first[i] == last[i]:
        i += 1
    return all(b == 0 for b in first[i + 1:]) and all(b == 0xFF for b in last[i + 1:])


def test_deny_list_covers_every_internal_range_in_a_form_coturn_reads_right() -> None:
    text = SHIPPED.read_text()
    ranges = _ranges(text, "denied-peer-ip")
    spans = []
    for first, last in ranges:
        # coturn 4.6.1: a range starting at :: also matches every IPv4 peer, and one
        # ending at :: or 0.0.0.0 matches every peer.
        assert first.version == last.version and first <= last, (first, last)  # type: ignore[operator]
        assert first != ipaddress.IPv6Address("::"), (first, last)
        assert any(last.packed), (first, last)
        if first.version == 6:
            assert _byte_aligned(first.packed, last.packed), f"{first}-{last}"
        spans.append((first.version, int(first), int(last)))
    for required in map(ipaddress.ip_network, MUST_DENY):
        lo, hi = int(required.network_address), int(required.broadcast_address)
        lo = max(lo, 1)  # :: is coturn's own business (see above)
        # Walk the sorted ranges of this family; they must cover lo..hi with no gap.
        for _, first_i, last_i in sorted(s for s in spans if s[0] == required.version):
            if first_i <= lo <= last_i:
                lo = last_i + 1
        assert lo > hi, f"{required} is not wholly denied (from {ipaddress.ip_address(lo)})"
    # The media server's own address stays a commented placeholder; nothing is allowed.
    keys = [k for k, _ in directives(text)]
    assert "allowed-peer-ip" not in keys and "allow-loopback-peers" not in keys
    assert "#allowed-peer-ip=MEDIA_SERVER_IP" in text.splitlines()


def test_config_is_hardened_and_every_line_is_commented() -> None:
    text = SHIPPED.read_text()
    settings = dict(directives(text))
    for flag in ("use-auth-secret", "no-multicast-peers", "no-cli", "no-tlsv1", "no-tlsv1_1",
                 "fingerprint", "no-software-attribute", "no-tcp-relay", "no-dtls"):
        assert flag in settings, flag
    assert settings["stale-nonce"] == "600"
    assert settings["listening-port"] == "3478"
    assert settings["tls-listening-port"] == "443"
    assert settings["static-auth-secret"] == "CHANGE_ME"
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.strip() and not line.startswith("#"):
            assert lines[i - 1].startswith("#"), f"line {i + 1} has no comment: {line}"


# --- running coturn ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return coturn.certificate(tmp_path_factory.mktemp("cert"))


@pytest.fixture(scope="module")
def shipped(tmp_path_factory: pytest.TempPathFactory,
            certificate: tuple[Path, Path]) -> Iterator[Coturn]:
    """coturn running turn/turnserver.conf, with only the documented overrides."""
    directory = tmp_path_factory.mktemp("shipped")
    port, tls_port = free_port(), free_port()
    with start(directory, derived(directory, port, tls_port, *certificate, SECRET), port,
                tls_port) as coturn:
        yield coturn


@pytest.fixture(scope="module")
def echo_peer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """turnutils_peer, a UDP echo server, on 127.0.0.1; yields its port."""
    with coturn.echo_peer(tmp_path_factory.mktemp("peer")) as port:
        yield port


@dataclass
class Run:
    output: str
    returncode: int

    @property
    def forbidden(self) -> bool:
        return FORBIDDEN in self.output

    @property
    def echoed(self) -> int:
        """Messages that came back from the peer through the relay."""
        found = re.findall(r"start_mclient: tot_send_msgs=\d+, tot_recv_msgs=(\d+)", self.output)
        return int(found[-1]) if found else 0


def _uclient_start(port: int, peer: str, peer_port: int, *flags: str,
                   secret: str = SECRET) -> subprocess.Popen[str]:
    """turnutils_uclient with TURN REST credentials from turn_credentials()."""
    ice = turn_credentials(secret, [f"turn:127.0.0.1:{port}"], 600,
                           f"test-{next(_user_ids)}", time.time())
    return subprocess.Popen(
        ["turnutils_uclient", "-c", "-n", "1", "-m", "1", "-p", str(port),
         "-u", ice["username"], "-w", ice["credential"],
         "-e", peer, "-r", str(peer_port), *flags, "127.0.0.1"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True,
    )


def _uclient_finish(proc: subprocess.Popen[str]) -> Run:
    try:
        output, _ = proc.communicate(timeout=UCLIENT_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        output, _ = proc.communicate(timeout=STOP_TIMEOUT_S)
    return Run(output, proc.returncode)


def uclient(port: int, peer: str, peer_port: int, *flags: str, secret: str = SECRET) -> Run:
    return _uclient_finish(_uclient_start(port, peer, peer_port, *flags, secret=secret))


@contextmanager
def _dev_script(directory: Path, data_dir: Path, port: int) -> Iterator[DevTurn]:
    """scripts/turn, run as a developer would (no VIDEOASSIST_* in its environment)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIDEOASSIST_")}
    log_path = directory / "scripts-turn.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [str(REPO / "scripts" / "turn"), "--port", str(port), "--data-dir", str(data_dir)],
            stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL, env=env,
        )
    try:
        wait_stun(port, proc, log_path)
        assert proc.stdout is not None
        # Printed before coturn starts, so it is in the pipe by now.
        urls = proc.stdout.readline().decode().strip()
        yield DevTurn(proc, port, urls, log_path)
    finally:
        stop(proc)
        if proc.stdout is not None:
            proc.stdout.close()


@dataclass
class DevTurn:
    proc: subprocess.Popen[bytes]
    port: int
    urls_line: str
    log_path: Path


@dataclass
class Relayed:
    """Coturns that may relay to 127.0.0.1, each with one uclient run through it."""

    control: Coturn
    control_run: Run
    allowed: Coturn
    allowed_run: Run
    dev: DevTurn
    dev_secret: str
    dev_run: Run


@pytest.fixture(scope="module")
def relayed(tmp_path_factory: pytest.TempPathFactory, certificate: tuple[Path, Path],
            echo_peer: int) -> Iterator[Relayed]:
    """Starts the three coturns and runs their relaying uclients side by side.

    turnutils_uclient waits a random 1 to 6 s before it sends (uclient.c,
    ``to_send_timems``), so the three runs that must relay go in parallel.
    """
    with ExitStack() as stack:
        # 1. The control: a minimal coturn WITHOUT the deny list (FACTS.md's test setup).
        directory = tmp_path_factory.mktemp("control")
        port = free_port()
        control = stack.enter_context(start(directory, "\n".join([
            "listening-ip=127.0.0.1", "relay-ip=127.0.0.1", f"listening-port={port}",
            "use-auth-secret", f"static-auth-secret={SECRET}", "realm=test",
            f"userdb={directory / 'turndb'}", f"pidfile={directory / 'turnserver.pid'}",
            "log-file=stdout", "no-cli", "no-tls", "no-dtls", "allow-loopback-peers", "",
        ]), port))
        # 2. The shipped file with the media server's address allowed. Loopback stands in
        # for a private address; allow-loopback-peers only lifts coturn's built-in loopback
        # refusal, 127.0.0.0/8 stays in the deny list.
        directory = tmp_path_factory.mktemp("allowed")
        port = free_port()
        allowed = stack.enter_context(start(directory, derived(
            directory, port, free_port(), *certificate, SECRET,
            extra=("allow-loopback-peers", "allowed-peer-ip=127.0.0.1"),
        ), port))
        # 3. scripts/turn, with the secret videoassist itself writes into its data dir.
        directory = tmp_path_factory.mktemp("dev")
        data_dir = directory / "data"
        dev_secret = keyfiles.turn_secret(Settings(data_dir=data_dir))
        dev = stack.enter_context(_dev_script(directory, data_dir, free_port()))

        pending = [
            _uclient_start(control.port, "127.0.0.1", echo_peer),
            _uclient_start(allowed.port, "127.0.0.1", echo_peer),
            _uclient_start(dev.port, "127.0.0.1", echo_peer, secret=dev_secret),
        ]
        control_run, allowed_run, dev_run = (_uclient_finish(p) for p in pending)
        yield Relayed(control, control_run, allowed, allowed_run, dev, dev_secret, dev_run)


def test_shipped_config_loads_without_a_single_ignored_line(shipped: Coturn) -> None:
    log = shipped.log()
    assert "Bad configuration format" not in log
    assert "Wrong address format" not in log
    errors = [line for line in log.splitlines()
              if "ERROR" in line and "A peer IP" not in line]
    assert errors == []
    # Each deny line is in force: coturn logs one "Black listing" per range it parsed.
    denied = [v for k, v in directives(SHIPPED.read_text()) if k == "denied-peer-ip"]
    assert re.findall(r"Black listing: (\S+)", log) == denied
    assert "White listing" not in log
    assert "TLS cipher suite: ECDHE+AESGCM:ECDHE+CHACHA20" in log


IPV4_DENIED = [
    "10.0.0.5", "169.254.169.254", "224.0.0.1", "127.0.0.1", "172.16.0.1", "192.168.1.1",
    "100.64.0.1", "198.18.0.1", "240.0.0.1", "255.255.255.255", "0.0.0.0",
]
IPV6_DENIED = [
    "::1", "fd00:ec2::254", "fe80::1", "::ffff:10.0.0.5", "::ffff:127.0.0.1",
    "64:ff9b::a00:5", "ff02::1", "2001:db8::1",
]


@pytest.mark.parametrize("peer", IPV4_DENIED + IPV6_DENIED)
def test_shipped_config_refuses_to_relay_to_internal_peers(
    shipped: Coturn, echo_peer: int, peer: str
) -> None:
    # Checked on the text first, so that a broken deny list fails here and the uclient run
    # below never makes coturn send to a real internal address. (From relay-ip 127.0.0.1
    # Linux refuses to send to a non-loopback IPv4 address anyway; from ::1 it does not.)
    address = ipaddress.ip_address(peer)
    assert any(first <= address <= last  # type: ignore[operator]
               for first, last in _ranges(SHIPPED.read_text(), "denied-peer-ip")
               if first.version == address.version), f"{peer} is not in the deny list"
    flags: tuple[str, ...] = ()
    if ":" in peer:
        if not has_ipv6_loopback():
            pytest.skip("no IPv6 loopback for an IPv6 relay address")
        flags = ("-x",)  # ask for an IPv6 relay address
    run = uclient(shipped.port, peer, echo_peer, *flags)
    assert run.forbidden, run.output
    assert run.echoed == 0


def test_control_without_the_deny_list_relays_to_loopback(
    relayed: Relayed, echo_peer: int
) -> None:
    """The same command against a minimal coturn relays: the 403s above are the config's."""
    run = relayed.control_run
    assert not run.forbidden and run.echoed >= 1 and run.returncode == 0, run.output
    # A wrong secret fails the allocation itself ("Cannot complete Allocation"), never
    # with a 403: the 403s above are about the peer.
    wrong = uclient(relayed.control.port, "127.0.0.1", echo_peer, secret="not-the-secret")
    assert "Cannot complete Allocation" in wrong.output, wrong.output
    assert not wrong.forbidden and wrong.echoed == 0 and wrong.returncode != 0


def test_allowed_peer_ip_wins_over_denied_peer_ip(relayed: Relayed, echo_peer: int) -> None:
    """How MEDIA_SERVER_IP works: one allowed address inside a denied range is relayed to."""
    run = relayed.allowed_run
    assert not run.forbidden and run.echoed >= 1, run.output
    # The rest of the denied range stays denied.
    other = uclient(relayed.allowed.port, "127.0.0.2", echo_peer)
    assert other.forbidden, other.output
    assert "White listing: 127.0.0.1" in relayed.allowed.log()


async def test_expiry_is_checked_on_allocation_only(relayed: Relayed, echo_peer: int) -> None:
    """coturn 4.6.1 checks a REST username's EXPIRY when it authenticates a new allocation,
    then keeps that allocation's key: refreshes, permissions and channels of a live
    allocation go on after EXPIRY. So a call outlives its 600 s credentials, and any new
    allocation (a new RTCPeerConnection) needs fresh ones from the server."""
    server = ("127.0.0.1", relayed.control.port)
    received: asyncio.Queue[bytes] = asyncio.Queue()
    closed = asyncio.get_running_loop().create_future()

    class Receiver(asyncio.DatagramProtocol):
        def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
            received.put_nowait(data)

        def connection_lost(self, exc: Exception | None) -> None:
            closed.set_result(None)

    expired = turn_credentials(SECRET, [], 600, "expired", time.time() - 3600)
    try:
        transport, _ = await turn.create_turn_endpoint(
            Receiver, server, expired["username"], expired["credential"]
        )
    except stun.TransactionFailed as refused:
        assert refused.response.error_code == 401
    else:
        transport.close()
        await asyncio.wait_for(closed, STOP_TIMEOUT_S)
        pytest.fail("coturn allocated with an expired credential")

    short = turn_credentials(SECRET, [], 2, "short", time.time())
    expiry = int(short["username"].split(":")[0])
    transport, _ = await turn.create_turn_endpoint(
        Receiver, server, short["username"], short["credential"]
    )
    try:
        # Well past EXPIRY, even for coturn's once-a-second clock.
        await asyncio.sleep(max(0.0, expiry + 2 - time.time()))
        # A first send binds a channel to a new peer: an authenticated request after EXPIRY.
        transport.sendto(b"after expiry", ("127.0.0.1", echo_peer))
        assert await asyncio.wait_for(received.get(), 5) == b"after expiry"
    finally:
        transport.close()
        await asyncio.wait_for(closed, STOP_TIMEOUT_S)


def test_dev_script_relays_to_loopback_and_still_refuses_private_peers(
    relayed: Relayed, echo_peer: int
) -> None:
    dev = relayed.dev
    assert dev.urls_line == (f"VIDEOASSIST_TURN_URLS=turn:127.0.0.1:{dev.port}?transport=udp,"
                             f"turn:127.0.0.1:{dev.port}?transport=tcp")
    name, _, value = dev.urls_line.partition("=")
    assert len(load_settings({name: value}).turn_urls) == 2
    assert "DROPPED  denied-peer-ip=127.0.0.0-127.255.255.255" in dev.log_path.read_text()
    run = relayed.dev_run
    assert not run.forbidden and run.echoed >= 1, run.output
    for peer in ("10.0.0.5", "169.254.169.254", "224.0.0.1"):
        refused = uclient(dev.port, peer, echo_peer, secret=relayed.dev_secret)
        assert refused.forbidden, refused.output


def test_dev_script_stops_its_coturn_and_removes_its_files(tmp_path: Path) -> None:
    with _dev_script(tmp_path, tmp_path / "data", free_port()) as dev:
        banner = dev.log_path.read_text()
        found = re.search(r"loopback override \((\S+)/turnserver\.conf\)", banner)
        assert found, banner
        tmp = Path(found.group(1))
        assert (tmp / "turnserver.conf").stat().st_mode & 0o077 == 0  # holds the secret
        coturn_pid = int((tmp / "turnserver.pid").read_text())
        assert (tmp_path / "data" / "turn-secret").stat().st_mode & 0o077 == 0
    assert dev.proc.returncode is not None
    assert not tmp.exists()
    with pytest.raises(ProcessLookupError):
        os.kill(coturn_pid, 0)


def test_tls_listener_speaks_tls_1_2_or_later_only(
    shipped: Coturn, certificate: tuple[Path, Path]
) -> None:
    cert, _ = certificate
    request, txid = stun_binding_request()
    context = ssl.create_default_context(cafile=str(cert))
    with socket.create_connection(("127.0.0.1", shipped.tls_port), timeout=5) as raw, \
            context.wrap_socket(raw, server_hostname="localhost") as tls:
        assert tls.version() in ("TLSv1.2", "TLSv1.3")
        tls.sendall(request)
        header = b""
        while len(header) < 20:
            chunk = tls.recv(20 - len(header))
            assert chunk, "connection closed"
            header += chunk
        assert is_binding_success(header, txid)
    old = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    old.check_hostname = False
    old.verify_mode = ssl.CERT_NONE
    old.set_ciphers("DEFAULT:@SECLEVEL=0")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        old.minimum_version = ssl.TLSVersion.TLSv1
        old.maximum_version = ssl.TLSVersion.TLSv1_1
    # coturn 4.6.1 with no-tlsv1/no-tlsv1_1 sends no alert: the handshake just stalls. (Its
    # TLS 1.2-only cipher-list would refuse TLS 1.0/1.1 with an alert on its own.)
    with socket.create_connection(("127.0.0.1", shipped.tls_port), timeout=1) as raw, \
            pytest.raises((ssl.SSLError, TimeoutError)):
        old.wrap_socket(raw).close()
