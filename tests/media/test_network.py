"""Where the server's media sockets are (``VIDEOASSIST_MEDIA_PORTS``, ``_ADDRESSES``,
``_ANNOUNCED_ADDRESS``): the real server on 127.0.0.1 and real aiortc clients.

Every candidate the server sends (its answers and its own offers) is checked against
the settings, and so is every socket its side of each peer connection really has.
The announced address is checked in the SDP against the real sockets with 203.0.113.7
(TEST-NET-3, routed nowhere: no media expected), and with media through a 1:1 NAT from
127.0.0.2 to 127.0.0.1: a forwarder in user space (``tests.support.nat``), since this
machine has neither nftables nor iptables for a kernel DNAT, and a test must not
change the firewall of a machine it shares.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aioice.ice import get_host_addresses
from aiortc import RTCConfiguration, RTCPeerConnection

from tests.support.coturn import coturn
from tests.support.metrics import scrape, value
from tests.support.nat import OneToOneNat, binding_answered
from tests.support.peers import MediaClient, sdp_candidates
from tests.support.server import Server, ServerFactory, free_udp_ports, receive, two_parties
from videoassist.appkeys import MEDIA
from videoassist.config import Secret
from videoassist.errors import ConfigError
from videoassist.media.network import (
    MediaNetwork,
    MediaPortsExhausted,
    ephemeral_overlap,
    resolve,
    split,
)

LOOPBACK = "127.0.0.1"
ANNOUNCED = "203.0.113.7"  # TEST-NET-3: documentation only, routed nowhere
NAT_PUBLIC = "127.0.0.2"  # loopback too: the "public" side of OneToOneNat


def server_sockets(server: Server, participant_id: int) -> set[tuple[str, int]]:
    """The (address, port) of every socket the server's side of a participant's peer
    connection has (aioice's, read through its internals: a test may)."""
    pc = server.app[MEDIA].sessions[participant_id].pc
    found = set()
    for transceiver in pc.getTransceivers():
        connection = transceiver.receiver.transport.transport.iceGatherer._connection
        for protocol in connection._protocols:
            found.add(protocol.transport.get_extra_info("sockname")[:2])
    return found


async def offer(ws: aiohttp.ClientWebSocketResponse) -> tuple[RTCPeerConnection, dict[str, Any]]:
    """A fresh peer connection's offer (recvonly video and audio, so that the server's
    offers after it need no transport of a new kind) sent on ``ws``; the server's reply
    to it (``sdp.answer`` or ``error``)."""
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    pc.addTransceiver("video", direction="recvonly")
    pc.addTransceiver("audio", direction="recvonly")
    await pc.setLocalDescription(await pc.createOffer())
    await ws.send_json({"type": "sdp.offer", "sdp": pc.localDescription.sdp})
    async with asyncio.timeout(10):
        while (reply := await receive(ws))["type"] not in ("sdp.answer", "error"):
            pass
    return pc, reply


async def test_every_candidate_and_socket_is_in_the_range_on_the_addresses_and_media_flows(
        server_factory: ServerFactory) -> None:
    first, last = free_udp_ports(3)
    # Another program holds the range's first port: the server takes the next ones.
    held = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    held.bind((LOOPBACK, first))
    server = await server_factory(media_ports=f"{first}-{last}", media_addresses=(LOOPBACK,))
    expert_token, customer_token, job_id = await two_parties(server)
    expert = await MediaClient(server, expert_token, job_id).start()
    customer = await MediaClient(server, customer_token).start()
    try:
        await expert.wait_remote(customer.participant_id, "video", frames=10)
        await customer.wait_remote(expert.participant_id, "video", frames=10)
        await customer.wait_remote(expert.participant_id, "audio", frames=10)
        used = set()
        for client in (expert, customer):
            assert client.server_sdps, "the server's answer was not seen"
            sent = {c for sdp in client.server_sdps for c in sdp_candidates(sdp)}
            assert {(ip, kind) for ip, _, kind in sent} == {(LOOPBACK, "host"),
                                                             (LOOPBACK, "c=")}, sent
            ports = {port for _, port, _ in sent}
            assert len(ports) == 1, sent  # audio and video bundled on one socket
            assert server_sockets(server, client.participant_id) == {(LOOPBACK, *ports)}
            used |= ports
        assert used == {first + 1, first + 2}
    finally:
        await customer.close()
        await expert.close()
        held.close()


async def test_a_full_range_refuses_the_offer_clearly_and_a_freed_port_serves_again(
        server_factory: ServerFactory, caplog: pytest.LogCaptureFixture) -> None:
    first, last = free_udp_ports(2)
    server = await server_factory(media_ports=f"{first}-{last}", media_addresses=(LOOPBACK,))
    expert_token, customer_token, job_id = await two_parties(server)
    expert = await MediaClient(server, expert_token, job_id).start()
    customer = await MediaClient(server, customer_token).start()
    third_ws, joined = await server.join_call(await server.participant(expert_token, job_id))
    pcs = []
    try:
        with caplog.at_level(logging.WARNING, logger="videoassist.media.router"):
            pc, reply = await offer(third_ws)
        pcs.append(pc)
        assert reply == {"type": "error", "code": "unavailable",
                         "message": MediaPortsExhausted.default_message, "ref": "sdp.offer"}
        assert (f"[call {server.app[MEDIA].sessions[expert.participant_id].room.call_id} "
                f"participant {joined['you']['id']}] media refused: every UDP port of "
                f"{first}-{last} is in use on {LOOPBACK}") in caplog.text
        assert joined["you"]["id"] not in server.app[MEDIA].sessions  # nothing half-made
        assert value(await scrape(server), "videoassist_peer_connections_refused_total") == 1
        # The call goes on; once the customer leaves, its port serves the next offer.
        await expert.wait_remote(customer.participant_id, "video", frames=5)
        customer_port = {p for _, p, _ in sdp_candidates(customer.server_sdps[0])}
        await customer.close()
        async with asyncio.timeout(10):
            while customer.participant_id in server.app[MEDIA].sessions:
                await asyncio.sleep(0.05)
        pc, reply = await offer(third_ws)
        pcs.append(pc)
        assert reply["type"] == "sdp.answer", reply
        assert {p for _, p, _ in sdp_candidates(reply["sdp"])} == customer_port
    finally:
        for pc in pcs:
            await pc.close()
        await third_ws.close()
        await expert.close()


async def test_the_announced_address_replaces_the_host_candidates_address_in_the_sdp(
        server_factory: ServerFactory) -> None:
    first, last = free_udp_ports(2)
    server = await server_factory(media_ports=f"{first}-{last}", media_addresses=(LOOPBACK,),
                                  media_announced_address=ANNOUNCED)
    expert_token, _, job_id = await two_parties(server)
    ws, joined = await server.join_call(expert_token, job_id)
    pc, reply = await offer(ws)
    try:
        assert reply["type"] == "sdp.answer", reply
        sent = sdp_candidates(reply["sdp"])
        assert {(ip, kind) for ip, _, kind in sent} == {(ANNOUNCED, "host"), (ANNOUNCED, "c=")}
        [port] = {port for _, port, _ in sent}
        assert first <= port <= last
        # The socket itself is where it was: the NAT maps the public address to it.
        assert server_sockets(server, joined["you"]["id"]) == {(LOOPBACK, port)}
    finally:
        await pc.close()
        await ws.close()


async def test_the_announced_address_carries_the_media_through_a_one_to_one_nat(
        server_factory: ServerFactory) -> None:
    """The forwarder does not stand between the server's own checks and the clients
    (a kernel NAT would), so ICE may settle on the direct path it also finds: what is
    checked is that the announced address reaches the server's socket (a check sent to
    it is answered, signed with the server's ICE password) and that media flows."""
    first, last = free_udp_ports(3)
    async with OneToOneNat(NAT_PUBLIC, LOOPBACK, range(first, last + 1)) as nat:
        server = await server_factory(media_ports=f"{first}-{last}",
                                      media_addresses=(LOOPBACK,),
                                      media_announced_address=NAT_PUBLIC)
        expert_token, customer_token, job_id = await two_parties(server)
        expert = await MediaClient(server, expert_token, job_id).start()
        customer = await MediaClient(server, customer_token).start()
        try:
            await expert.wait_remote(customer.participant_id, "video", frames=10)
            await customer.wait_remote(expert.participant_id, "video", frames=10)
            for client in (expert, customer):
                sent = {(ip, kind) for sdp in client.server_sdps
                        for ip, _, kind in sdp_candidates(sdp)}
                assert sent == {(NAT_PUBLIC, "host"), (NAT_PUBLIC, "c=")}, sent
                # A check sent to the public address, as the client's, reaches the
                # server's private socket through the NAT and is answered, signed with
                # the server's ICE password. (The client's own checks may not show it:
                # ICE can settle on the direct path first, see tests.support.nat.)
                [port] = {port for sdp in client.server_sdps
                          for _, port, kind in sdp_candidates(sdp) if kind == "host"}
                await binding_answered(NAT_PUBLIC, port, client.server_sdps[-1],
                                       client.ice_ufrag())
                assert server_sockets(server, client.participant_id) == {(LOOPBACK, port)}
            assert nat.forwarded and nat.returned, (nat.forwarded, nat.returned)
        finally:
            await customer.close()
            await expert.close()


async def test_without_addresses_the_range_applies_to_every_address_aioice_finds(
        server_factory: ServerFactory) -> None:
    """An IPv4 announced address replaces the IPv4 candidates' only; IPv6 ones (this
    machine has a global one when aioice lists one) are left as they are."""
    # The machine's addresses are read before and after the server gathers: a test
    # running beside this one (pytest-xdist) may add or remove one meanwhile (a veth
    # end of tests.support.netns), which the server may or may not have seen.
    before = set(get_host_addresses(use_ipv4=True, use_ipv6=True))
    first, last = free_udp_ports(4)
    server = await server_factory(media_ports=f"{first}-{last}",
                                  media_announced_address=ANNOUNCED)
    expert_token, _, job_id = await two_parties(server)
    ws, joined = await server.join_call(expert_token, job_id)
    pc, reply = await offer(ws)
    try:
        assert reply["type"] == "sdp.answer", reply
        after = set(get_host_addresses(use_ipv4=True, use_ipv6=True))
        sockets = server_sockets(server, joined["you"]["id"])
        bound = {address for address, _ in sockets}
        assert before & after <= bound <= before | after, (before, after, bound)
        sent = [c for c in sdp_candidates(reply["sdp"]) if c[2] == "host"]
        expected = {ANNOUNCED if "." in address else address for address in bound}
        assert {ip for ip, _, _ in sent} == expected
        assert all(first <= port <= last for _, port, _ in sent), sent
        assert {port for _, port in sockets} == {port for _, port, _ in sent}
    finally:
        await pc.close()
        await ws.close()


def test_the_range_skips_ports_in_use_and_says_when_none_is_left() -> None:
    first, last = free_udp_ports(3)
    network = MediaNetwork((first, last), (LOOPBACK,), None)
    held = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    held.bind((LOOPBACK, first + 1))
    socks = [held]
    try:
        for expected in (first, first + 2):
            sock = network.bind(LOOPBACK)
            assert sock is not None
            socks.append(sock)
            assert sock.getsockname() == (LOOPBACK, expected)
        with pytest.raises(MediaPortsExhausted) as refused:
            network.bind(LOOPBACK)
        assert refused.value.detail == f"every UDP port of {first}-{last} is in use on {LOOPBACK}"
        socks.pop().close()  # first + 2 freed: the next is tried first, round the range
        sock = network.bind(LOOPBACK)
        assert sock is not None
        socks.append(sock)
        assert sock.getsockname() == (LOOPBACK, first + 2)
    finally:
        for sock in socks:
            sock.close()


def test_workers_get_equal_disjoint_slices_and_too_few_ports_are_refused() -> None:
    assert split((40000, 40999), 2, 2) == [(40000, 40499), (40500, 40999)]
    assert split((40000, 40010), 3, 2) == [(40000, 40002), (40003, 40005), (40006, 40008)]
    with pytest.raises(ConfigError, match="3 ports cannot give each of the 2 workers the 2"):
        split((40000, 40002), 2, 2)


def test_addresses_and_interfaces_are_resolved_or_refused_by_name() -> None:
    assert resolve(["lo", LOOPBACK]) == resolve(["lo"])
    assert LOOPBACK in resolve(["lo"])
    with pytest.raises(ConfigError, match="VIDEOASSIST_MEDIA_ADDRESSES: 'nosuch0' is neither"):
        resolve(["nosuch0"])
    with pytest.raises(ConfigError, match=r"198\.51\.100\.9 is not an address of this machine"):
        resolve(["198.51.100.9"])


async def test_with_stun_and_turn_the_range_sockets_also_give_reflexive_and_relay_candidates(
        server_factory: ServerFactory, tmp_path: Path) -> None:
    """The hook binds the host sockets only: aioice still asks the STUN server about them
    (server-reflexive candidates, here the same address and port seen from loopback)
    and the TURN server for a relay, and a relay-only customer gets through."""
    secret = "test-turn-secret-0123456789abcdef"
    first, last = free_udp_ports(3)
    with coturn(tmp_path, secret) as port:
        server = await server_factory(
            turn_urls=(f"stun:127.0.0.1:{port}", f"turn:127.0.0.1:{port}?transport=udp"),
            turn_secret=Secret(secret), media_ports=f"{first}-{last}",
            media_addresses=(LOOPBACK,))
        expert_token, customer_token, job_id = await two_parties(server)
        expert = await MediaClient(server, expert_token, job_id, joined_ice=True).start()
        customer = await MediaClient(server, customer_token, joined_ice=True).start()
        try:
            await expert.wait_remote(customer.participant_id, "video", frames=10)
            await customer.wait_remote(expert.participant_id, "video", frames=10)
            assert customer.local_candidate_type() == "relay"
            for client in (expert, customer):
                sent = set(sdp_candidates(client.server_sdps[0]))
                [host] = [(ip, p) for ip, p, kind in sent if kind == "host"]
                assert host[0] == LOOPBACK and first <= host[1] <= last, sent
                assert (*host, "srflx") in sent, sent
                assert [kind for _, _, kind in sent].count("relay") == 1, sent
        finally:
            await customer.close()
            await expert.close()


async def test_a_server_offer_that_needs_a_port_of_a_full_range_closes_that_media_only(
        server_factory: ServerFactory, caplog: pytest.LogCaptureFixture) -> None:
    """A viewer that offered video only gets the others' audio on a transport of a new
    kind, which gathers (a second port, until the viewer's answer bundles it): with the
    range full, the server's offer cannot be made, and that viewer's media is closed,
    logged and counted; the call goes on for the others."""
    first, last = free_udp_ports(2)
    server = await server_factory(media_ports=f"{first}-{last}", media_addresses=(LOOPBACK,))
    expert_token, customer_token, job_id = await two_parties(server)
    expert = await MediaClient(server, expert_token, job_id).start()
    viewer = None
    try:
        with caplog.at_level(logging.WARNING, logger="videoassist.media.router"):
            viewer = await MediaClient(server, customer_token, video=False, audio=False).start()
            async with asyncio.timeout(10):
                while viewer.participant_id in server.app[MEDIA].sessions:
                    await asyncio.sleep(0.05)
        assert (f"participant {viewer.participant_id}] media refused: every UDP port of "
                f"{first}-{last} is in use on {LOOPBACK}") in caplog.text
        assert value(await scrape(server), "videoassist_peer_connections_refused_total") == 1
        assert expert.participant_id in server.app[MEDIA].sessions
    finally:
        if viewer is not None:
            await viewer.close()
        await expert.close()


def test_ports_in_the_kernels_ephemeral_range_not_reserved_are_warned_about(
        tmp_path: Path) -> None:
    """Read from files as Linux's /proc/sys/net/ipv4 has them."""
    (tmp_path / "ip_local_port_range").write_text("32768\t60999\n")
    (tmp_path / "ip_local_reserved_ports").write_text("\n")
    assert ephemeral_overlap((20000, 20999), tmp_path) is None
    assert ephemeral_overlap((40000, 40999), tmp_path) == (
        "1000 media ports of 40000-40999 lie in the kernel's ephemeral range 32768-60999, "
        "where other connections may take them: reserve them (sysctl "
        "net.ipv4.ip_local_reserved_ports=40000-40999) or choose ports outside it")
    assert ephemeral_overlap((32000, 32777), tmp_path) is not None
    assert "10 media ports" in (ephemeral_overlap((32000, 32777), tmp_path) or "")
    (tmp_path / "ip_local_reserved_ports").write_text("40000-40998,40999\n")
    assert ephemeral_overlap((40000, 40999), tmp_path) is None
    assert ephemeral_overlap((40000, 40999), tmp_path / "elsewhere") is None  # not Linux
