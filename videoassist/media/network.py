"""Where the server's media sockets are: the UDP ports, the addresses, and the address
announced in their place behind a 1:1 NAT (``VIDEOASSIST_MEDIA_PORTS``,
``VIDEOASSIST_MEDIA_ADDRESSES``, ``VIDEOASSIST_MEDIA_ANNOUNCED_ADDRESS``).

With none of them set, nothing here is used: aioice binds each peer connection's host
candidates to a port the kernel picks, on every address of the machine but 127.0.0.1,
::1 and link-local IPv6 ones. With any of them, ``aiortc_hooks.gather_on`` has each peer
connection's ICE agent take its host sockets from ``MediaNetwork.bind``: one per
address, at the next free port of the range (the port after the last one given,
round the range, so a port just freed is the last to be given again), and its
candidates say the announced address in place of the socket's.

A port another program (or another peer connection) holds is skipped. When every
port of the range is held on an address, ``bind`` raises ``MediaPortsExhausted``: the
offer that needed it is refused, nothing crashes.

The supervisor gives each worker a slice of the range (``split``) on its command line;
a worker's settings hold only its slice.
"""

from __future__ import annotations

import errno
import ipaddress
import logging
import socket
from collections.abc import Iterable
from pathlib import Path

import ifaddr

from videoassist.errors import ConfigError, Unavailable

logger = logging.getLogger(__name__)


class MediaPortsExhausted(Unavailable):
    """Every port of the media range is in use on an address: the offer is refused."""

    default_message = ("The server has no free media port right now. "
                       "Try again in a minute.")

    def __init__(self, detail: str) -> None:
        super().__init__()
        self.detail = detail  # for the log: which range, which address


def machine_addresses() -> dict[str, list[str]]:
    """The machine's addresses by interface name, link-local IPv6 ones left out (a
    socket on one needs a scope, and aioice skips them too)."""
    found: dict[str, list[str]] = {}
    for adapter in ifaddr.get_adapters():
        for ip in adapter.ips:
            if isinstance(ip.ip, str):
                found.setdefault(adapter.name, []).append(ip.ip)
            elif ip.ip[2] == 0 and not ipaddress.ip_address(ip.ip[0]).is_link_local:
                found.setdefault(adapter.name, []).append(ip.ip[0])
    return found


def resolve(items: Iterable[str]) -> tuple[str, ...]:
    """The addresses ``VIDEOASSIST_MEDIA_ADDRESSES`` names (addresses of this machine,
    or interface names for all their addresses), each once; ConfigError otherwise."""
    interfaces = machine_addresses()
    mine = {address for addresses in interfaces.values() for address in addresses}
    chosen: list[str] = []
    for item in items:
        try:
            address = str(ipaddress.ip_address(item))
        except ValueError:
            if not interfaces.get(item):
                raise ConfigError(
                    f"VIDEOASSIST_MEDIA_ADDRESSES: {item!r} is neither an address of this "
                    f"machine nor one of its interfaces ({', '.join(sorted(interfaces))})"
                ) from None
            found = interfaces[item]
        else:
            if address not in mine:
                raise ConfigError(
                    f"VIDEOASSIST_MEDIA_ADDRESSES: {item} is not an address of this machine "
                    f"({', '.join(sorted(mine))})")
            found = [address]
        chosen += [address for address in found if address not in chosen]
    return tuple(chosen)


def split(ports: tuple[int, int], workers: int, minimum: int) -> list[tuple[int, int]]:
    """``workers`` disjoint slices of equal size, in worker order; the remainder of the
    division is left unused. ConfigError if a slice would hold fewer than ``minimum``."""
    first, last = ports
    size = (last - first + 1) // workers
    if size < minimum:
        raise ConfigError(
            f"VIDEOASSIST_MEDIA_PORTS: {last - first + 1} ports cannot give each of the "
            f"{workers} workers the {minimum} it needs at least: widen the range or run "
            "fewer workers")
    return [(first + i * size, first + (i + 1) * size - 1) for i in range(workers)]


SYSCTL = Path("/proc/sys/net/ipv4")


def _port_set(text: str) -> set[int]:
    """The ports of a sysctl port list (``40000-40999,50000``)."""
    found: set[int] = set()
    for item in text.replace(" ", "").split(","):
        if item:
            low, _, high = item.partition("-")
            found.update(range(int(low), int(high or low) + 1))
    return found


def ephemeral_overlap(ports: tuple[int, int], sysctl: Path = SYSCTL) -> str | None:
    """A warning when ports of the range lie in the kernel's ephemeral range without
    being reserved from it (Linux): other programs' connections, and this server's own
    to TURN, may then take them, leaving fewer for media. None otherwise."""
    try:
        low, high = (int(n) for n in (sysctl / "ip_local_port_range").read_text().split())
        reserved = _port_set((sysctl / "ip_local_reserved_ports").read_text().strip())
    except (OSError, ValueError):
        return None
    first, last = ports
    exposed = [p for p in range(max(first, low), min(last, high) + 1) if p not in reserved]
    if not exposed:
        return None
    return (f"{len(exposed)} media ports of {first}-{last} lie in the kernel's ephemeral "
            f"range {low}-{high}, where other connections may take them: reserve them "
            f"(sysctl net.ipv4.ip_local_reserved_ports={first}-{last}) or choose ports "
            "outside it")


def describe(ports: tuple[int, int] | None) -> str:
    return "ephemeral" if ports is None else f"{ports[0]}-{ports[1]}"


class MediaNetwork:
    """The settings above, resolved, and the range's cursor (one per serving process)."""

    def __init__(self, ports: tuple[int, int] | None, addresses: tuple[str, ...] | None,
                 announced: str | None) -> None:
        """``ports``: (first, last) or None (ephemeral); ``addresses``: resolved (see
        ``resolve``) or None (aioice's); ``announced``: an address or None."""
        self.ports = ports
        self.addresses = addresses
        self.announced = announced
        self._offset = 0  # of the next port to try, from the range's first

    @property
    def is_default(self) -> bool:
        """Nothing set: aioice's own gathering, untouched."""
        return self.ports is None and self.addresses is None and self.announced is None

    def bind(self, address: str) -> socket.socket | None:
        """A UDP socket on ``address``, at the next free port of the range (a port the
        kernel picks without one). None, logged, if the address itself cannot be bound
        (an interface gone): aioice skips such an address too. MediaPortsExhausted when
        every port of the range is in use on it."""
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        if self.ports is None:
            candidates = [0]
        else:
            first, last = self.ports
            count = last - first + 1
            candidates = [first + (self._offset + i) % count for i in range(count)]
        for port in candidates:
            sock = socket.socket(family, socket.SOCK_DGRAM)
            try:
                sock.bind((address, port))
            except OSError as exc:
                sock.close()
                if exc.errno == errno.EADDRINUSE:
                    continue
                logger.warning("cannot bind a media socket on %s: %s", address, exc.strerror)
                return None
            sock.setblocking(False)
            if self.ports is not None:
                self._offset = port - self.ports[0] + 1
            return sock
        raise MediaPortsExhausted(f"every UDP port of {describe(self.ports)} is in use "
                                  f"on {address}")
