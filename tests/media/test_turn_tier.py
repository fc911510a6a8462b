"""TURN as its own tier: several coturns sharing the secret, as docs/deploy.md describes.

Two real coturns run turn/turnserver.conf (``tests.support.coturn.derived``) on
loopback with one ``static-auth-secret``: the secret the server generated into its data
directory, copied as turn/README.md says. Each lets 127.0.0.1 through as the media
server's address (``allow-loopback-peers`` and ``allowed-peer-ip``, as in
test_turn.py). A real server lists both in ``turn_urls``; the credentials it hands a
customer in ``joined`` allocate on each coturn, and a datagram sent through each relay
comes back from an echo peer (turnutils_peer).
"""

from __future__ import annotations

import asyncio
import time
from contextlib import ExitStack
from pathlib import Path
from urllib.parse import urlsplit

from aioice import turn

from tests.support import coturn
from tests.support.server import ServerFactory, two_parties
from videoassist import keyfiles

RELAY_TIMEOUT_S = 5.0
# What lets a loopback peer through the shipped deny list (test_turn.py).
LOOPBACK_MEDIA_SERVER = ("allow-loopback-peers", "allowed-peer-ip=127.0.0.1")


class Received(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.datagrams: asyncio.Queue[bytes] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.datagrams.put_nowait(data)


async def relayed_echo(server: tuple[str, int], username: str, credential: str,
                       peer_port: int, payload: bytes) -> bytes:
    """Allocate on the TURN server with these credentials, send ``payload`` to the echo
    peer through the relay, and return what comes back."""
    transport, protocol = await asyncio.wait_for(turn.create_turn_endpoint(
        Received, server, username, credential), RELAY_TIMEOUT_S)
    try:
        transport.sendto(payload, ("127.0.0.1", peer_port))
        return await asyncio.wait_for(protocol.datagrams.get(), RELAY_TIMEOUT_S)
    finally:
        transport.close()


async def test_credentials_the_server_mints_allocate_on_every_coturn_of_the_tier(
        tmp_path: Path, server_factory: ServerFactory) -> None:
    ports = [coturn.free_port(), coturn.free_port()]
    urls = tuple(f"turn:127.0.0.1:{port}?transport=udp" for port in ports)
    server = await server_factory(turn_urls=urls)
    secret = keyfiles.turn_secret(server.settings)  # DATA_DIR/turn-secret, generated
    cert, key = coturn.certificate(tmp_path)
    with ExitStack() as stack:
        for i, port in enumerate(ports):
            directory = tmp_path / f"turn{i + 1}"
            conf = coturn.derived(directory, port, coturn.free_port(), cert, key, secret,
                                  extra=LOOPBACK_MEDIA_SERVER)
            stack.enter_context(coturn.start(directory, conf, port))
        peer_port = stack.enter_context(coturn.echo_peer(tmp_path))

        _, customer_token, _ = await two_parties(server)
        ws, joined = await server.join_call(customer_token)
        assert joined["ice_transport_policy"] == "relay"
        [ice] = joined["ice_servers"]  # one credential, valid on every server listed
        assert ice["urls"] == list(urls)
        for url in ice["urls"]:
            host, _, port = urlsplit(url).path.rpartition(":")  # turn:HOST:PORT?QUERY
            payload = f"through {url} at {time.time()}".encode()
            echoed = await relayed_echo((host, int(port)), ice["username"],
                                        ice["credential"], peer_port, payload)
            assert echoed == payload, url
        await ws.close()
