"""HAProxy on loopback running docs/deploy.md's configuration, as the deploy test and
the fleet harness run it.

The ``haproxy`` block of docs/deploy.md is taken as written; only what a test must
change is replaced, each replacement checked to apply: the chroot and the user switch
(they need root), the stats socket (in the run's own directory, where the test speaks
HAProxy's runtime API on it, as ops would with ``socat``), the log (to stdout), the
listening addresses (127.0.0.1 and ports of the run's own; the IPv6 ones dropped), the
certificate, optionally the client and server timeouts, and the backend: in front of
one port the site's own server line is pointed at it; in front of several, the Fleet
section's ``haproxy fleet`` backend stands in for it, its nodes on these ports.
``command`` runs HAProxy in the foreground (``-db``), logging to its stdout.
"""

from __future__ import annotations

import re
import shutil
import socket
from pathlib import Path

from tests.support.certs import self_signed
from tests.support.docs import fenced_blocks

HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"
SITE_SERVER = "server videoassist 127.0.0.1:8080 check"  # the one-machine backend's
BACKEND = re.compile(r"^backend videoassist\n(?:[ \t]+.*\n?|\n(?=[ \t]))*", flags=re.M)


class ConfigError(ValueError):
    """docs/deploy.md's HAProxy blocks no longer read as this module expects."""


def _block(info: str) -> str:
    blocks = [b.body for b in fenced_blocks("deploy.md") if b.info == info]
    if len(blocks) != 1:
        raise ConfigError(f"docs/deploy.md has {len(blocks)} {info!r} blocks, not one")
    return blocks[0]


def fleet_backend(ports: list[int]) -> str:
    """The Fleet section's ``backend videoassist``, its nodes on these loopback ports
    (as many as the doc lists)."""
    found = BACKEND.search(_block("haproxy fleet"))
    if found is None:
        raise ConfigError("docs/deploy.md's haproxy fleet block has no backend videoassist")
    backend = found.group(0)
    servers = re.findall(r"^(\s*server \S+ )(\S+)", backend, flags=re.M)
    if len(servers) != len(ports):
        raise ConfigError(f"docs/deploy.md's haproxy fleet backend lists {len(servers)} "
                          f"nodes, not {len(ports)}")
    for (prefix, address), port in zip(servers, ports, strict=True):
        backend = backend.replace(f"{prefix}{address}", f"{prefix}127.0.0.1:{port}", 1)
    return backend


def write_conf(directory: Path, ports: list[int], tls_port: int, http_port: int, *,
               timeout_s: int | None = None) -> Path:
    """A haproxy.cfg in ``directory`` (its certificate and stats socket there too) in
    front of servers on these ports; ``timeout_s`` in place of the client and server
    timeouts; its path."""
    cert, key = self_signed(directory)
    pem = directory / "assist.pem"  # HAProxy's crt: the certificate, then its key
    pem.write_bytes(cert.read_bytes() + key.read_bytes())
    text = _block("haproxy")
    if len(ports) == 1:
        backend = [(SITE_SERVER, f"server videoassist 127.0.0.1:{ports[0]} check")]
    else:
        text, count = BACKEND.subn(lambda _: fleet_backend(ports), text)
        if count != 1:
            raise ConfigError("docs/deploy.md's haproxy block has no backend videoassist")
        backend = []
    timeouts = [] if timeout_s is None else [
        ("timeout client 30s", f"timeout client {timeout_s}s"),
        ("timeout server 30s", f"timeout server {timeout_s}s")]
    for old, new in [
        *backend,
        *timeouts,
        ("    chroot /var/lib/haproxy\n", ""),  # these two need root
        ("    user haproxy\n    group haproxy\n", ""),
        ("/run/haproxy/admin.sock", str(stats_socket(directory))),
        ("log /dev/log local0", "log stdout format raw local0"),
        ("bind :80\n", f"bind 127.0.0.1:{http_port}\n"),
        ("    bind :::80 v6only\n", ""),  # IPv6 may be off on a test machine
        ("bind :443 ssl crt /etc/haproxy/certs/assist.example.com.pem",
         f"bind 127.0.0.1:{tls_port} ssl crt {pem}"),
        ("    bind :::443 v6only ssl crt /etc/haproxy/certs/assist.example.com.pem"
         " alpn h2,http/1.1\n", ""),
    ]:
        if text.count(old) != 1:
            raise ConfigError(f"docs/deploy.md's haproxy block has no {old.strip()!r} (once)")
        text = text.replace(old, new)
    conf = directory / "haproxy.cfg"
    conf.write_text(text + "\n")
    return conf


def stats_socket(directory: Path) -> Path:
    return directory / "admin.sock"


def command(conf: Path, *args: str) -> list[str]:
    """HAProxy on ``conf`` in the foreground, logging to its standard output."""
    return [HAPROXY, "-db", "-f", str(conf), *args]


def runtime(directory: Path, line: str) -> str:
    """One command of HAProxy's runtime API on the stats socket (what ops send with
    ``socat``); its answer."""
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(10)
        sock.connect(str(stats_socket(directory)))
        sock.sendall(line.encode() + b"\n")
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer.decode()


def server_stat(directory: Path, column: str, backend: str = "videoassist"
                ) -> dict[str, int]:
    """One counter of ``show stat`` for each server of a backend: ``stot``, the
    connections HAProxy has sent it in all (health checks not counted), or ``scur``,
    those open now."""
    lines = runtime(directory, "show stat").splitlines()
    header = lines[0].lstrip("# ").split(",")
    values: dict[str, int] = {}
    for line in lines[1:]:
        row = dict(zip(header, line.split(","), strict=False))
        if row.get("pxname") == backend and row.get("svname") not in (None, "BACKEND",
                                                                       "FRONTEND"):
            values[row["svname"]] = int(row[column] or 0)
    return values
