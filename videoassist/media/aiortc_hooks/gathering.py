"""Where the server's media sockets are: ``gather_on``. aioice binds each peer
connection's host candidates to port 0 on every address it finds
(``Connection.get_component_candidates``, called by ``gather_candidates`` on the
instance). With ``VIDEOASSIST_MEDIA_PORTS``, ``_ADDRESSES`` or ``_ANNOUNCED_ADDRESS``
set, an instance attribute of that name binds them instead through ``media.network``
(in the range, on the addresses chosen), and calls aioice's own method with no address
for the relay and its ``server_reflexive_candidate`` for STUN; the gatherer's
``getLocalCandidates``, which aiortc writes the SDP's candidates from, is wrapped on
the instance to announce the public address in place of the socket's."""

from __future__ import annotations

import asyncio
import inspect
import ipaddress
import socket
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from aioice import Connection as IceConnection
from aioice import ice as _ice_module
from aioice import turn as aioice_turn
from aioice.candidate import Candidate, candidate_foundation, candidate_priority
from aioice.ice import StunProtocol
from aiortc import RTCPeerConnection
from aiortc import rtcpeerconnection as _pc_module
from aiortc.rtcicetransport import RTCIceCandidate, RTCIceGatherer

from videoassist.media.aiortc_hooks.internals import _names
from videoassist.media.network import MediaNetwork


def _deep_names(function: Any) -> set[str]:
    """The names a function's code uses, its comprehensions' and lambdas' included."""
    names: set[str] = set()
    codes = [getattr(function, "__code__", None)]
    while codes:
        code = codes.pop()
        if code is not None:
            names.update(code.co_names)
            codes += [c for c in code.co_consts if hasattr(c, "co_names")]
    return names


def _gather_problems() -> list[str]:
    """What ``gather_on`` relies on in aiortc and aioice."""
    problems = []
    for owner, method, name in [
            (RTCIceGatherer, "__init__", "_connection"),
            (RTCIceGatherer, "gather", "gather_candidates"),
            (IceConnection, "gather_candidates", "get_component_candidates"),
            (IceConnection, "get_component_candidates", "turn_server"),
            (IceConnection, "get_component_candidates", "_protocols"),
            (IceConnection, "get_component_candidates", "stun_server")]:
        if name not in _deep_names(getattr(owner, method, None)):
            problems.append(f"{owner.__name__}.{method} no longer uses {name}")
    if "getLocalCandidates" not in _names(getattr(_pc_module, "add_transport_description",
                                                  None)):
        problems.append("aiortc's add_transport_description no longer writes the SDP's "
                        "candidates from RTCIceGatherer.getLocalCandidates")
    for where, name, expected in [
            (IceConnection, "get_component_candidates",
             ["self", "component", "addresses", "timeout"]),
            (_ice_module, "server_reflexive_candidate", ["protocol", "stun_server"])]:
        try:
            parameters = list(inspect.signature(getattr(where, name)).parameters)
        except (AttributeError, TypeError, ValueError):
            parameters = []
        if parameters[:len(expected)] != expected:
            problems.append(f"aioice's {name} is gone or no longer takes "
                            f"({', '.join(expected)})")
    for cls, fields in [(RTCIceCandidate, ("ip", "type")),
                        (Candidate, ("host", "port", "type", "component"))]:
        missing = [f for f in fields if f not in getattr(cls, "__dataclass_fields__", ())
                   and f not in inspect.signature(cls).parameters]
        if missing:
            problems.append(f"{cls.__name__} has no {', '.join(missing)}")
    if not isinstance(getattr(aioice_turn, "UDP_SOCKET_BUFFER_SIZE", None), int):
        problems.append("aioice.turn.UDP_SOCKET_BUFFER_SIZE is gone")
    return problems


def _gatherers(pc: RTCPeerConnection) -> set[RTCIceGatherer]:
    """The ICE gatherers of a peer connection's transports (every transceiver's, after
    bundling the same one, and the SCTP transport's)."""
    transports = [t.receiver.transport for t in pc.getTransceivers()]
    if pc.sctp is not None:
        transports.append(pc.sctp.transport)
    return {t.transport.iceGatherer for t in transports if t is not None}


