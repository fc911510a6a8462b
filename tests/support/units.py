"""How the suite is shared between pytest-xdist's workers (``--dist loadscope`` with
these units: ``tests/conftest.py``'s ``pytest_xdist_make_scheduler``)."""

from __future__ import annotations

# The tests whose bounds are on real time under a real load: media streams, Chromium, the
# benchmark and the fleet (each runs servers, encoders and decoders that want a core).
# Under pytest-xdist they are one unit: they run one at a time, in one worker, never two
# of them at once, while the other worker takes the rest, which mostly waits on sockets,
# processes and databases (and the WAITING tests below, which even the two out).
REALTIME = ("tests/browser/", "tests/media/", "tests/fleet/", "tests/test_bench.py")
# Of those, the tests whose time is mostly a wait on a clock, with nothing to encode or
# decode meanwhile and bounds after it of 15 s or more: a server stopped for 25 s, a
# network down for 30 s, a camera allowed 20 s late, a socket silent until its pings are
# due. Each is a unit of its own, which goes out last (the fewest tests), to whichever
# worker is free first: mostly the one beside the REALTIME unit, whose two minutes of
# waiting they were (a quiet run of 7a4d411: the REALTIME unit 11.3 min, the rest 7.8).
WAITING = (
    "tests/media/test_recovery.py::test_after_the_server_stalled_25_s_both_sides_come_back",
    "tests/media/test_impaired.py::test_a_customer_offline_sees_and_is_seen_again[30s]",
    "tests/browser/test_coming_back.py::"
    "test_a_customer_who_allows_the_camera_20_s_late_is_in_the_call",
    "tests/browser/test_silent_socket.py::"
    "test_a_socket_that_answers_no_ping_is_given_up_for_a_new_one",
)


def work_unit(nodeid: str) -> str:
    """What pytest-xdist hands a worker whole (``--dist loadscope``): the ``REALTIME``
    tests together but the ``WAITING`` ones, each alone, any other test with its module
    (whose module-scoped fixtures the worker then makes once), in the order they are
    written. The units go out the largest first (pytest-xdist's ``loadscopereorder``):
    the ``REALTIME`` one at once, then one to each worker whose last is nearly done."""
    if nodeid.startswith(WAITING):
        return nodeid
    return "realtime" if nodeid.startswith(REALTIME) else nodeid.split("::", 1)[0]
