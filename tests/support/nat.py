"""A 1:1 NAT in user space, on loopback: each UDP port of a range on a public address
(127.0.0.2, which Linux routes to loopback) forwards to the same port on the private
address (127.0.0.1), and the answers go back from the public address, as a cloud
machine's 1:1 NAT does for a server announcing its public address.

This machine has neither nftables nor iptables for a kernel DNAT, and a test must not
change the firewall of a machine it shares. One difference with a kernel's NAT: the
private side sees each client as a port of the forwarder (127.0.0.1), not as the
client's own address, which a server's ICE agent takes as a peer-reflexive candidate
(as it would behind a NAT on the client's side); and the server's own packets to a
client do not go through it (a kernel NAT would rewrite their source), so ICE may also
find the direct path, and on a busy machine settle on it before the client checks the
public address at all: ``binding_answered`` makes that check itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
from typing import Any

from aioice import stun


class _Port(asyncio.DatagramProtocol):
    """One public port: a connected socket towards the private port per client."""

    def __init__(self, nat: OneToOneNat, private: tuple[str, int]) -> None:
        self._nat = nat
        self._private = private
        self._flows: dict[Any, socket.socket] = {}
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: Any) -> None:
        inner = self._flows.get(addr)
        if inner is None:
            inner = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            inner.setblocking(False)
            inner.bind((self._private[0], 0))
            inner.connect(self._private)
            asyncio.get_running_loop().add_reader(inner.fileno(), self._back, inner, addr)
            self._flows[addr] = inner
        with contextlib.suppress(OSError):
            inner.send(data)
            self._nat.forwarded += 1

    def _back(self, inner: socket.socket, addr: Any) -> None:
        try:
            data = inner.recv(65536)
        except OSError:  # nothing yet, or the private port is closed
            return
        if self.transport is not None:
            self.transport.sendto(data, addr)
            self._nat.returned += 1

    def close(self) -> None:
        loop = asyncio.get_running_loop()
        for inner in self._flows.values():
            loop.remove_reader(inner.fileno())
            inner.close()
        self._flows.clear()
        if self.transport is not None:
            self.transport.close()


class OneToOneNat:
    """``public``:P to ``private``:P for each port P of ``ports``, both ways."""

    def __init__(self, public: str, private: str, ports: range) -> None:
        self.public = public
        self.private = private
        self.ports = ports
        self.forwarded = 0  # datagrams from clients to the private side
        self.returned = 0   # and back
        self._ports: list[_Port] = []

    async def __aenter__(self) -> OneToOneNat:
        loop = asyncio.get_running_loop()
        try:
            for port in self.ports:
                _, protocol = await loop.create_datagram_endpoint(
                    lambda port=port: _Port(self, (self.private, port)),
                    local_addr=(self.public, port))
                self._ports.append(protocol)
        except BaseException:
            self.close()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for port in self._ports:
            port.close()
        self._ports.clear()


async def binding_answered(address: str, port: int, server_sdp: str, client_ufrag: str,
                           timeout: float = 10.0) -> stun.Message:
    """Send one ICE connectivity check, as the client whose ufrag is ``client_ufrag``
    would, to ``address``:``port`` from a socket of its own, and return the server's
    success response, checked to carry the server's MESSAGE-INTEGRITY (its ``a=ice-pwd``
    from ``server_sdp``). Retried every 0.5 s (UDP) until
    ``timeout``. The check does not ask for nomination (no USE-CANDIDATE)."""
    ufrag = re.search(r"^a=ice-ufrag:(\S+)", server_sdp, re.M)
    pwd = re.search(r"^a=ice-pwd:(\S+)", server_sdp, re.M)
    assert ufrag and pwd, "the server's SDP has no ICE credentials"
    request = stun.Message(message_method=stun.Method.BINDING,
                           message_class=stun.Class.REQUEST)
    request.attributes["USERNAME"] = f"{ufrag[1]}:{client_ufrag}"
    request.attributes["PRIORITY"] = 1
    request.attributes["ICE-CONTROLLING"] = 1
    request.add_message_integrity(pwd[1].encode())
    request.add_fingerprint()
    loop = asyncio.get_running_loop()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setblocking(False)
        sock.bind(("127.0.0.1", 0))
        async with asyncio.timeout(timeout):
            while True:
                sock.sendto(bytes(request), (address, port))
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(0.5):
                        data = await loop.sock_recv(sock, 65536)
                        response = stun.parse_message(data)
                        if response.transaction_id == request.transaction_id:
                            assert response.message_class == stun.Class.RESPONSE, response
                            assert response.check_message_integrity(pwd[1].encode()), \
                                "the answer is not signed with the server's ICE password"
                            return response
