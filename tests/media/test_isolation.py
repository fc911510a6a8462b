"""A call beside another test's network namespace (``tests.support.netns``).

The tests run beside each other (pytest-xdist), and some make network namespaces joined
to this machine by veth pairs. Seen from here, a pair's root end is one more address of
the machine, gone when its namespace goes: a call whose ICE pair was on it lost its
media for good (a viewer that never got a publisher's frames, in about half the runs
with such an address there, before the tests' peers and servers kept off it).
"""

from __future__ import annotations

import pytest

from tests.support import netns
from tests.support.peers import MediaClient, sdp_candidates
from tests.support.server import Server, two_parties

pytestmark = pytest.mark.skipif(netns.unavailable() is not None,
                                reason=netns.unavailable() or "")


async def test_a_call_keeps_off_another_tests_veth_and_outlives_it(server: Server) -> None:
    staff_token, customer_token, job_id = await two_parties(server)
    with netns.stray_veth() as stray:
        expert = await MediaClient(server, staff_token, job_id).start()
        customer = await MediaClient(server, customer_token).start()
        try:
            received = await expert.wait_remote(customer.participant_id, "video")
            await customer.wait_remote(expert.participant_id, "video")
            for client in (expert, customer):
                sdps = [client.pc.localDescription.sdp, *client.server_sdps]
                gathered = {address for sdp in sdps for address, _, _ in sdp_candidates(sdp)}
                assert stray not in gathered, (stray, gathered)
        except BaseException:
            await customer.close()
            await expert.close()
            raise
    try:  # the veth is gone: the media goes on
        await expert.wait_remote(customer.participant_id, "video",
                                 frames=received.frames + 30)
    finally:
        await customer.close()
        await expert.close()