def gather_on(pc: RTCPeerConnection, network: MediaNetwork) -> None:
    """Before each ``setLocalDescription``: the peer connection's ICE agents that have
    not gathered yet take their host sockets from ``network`` and announce its address.

    aioice's ``Connection.gather_candidates`` lists the machine's addresses and has
    ``self.get_component_candidates(component, addresses)`` bind each to port 0 (its
    host candidates), ask the STUN server for the server-reflexive ones and the TURN
    server for a relay. An instance attribute of that name (``_HostCandidates``) binds
    the host sockets through ``network.bind`` on ``network.addresses`` (aioice's list
    when unset) and hands the rest to aioice's own method with no address (the relay)
    and to its ``server_reflexive_candidate``. The ``announced`` address replaces the
    host candidates' address (of its IP version) in the gatherer's
    ``getLocalCandidates``, which is where aiortc writes the SDP's candidates from:
    aioice's own candidates, and the sockets, keep the real address."""
    if network.is_default:
        return
    for gatherer in _gatherers(pc):
        connection = gatherer._connection
        if gatherer.state != "new" or "get_component_candidates" in vars(connection):
            continue
        connection.get_component_candidates = (  # type: ignore[method-assign]
            _HostCandidates(connection, network))
        if network.announced is not None:
            gatherer.getLocalCandidates = _Announced(  # type: ignore[method-assign]
                gatherer.getLocalCandidates, network.announced)


class _HostCandidates:
    """Takes the place of a Connection's ``get_component_candidates`` (``gather_on``)."""

    def __init__(self, connection: IceConnection, network: MediaNetwork) -> None:
        self._connection = connection
        self._network = network
        self._aioice = connection.get_component_candidates

    async def __call__(self, component: int, addresses: list[str],
                       timeout: int = 5) -> list[Candidate]:  # noqa: ASYNC109 (aioice's)
        connection = self._connection
        if self._network.addresses is not None:
            addresses = list(self._network.addresses)
        loop = asyncio.get_running_loop()
        protocols: list[StunProtocol] = []
        try:
            for address in addresses:
                sock = self._network.bind(address)  # raises when the range is full
                if sock is None:
                    continue
                try:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF,
                                    aioice_turn.UDP_SOCKET_BUFFER_SIZE)
                    _, protocol = await loop.create_datagram_endpoint(
                        lambda: StunProtocol(connection), sock=sock)
                except BaseException:
                    sock.close()
                    raise
                host, port = sock.getsockname()[:2]
                protocol.local_candidate = Candidate(
                    foundation=candidate_foundation("host", "udp", host),
                    component=component, transport="udp",
                    priority=candidate_priority(component, "host"),
                    host=host, port=port, type="host")
                protocols.append(protocol)
        except BaseException:
            for protocol in protocols:
                if protocol.transport is not None:
                    protocol.transport.close()
            raise
        connection._protocols += protocols
        candidates = [protocol.local_candidate for protocol in protocols]
        reflexive = []
        if connection.stun_server is not None:
            reflexive = [
                asyncio.ensure_future(_ice_module.server_reflexive_candidate(
                    protocol, connection.stun_server))
                for protocol in protocols
                if ipaddress.ip_address(protocol.local_candidate.host).version == 4]
        try:
            candidates += await self._aioice(component, [], timeout)  # the relay, if any
        except BaseException:
            for task in reflexive:
                task.cancel()
            raise
        if reflexive:  # as aioice's: those that answered in time
            done, pending = await asyncio.wait(reflexive, timeout=timeout)
            for task in pending:
                task.cancel()
            candidates += [task.result()[0] for task in done if task.exception() is None]
        return candidates


class _Announced:
    """Takes the place of a gatherer's ``getLocalCandidates`` (``gather_on``)."""

    def __init__(self, own: Callable[[], list[RTCIceCandidate]], announced: str) -> None:
        self._own = own
        self._announced = announced
        self._version = ipaddress.ip_address(announced).version

    def __call__(self) -> list[RTCIceCandidate]:
        return [replace(c, ip=self._announced)
                if c.type == "host" and ipaddress.ip_address(c.ip).version == self._version
                else c for c in self._own()]
