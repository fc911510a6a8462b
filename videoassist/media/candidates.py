"""Which of a client's ICE candidates the server's own ICE agent may send to.

A remote candidate is an address the server's agent sends STUN checks to, with a
username the client chose: unfiltered, any participant could make the server probe the
company's own network (server-side request forgery through ICE). Every candidate, in an
SDP or trickled, passes here before aiortc sees it. Refused, as coturn's deny list in
``turn/turnserver.conf`` refuses them for TURN: names rather than addresses (mDNS
``.local`` included), unspecified and multicast addresses always, and the private,
loopback, link-local, CGNAT, documentation, reserved and IPv4-embedding ranges below,
unless the operator allows a range (``VIDEOASSIST_ICE_ALLOWED_PEERS``, for a LAN without
TURN). ``tests/media/test_candidates.py`` holds the ranges to the file's.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Iterable
from dataclasses import dataclass

from videoassist.errors import BadRequest
from videoassist.media.counters import MediaCounters

logger = logging.getLogger(__name__)

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

# turn/turnserver.conf's denied-peer-ip ranges, as CIDR blocks.
DENIED: tuple[Network, ...] = tuple(ipaddress.ip_network(block) for block in (
    "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16",
    "172.16.0.0/12", "192.0.0.0/24", "192.0.2.0/24", "192.88.99.0/24", "192.168.0.0/16",
    "198.18.0.0/15", "198.51.100.0/24", "203.0.113.0/24", "224.0.0.0/4", "240.0.0.0/4",
    "::/96", "::ffff:0:0/96", "::ffff:0:0:0/96", "64:ff9b::/96", "64:ff9b:1::/48",
    "100::/64", "2001::/23", "2001:db8::/32", "2002::/16", "3fff::/20", "5f00::/16",
    "fc00::/7", "fe80::/10", "fec0::/10", "ff00::/8",
))



def parse_networks(ranges: Iterable[str]) -> tuple[Network, ...]:
    """``VIDEOASSIST_ICE_ALLOWED_PEERS``'s CIDR blocks or single addresses; ValueError
    on anything else."""
    return tuple(ipaddress.ip_network(item.strip(), strict=False) for item in ranges)


def address_key(value: str) -> tuple[str, str] | None:
    """(address, port) of a candidate's value (FOUNDATION COMPONENT TRANSPORT PRIORITY
    ADDRESS PORT typ TYPE..., split as aiortc splits it); None if it has no such fields."""
    bits = value.split()
    return (bits[4].lower(), bits[5]) if len(bits) >= 6 else None


def sdp_attribute(line: str) -> tuple[str | None, str | None]:
    """(attribute, value) of an SDP line as aiortc reads it (``a=ATTR:VALUE``)."""
    if not line.startswith("a="):
        return None, None
    if ":" in line:
        attr, value = line[2:].split(":", 1)
        return attr, value
    return line[2:], None


def sdp_candidate(line: str) -> str | None:
    """The value of an SDP line aiortc reads as a candidate (``a=candidate:VALUE``)."""
    attr, value = sdp_attribute(line)
    return value if attr == "candidate" else None


@dataclass(frozen=True)
class CandidatePolicy:
    """``allowed``: ranges the operator lets through the deny list;
    ``max_per_session``: distinct remote candidates one peer connection takes."""

    allowed: tuple[Network, ...] = ()
    max_per_session: int = 32

    def refusal(self, host: str, port: str | int | None = None) -> str | None:
        """Why the agent must never send to this candidate address (and port, if
        given); None: it may."""
        if port is not None:
            try:
                number = int(port)
            except ValueError:
                return "a port that is not a number"
            if not 1 <= number <= 65535:  # aioice takes it; the socket's sendto raises
                return "a port out of range"
        try:
            address: Address = ipaddress.ip_address(host)
        except ValueError:
            return "a name, not an address (mDNS or DNS)"
        if address.is_unspecified:
            return "the unspecified address"
        if address.is_multicast or str(address) == "255.255.255.255":
            return "a multicast or broadcast address"
        if any(address in network for network in self.allowed):
            return None
        mapped = address.ipv4_mapped if isinstance(address, ipaddress.IPv6Address) else None
        if mapped is not None and any(mapped in network for network in self.allowed):
            return None
        for network in DENIED:
            if address in network:
                return f"in {network}, denied (VIDEOASSIST_ICE_ALLOWED_PEERS)"
        return None



class RemoteCandidates:
    """A peer connection's remote candidates (``seen``: address and port of each handed
    to aiortc): those the policy keeps the server's agent from are left out, logged and
    counted, never an error (browsers offer private addresses too); more than
    ``policy.max_per_session`` distinct ones is BadRequest."""

    def __init__(self, policy: CandidatePolicy, counters: MediaCounters,
                 log_prefix: str) -> None:
        self.policy = policy
        self.counters = counters
        self.log_prefix = log_prefix
        self.seen: set[tuple[str, str]] = set()

    def refused(self, address: str, port: str) -> bool:
        """Whether the policy keeps the server's agent from this address and port."""
        reason = self.policy.refusal(address, port)
        if reason is None:
            return False
        self.counters.candidates_refused += 1
        logger.info("%s ignores the remote candidate %.64s: %s", self.log_prefix, address,
                    reason)
        return True

    def take(self, fresh: set[tuple[str, str]]) -> None:
        limit = self.policy.max_per_session
        if len(self.seen) + len(fresh) > limit:
            raise BadRequest(f"A peer connection takes at most {limit} ICE candidates "
                             "(VIDEOASSIST_ICE_MAX_CANDIDATES).")
        self.seen |= fresh

    def screen(self, lines: list[str]) -> str:
        """An SDP's lines without the candidates refused, as one SDP; the new ones
        taken (BadRequest past the limit)."""
        kept: list[str] = []
        fresh: set[tuple[str, str]] = set()
        refused = False
        for line in lines:
            value = sdp_candidate(line)
            key = None if value is None else address_key(value)
            if key is not None:
                if self.refused(*key):
                    refused = True
                    continue
                if key not in self.seen:
                    fresh.add(key)
            kept.append(line)
        self.take(fresh)
        if refused:  # aioice then waits for the client's checks (peer-reflexive
            # candidates) instead of failing at once for want of a candidate
            kept = [line for line in kept if sdp_attribute(line)[0] != "end-of-candidates"]
        return "\r\n".join(kept) + "\r\n"
