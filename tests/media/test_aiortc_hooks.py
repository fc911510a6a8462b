"""The forwarding hooks fail loudly, not silently, if aiortc changes under them."""

from __future__ import annotations

import aiortc
import pytest
from aiortc import RTCRtpReceiver, RTCRtpSender
from aiortc import rtcrtpreceiver as receiver_module

from videoassist.media import aiortc_hooks
from videoassist.media.aiortc_hooks import IncompatibleAiortc, check_compatible


def test_the_installed_aiortc_is_compatible() -> None:
    check_compatible()


def test_an_untested_aiortc_version_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(aiortc, "__version__", "1.17.0")
    with pytest.raises(IncompatibleAiortc, match=r"1\.17\.0"):
        check_compatible()


@pytest.mark.parametrize("owner, name", [
    (receiver_module, "decoder_worker"),
    (RTCRtpReceiver, "_send_rtcp_pli"),
    (RTCRtpSender, "_send_keyframe"),
    (RTCRtpSender, "_handle_rtcp_packet"),
])
def test_a_missing_internal_is_named(monkeypatch: pytest.MonkeyPatch, owner: object,
                                     name: str) -> None:
    monkeypatch.delattr(owner, name)
    with pytest.raises(IncompatibleAiortc, match=name):
        check_compatible()


async def test_the_tap_replaces_the_decoder_queue_and_refuses_a_started_receiver() -> None:
    pc = aiortc.RTCPeerConnection(aiortc.RTCConfiguration(iceServers=[]))
    try:
        receiver = pc.addTransceiver("video", direction="recvonly").receiver
        frames: list[tuple[str, bytes, int]] = []
        aiortc_hooks.tap_receiver(receiver, lambda *frame: frames.append(frame))
        queue = receiver._RTCRtpReceiver__decoder_queue  # type: ignore[attr-defined]
        assert isinstance(queue, aiortc_hooks._TapQueue)

        class Codec:
            name = "VP8"

        class Frame:
            data = b"\x10frame"
            timestamp = 3000

        queue.put((Codec(), Frame()))
        assert frames == [("VP8", b"\x10frame", 3000)]
        queue.put(None)
        assert queue.get() is None  # the parked decoder thread is released
        receiver._RTCRtpReceiver__started = True  # type: ignore[attr-defined]
        try:
            with pytest.raises(RuntimeError, match="before the receiver starts"):
                aiortc_hooks.tap_receiver(receiver, lambda *frame: None)
        finally:  # it never really started: let close() skip stopping it
            receiver._RTCRtpReceiver__started = False  # type: ignore[attr-defined]
    finally:
        await pc.close()
