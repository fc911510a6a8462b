"""ICE configuration in `joined`: TURN credentials and the customer's relay-only policy,
and the server's own side with and without TURN (``VIDEOASSIST_MEDIA_TURN``)."""

from __future__ import annotations

import base64
import hashlib
import hmac
from pathlib import Path

import pytest

from tests.support.coturn import coturn
from tests.support.peers import MediaClient, sdp_candidates
from tests.support.server import ServerFactory, two_parties
from videoassist import keyfiles
from videoassist.config import Secret


async def test_without_turn_nobody_gets_ice_servers(server_factory: ServerFactory) -> None:
    server = await server_factory()
    _, token = await server.staff("expert")
    job_id = await server.job(token)
    customer = await server.participant(token, job_id)
    for ws, joined in (await server.join_call(token, job_id),
                       await server.join_call(customer)):
        assert (joined["ice_servers"], joined["ice_transport_policy"]) == ([], "all")
        await ws.close()


async def test_with_turn_customers_are_relay_only_with_valid_credentials(
    server_factory: ServerFactory,
) -> None:
    urls = ("turn:turn.example.com:3478?transport=udp", "turns:turn.example.com:443")
    server = await server_factory(turn_urls=urls, turn_ttl_s=300)
    secret = keyfiles.turn_secret(server.settings)
    _, token = await server.staff("expert")
    job_id = await server.job(token)
    customer = await server.participant(token, job_id)
    expert_ws, expert = await server.join_call(token, job_id)
    customer_ws, joined = await server.join_call(customer)
    assert joined["ice_transport_policy"] == "relay"
    assert expert["ice_transport_policy"] == "all"
    for message in (expert, joined):
        (ice,) = message["ice_servers"]
        assert ice["urls"] == list(urls)
        expiry, user = ice["username"].split(":")
        assert user == f"participant-{message['you']['id']}"
        assert 0 < int(expiry) - server.clock() <= 300
        expected = base64.b64encode(
            hmac.new(secret.encode(), ice["username"].encode(), hashlib.sha1).digest()).decode()
        assert ice["credential"] == expected
    await expert_ws.close()
    await customer_ws.close()


@pytest.mark.parametrize("media_turn", [True, False])
async def test_media_turn_off_keeps_the_server_off_turn_while_clients_relay(
        server_factory: ServerFactory, tmp_path: Path, media_turn: bool) -> None:
    """TURN as a tier of its own (VIDEOASSIST_MEDIA_TURN=false): the server's candidates
    are its own addresses only, and a relay-only customer still reaches them through a
    real coturn. With the default, the server has a relay candidate of its own."""
    secret = "test-turn-secret-0123456789abcdef"
    with coturn(tmp_path, secret) as port:
        url = f"turn:127.0.0.1:{port}?transport=udp"
        server = await server_factory(turn_urls=(url,), turn_secret=Secret(secret),
                                      media_turn=media_turn)
        expert_token, customer_token, job_id = await two_parties(server)
        expert = await MediaClient(server, expert_token, job_id, joined_ice=True).start()
        customer = await MediaClient(server, customer_token, joined_ice=True).start()
        try:
            await expert.wait_remote(customer.participant_id, "video", frames=10)
            await customer.wait_remote(expert.participant_id, "video", frames=10)
            assert customer.local_candidate_type() == "relay"
            for client in (expert, customer):
                types = {kind for sdp in client.server_sdps
                         for _, _, kind in sdp_candidates(sdp)}
                assert ("relay" in types) is media_turn, types
                assert "host" in types
        finally:
            await customer.close()
            await expert.close()
