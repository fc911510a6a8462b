"""ICE configuration in `joined`: TURN credentials and the customer's relay-only policy."""

from __future__ import annotations

import base64
import hashlib
import hmac

from tests.support.server import ServerFactory
from videoassist import keyfiles


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
