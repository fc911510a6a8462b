"""Media: TURN, the ports and addresses peer connections use, which remote candidates
they may reach, the SDP limits, re-encoding, and how snapshots are sealed and drawn."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field

from videoassist.config.values import ENV_PREFIX, POSITIVE, Secret, doc, within
from videoassist.errors import ConfigError

# The fewest media ports a serving process takes: one peer connection per participant
# (audio and video bundled on one port), and a call has two.
MEDIA_PORTS_MIN = 2
# An IP address or an interface name (Linux: at most 15 characters).
MEDIA_ADDRESS = re.compile(r"[0-9A-Fa-f.:]+|[A-Za-z0-9_.@-]{1,15}")


@dataclass(frozen=True, kw_only=True)
class MediaSettings:
    """TURN, ICE, SDP, media ports and addresses, snapshots."""

    turn_urls: tuple[str, ...] = field(
        default=(), metadata=doc("TURN URLs handed to clients (turn:/turns:), comma-separated.")
    )
    turn_secret: Secret | None = field(
        default=None,
        metadata=doc(
            "coturn static-auth-secret. Default: generated into DATA_DIR/turn-secret "
            "on first run."
        ),
    )
    turn_ttl_s: int = field(default=600, metadata=doc("TURN credential lifetime (at most 600).",
                                                       bounds=within(1, 600)))
    media_transcode: str = field(
        default="when-needed",
        metadata=doc(
            "when-needed: forward encoded media, re-encode only for a viewer that shares "
            "no codec with the publisher; always: re-encode for every viewer (comparison)."
        ),
    )
    media_ports: str = field(
        default="",
        metadata=doc(
            "UDP ports of the server's media, FIRST-LAST (40000-40999), split into equal "
            "slices, one per worker. Empty: ports the kernel picks (its ephemeral range)."
        ),
    )
    media_addresses: tuple[str, ...] = field(
        default=(),
        metadata=doc(
            "Addresses and interface names the server offers media on, comma-separated. "
            "Empty: every address but 127.0.0.1, ::1 and link-local IPv6 (aioice's)."
        ),
    )
    media_announced_address: str = field(
        default="",
        metadata=doc(
            "Address the server's candidates announce in place of the machine's own, behind "
            "a 1:1 NAT (a cloud machine's public address); its sockets stay where they are. "
            "Empty: the machine's own."
        ),
    )
    media_turn: bool = field(
        default=True,
        metadata=doc(
            "The server's own side of the media also relays through the first TURN URL. "
            "false: only its own addresses (TURN as a tier of its own, which must reach "
            "them); clients still get TURN credentials."
        ),
    )
    ice_allowed_peers: tuple[str, ...] = field(
        default=(),
        metadata=doc(
            "Address ranges (CIDR, comma-separated) the server's ICE agent may send to "
            "although turn/turnserver.conf's deny list covers them (private, loopback, "
            "link-local, CGNAT...): a LAN deployment without TURN names its LAN here. "
            "Empty: clients' candidates in those ranges are ignored. Names (mDNS .local), "
            "unspecified and multicast addresses are always ignored."
        ),
    )
    ice_max_candidates: int = field(
        default=32,
        metadata=doc(
            "Distinct ICE candidates (address and port) one client's peer connection may "
            "give, in its descriptions and ice.candidate together; beyond: bad_request.",
            bounds=within(1, 1000)
        ),
    )
    sdp_max_m_lines: int = field(
        default=16,
        metadata=doc(
            "m-lines a client's offer may hold beyond the server's own sending "
            "transceivers (its camera, microphone, screen...); beyond: bad_request.",
            bounds=within(1, 256)
        ),
    )
    sdp_offer_rate_per_s: float = field(
        default=0.5, metadata=doc("Sustained sdp.offer messages per second per connection.",
                                   bounds=POSITIVE)
    )
    sdp_offer_burst: int = field(
        default=5,
        metadata=doc("sdp.offer messages a connection may send at once; beyond: "
                      "rate_limited.",
                      bounds=POSITIVE),
    )
    snapshot_key: Secret | None = field(
        default=None,
        metadata=doc(
            "Key-encryption key for snapshots: 32 bytes, base64. It wraps each job's data "
            "key and is never stored in the database. Default: generated into "
            "DATA_DIR/snapshot-key on first run. Back it up apart from the database."
        ),
    )
    snapshot_jpeg_quality: int = field(
        default=90, metadata=doc("JPEG quality of stored snapshots (50..100).",
                                  bounds=within(50, 100))
    )
    label_fonts: tuple[str, ...] = field(
        default=(),
        metadata=doc(
            "Font files snapshot labels are drawn in, PATH or PATH#FACE, comma-separated; "
            "each character in the first that has it. Default: Debian's Noto fonts."
        ),
    )

    def _check_media(self) -> None:
        for url in self.turn_urls:
            if not url.startswith(("turn:", "turns:", "stun:")):
                raise ConfigError(
                    f"{ENV_PREFIX}TURN_URLS: {url!r} is not a turn:, turns: or stun: URL"
                )
        if self.media_transcode not in ("when-needed", "always"):
            raise ConfigError(
                f"{ENV_PREFIX}MEDIA_TRANSCODE must be when-needed or always, "
                f"got {self.media_transcode!r}"
            )
        _ = self.media_port_range  # raises on a bad range
        for item in self.ice_allowed_peers:
            try:
                ipaddress.ip_network(item.strip(), strict=False)
            except ValueError:
                raise ConfigError(f"{ENV_PREFIX}ICE_ALLOWED_PEERS: {item!r} is not an address "
                                  "or a CIDR range (10.0.0.0/8, fd00::/8)") from None
        for item in self.media_addresses:
            if _is_unspecified(item):
                raise ConfigError(f"{ENV_PREFIX}MEDIA_ADDRESSES: {item!r} is every address, "
                                  "which no client can be given: name the addresses")
            if not MEDIA_ADDRESS.fullmatch(item):
                raise ConfigError(f"{ENV_PREFIX}MEDIA_ADDRESSES: {item!r} is neither an address "
                                  "of this machine nor an interface name")
        if self.media_announced_address:
            try:
                announced = ipaddress.ip_address(self.media_announced_address)
            except ValueError:
                raise ConfigError(f"{ENV_PREFIX}MEDIA_ANNOUNCED_ADDRESS must be an IP address, "
                                  f"got {self.media_announced_address!r}") from None
            if announced.is_unspecified:
                raise ConfigError(f"{ENV_PREFIX}MEDIA_ANNOUNCED_ADDRESS must be an address "
                                  f"clients can reach, got {self.media_announced_address!r}")

    @property
    def media_port_range(self) -> tuple[int, int] | None:
        """``media_ports`` as (first, last), both included; None: ephemeral ports."""
        if not self.media_ports:
            return None
        match = re.fullmatch(r"\s*(\d{1,5})\s*-\s*(\d{1,5})\s*", self.media_ports)
        if match is None:
            raise ConfigError(f"{ENV_PREFIX}MEDIA_PORTS must be FIRST-LAST (40000-40999), "
                              f"got {self.media_ports!r}")
        first, last = int(match[1]), int(match[2])
        if not 1024 <= first <= last <= 65535:
            raise ConfigError(f"{ENV_PREFIX}MEDIA_PORTS must lie within 1024..65535, first "
                              f"port first, got {self.media_ports!r}")
        if last - first + 1 < MEDIA_PORTS_MIN:
            raise ConfigError(f"{ENV_PREFIX}MEDIA_PORTS must hold at least {MEDIA_PORTS_MIN} "
                              f"ports (a call of two), got {self.media_ports!r}")
        return first, last


def _is_unspecified(item: str) -> bool:
    try:
        return ipaddress.ip_address(item).is_unspecified
    except ValueError:
        return False
