"""Which ICE servers each side uses, and the customer's relay-only policy.

With TURN configured, every participant gets short-lived TURN REST credentials in
its ``joined`` message, the server uses the same TURN for its own side, and
customers get ``iceTransportPolicy: "relay"`` so their addresses are never offered.
With no TURN (the embedded default on a LAN), host candidates are used and nobody
falls back to a public STUN server: aiortc would, given no list, so it always gets one.

``server_relays`` false (``VIDEOASSIST_MEDIA_TURN``, TURN as a tier of its own): the
server offers only its own addresses and relays through no TURN server itself; clients
still get their credentials.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiortc import RTCIceServer

from videoassist.media.turn import turn_credentials

RELAY_ONLY_ROLES = ("customer",)


@dataclass(frozen=True)
class IcePolicy:
    urls: tuple[str, ...]
    secret: str
    ttl_s: int
    clock: Callable[[], float]
    server_relays: bool = True

    def for_client(self, participant_id: int, role: str) -> dict[str, Any]:
        """The ``ice_servers`` and ``ice_transport_policy`` of a ``joined`` message."""
        if not self.urls:
            return {"ice_servers": [], "ice_transport_policy": "all"}
        server = turn_credentials(self.secret, self.urls, self.ttl_s,
                                  f"participant-{participant_id}", self.clock())
        policy = "relay" if role in RELAY_ONLY_ROLES else "all"
        return {"ice_servers": [dict(server)], "ice_transport_policy": policy}

    def for_server(self) -> list[RTCIceServer]:
        if not self.urls or not self.server_relays:
            return []
        server = turn_credentials(self.secret, self.urls, self.ttl_s, "videoassist-server",
                                  self.clock())
        return [RTCIceServer(urls=server["urls"], username=server["username"],
                             credential=server["credential"])]
