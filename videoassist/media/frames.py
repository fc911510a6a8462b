"""Encoded frames as the media plane carries them, and keyframe detection."""

from __future__ import annotations

from dataclasses import dataclass

CLOCK_RATES = {"VP8": 90_000, "H264": 90_000, "opus": 48_000}


@dataclass(frozen=True, slots=True)
class EncodedFrame:
    codec: str        # "VP8", "H264" or "opus", as aiortc names them
    data: bytes       # one depayloaded frame (H.264 in Annex B form)
    timestamp: int    # in the codec's clock, increasing (aiortc unwraps RTP's 32 bits)
    keyframe: bool    # decodable on its own
    received: float   # monotonic time the server finished receiving it
    index: int        # position in its publication, from 0
    # The RTP payloads it came in, as received (for VP8 with their payload descriptors),
    # which a viewer's sender sends again as they are (aiortc_hooks.PacketSender); empty
    # for a frame that did not come from a receiver: the sender packetizes ``data``.
    payloads: tuple[bytes, ...] = ()

    @property
    def clock_rate(self) -> int:
        return CLOCK_RATES.get(self.codec, 90_000)


def is_keyframe(codec: str, data: bytes) -> bool:
    """Whether a decoder can start at this frame."""
    if codec == "VP8":
        # RFC 6386 9.1: bit 0 of the frame tag is 0 for a key frame.
        return len(data) > 0 and data[0] & 0x01 == 0
    if codec == "H264":
        return any(nal_type in (5, 7) for nal_type in _h264_nal_types(data))
    return True  # audio: every Opus packet stands alone


def _h264_nal_types(data: bytes) -> list[int]:
    types = []
    start = data.find(b"\x00\x00\x01")
    while start != -1 and start + 3 < len(data):
        types.append(data[start + 3] & 0x1F)
        start = data.find(b"\x00\x00\x01", start + 3)
    return types


def renumber_vp8(payloads: tuple[bytes, ...] | list[bytes], picture_id: int) -> list[bytes]:
    """A VP8 frame's RTP payloads with ``picture_id`` in their payload descriptors
    (RFC 7741 4.2), in the width each already has (7 or 15 bits); a payload without a
    picture id, or too short to hold the one it announces, is left as it is."""
    out = []
    for payload in payloads:
        if len(payload) < 3 or not payload[0] & 0x80 or not payload[1] & 0x80:  # X, I
            out.append(payload)
        elif payload[2] & 0x80:  # M: 15 bits
            if len(payload) < 4:
                out.append(payload)
                continue
            out.append(payload[:2] + bytes((0x80 | (picture_id >> 8) & 0x7F,
                                            picture_id & 0xFF)) + payload[4:])
        else:
            out.append(payload[:2] + bytes((picture_id & 0x7F,)) + payload[3:])
    return out
