"""scripts/packet_profile.py files py-spy's stacks under the steps of a packet's way
(docs/performance.md, "Where a forwarded packet's CPU goes"). Stacks as py-spy writes
them, from the server's own profiles, shortened to the frames that decide."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "packet_profile.py"
HOOKS = "videoassist/media/aiortc_hooks"


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("packet_profile", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _stack(*frames: str) -> str:
    return ";".join(frames)


RECEIVE = (f"_DirectReceiver.__call__ ({HOOKS}/direct.py:125)",
           f"_DirectReceiver._rtp ({HOOKS}/direct.py:160)",
           f"_FastReceive.__call__ ({HOOKS}/fast_receive.py:150)",
           "Publication.push (videoassist/media/publication.py:123)",
           "ForwardTrack.offer (videoassist/media/forward.py:119)",
           "SlotTrack._deliver (videoassist/media/slot.py:114)")


def test_a_frame_sent_from_the_fan_out_is_filed_under_sending_by_its_step() -> None:
    classify = _script().classify
    send_now = f"PacketSender.send_now ({HOOKS}/sender.py:269)"
    assert classify(_stack(*RECEIVE, send_now, f"PacketSender.send_udp ({HOOKS}/sender.py:294)",
                           "sendto (loop.c:166785)")) == "send: UDP send (DTLS, ICE, socket)"
    assert classify(_stack(*RECEIVE, send_now, f"PacketSender.send_udp ({HOOKS}/sender.py:293)",
                           "protect (pylibsrtp/__init__.py:200)")) == "send: SRTP protect"
    assert classify(_stack(*RECEIVE, send_now, f"PacketSender._forwarded ({HOOKS}/sender.py:206)",
                           f"_with_send_time ({HOOKS}/extensions.py:44)")) == \
        "send: RTP packets: objects, headers"


def test_the_receive_path_without_a_send_stays_receiving() -> None:
    classify = _script().classify
    assert classify(_stack(*RECEIVE[:3], "unprotect (pylibsrtp/__init__.py:220)")) == \
        "receive: SRTP unprotect"
    assert classify(_stack(*RECEIVE)) == \
        "receive: jitter buffer, frame reassembly, fan-out to viewers' queues"
    assert classify(_stack(*RECEIVE[:3])) == "receive: receiver and DTLS transport, the rest"


def test_the_sender_loop_is_sending() -> None:
    classify = _script().classify
    loop = "RTCRtpSender._run_rtp (aiortc/rtcrtpsender.py:300)"
    assert classify(_stack(loop, f"PacketSender.run ({HOOKS}/sender.py:150)")) == \
        "send: sender loop"
    assert classify(_stack(loop, f"PacketSender.send ({HOOKS}/sender.py:284)",
                           "sendto (loop.c:1)")) == "send: UDP send (DTLS, ICE, socket)"
