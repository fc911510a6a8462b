"""The forwarding hooks fail loudly, not silently, if aiortc changes under them."""

from __future__ import annotations

import aiortc
import pytest
from aiortc import RTCRtpReceiver, RTCRtpSender, RTCSessionDescription
from aiortc import rtcrtpreceiver as receiver_module
from aiortc.sdp import SessionDescription

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


# A client that numbers its codecs and header extensions the way Chromium does: aiortc's
# numbers (Opus 96, VP8 97 with RTX 98, H.264 99/101 with RTX 100/102) moved elsewhere.
CHROMIUM_PAYLOAD_TYPES = {96: 111, 97: 96, 98: 97, 99: 103, 100: 104, 101: 107, 102: 108}


def _renumber_like_chromium(sdp: str) -> str:
    def payload_type(number: str) -> str:
        return str(CHROMIUM_PAYLOAD_TYPES.get(int(number), int(number)))

    lines = []
    for line in sdp.split("\r\n"):
        if line.startswith("m="):
            head = line.split(" ")[:3]
            line = " ".join(head + [payload_type(n) for n in line.split(" ")[3:]])
        for prefix in ("a=rtpmap:", "a=fmtp:", "a=rtcp-fb:"):
            if line.startswith(prefix):
                number, _, rest = line[len(prefix):].partition(" ")
                line = f"{prefix}{payload_type(number)} {rest}"
        if "apt=" in line:
            before, _, number = line.partition("apt=")
            line = f"{before}apt={payload_type(number)}"
        if line.startswith("a=extmap:"):
            number, _, rest = line[len("a=extmap:"):].partition(" ")
            line = f"a=extmap:{int(number) + 6} {rest}"
        lines.append(line)
    return "\r\n".join(lines)


def _meanings(sdp: str) -> dict[int, set[str]]:
    """Payload type to every codec it names anywhere in the description."""
    meanings: dict[int, set[str]] = {}
    for media in SessionDescription.parse(sdp).media:
        for codec in media.rtp.codecs:
            assert codec.payloadType is not None
            meanings.setdefault(codec.payloadType, set()).add(
                f"{codec} {sorted(codec.parameters.items(), key=str)}".replace(
                    f"PT={codec.payloadType}", ""))
    return meanings


async def _negotiated(client: aiortc.RTCPeerConnection, server: aiortc.RTCPeerConnection
                      ) -> tuple[str, aiortc_hooks.ClientNegotiation]:
    """A Chromium-numbered client publishes audio and video, then the server adds two
    sendonly transceivers of its own; returns the client's offer and what it taught."""
    client.addTransceiver("audio", direction="sendonly")
    client.addTransceiver("video", direction="sendonly")
    await client.setLocalDescription(await client.createOffer())
    offer = _renumber_like_chromium(client.localDescription.sdp)
    await client.setLocalDescription(RTCSessionDescription(offer, "offer"))
    negotiation = aiortc_hooks.ClientNegotiation()
    await server.setRemoteDescription(RTCSessionDescription(offer, "offer"))
    negotiation.learn(offer)
    await server.setLocalDescription(await server.createAnswer())
    await client.setRemoteDescription(server.localDescription)
    server.addTransceiver("audio", direction="sendonly")
    server.addTransceiver("video", direction="sendonly")
    return offer, negotiation


async def test_a_server_re_offer_keeps_the_clients_numbers() -> None:
    """Chromium follows a re-offer's renumbering and a started aiortc receiver does not
    (pictures stopped after the first re-offer): the server must keep the client's."""
    config = aiortc.RTCConfiguration(iceServers=[])
    peers = [aiortc.RTCPeerConnection(config) for _ in range(4)]
    client, server, control_client, control_server = peers
    try:
        await _negotiated(control_client, control_server)
        plain = SessionDescription.parse((await control_server.createOffer()).sdp)
        assert [c.payloadType for c in plain.media[1].rtp.codecs][:1] == [97], (
            "aiortc's createOffer no longer renumbers: the hook may be unnecessary")

        offer, negotiation = await _negotiated(client, server)
        re_offer = await aiortc_hooks.create_offer_keeping_negotiation(server, negotiation)
        described = SessionDescription.parse(re_offer.sdp)
        assert len(described.media) == 4
        client_numbers = _meanings(offer)
        for media in described.media:
            first = media.rtp.codecs[0]
            assert (first.mimeType, first.payloadType) in [("audio/opus", 111), ("video/VP8", 96)]
            assert {e.uri: e.id for e in media.rtp.headerExtensions}.items() <= (
                negotiation.extension_ids.items())
            assert [e.id for e in media.rtp.headerExtensions]
        for number, meaning in _meanings(re_offer.sdp).items():
            assert len(meaning) == 1, f"payload type {number} has two meanings: {meaning}"
            assert number not in client_numbers or meaning == client_numbers[number]

        await server.setLocalDescription(re_offer)
        await client.setRemoteDescription(server.localDescription)
        await client.setLocalDescription(await client.createAnswer())
        await server.setRemoteDescription(client.localDescription)
        new_video = server.getTransceivers()[3]
        assert [(c.mimeType, c.payloadType) for c in new_video._codecs][:2] == [
            ("video/VP8", 96), ("video/rtx", 97)]
    finally:
        for peer in peers:
            await peer.close()
