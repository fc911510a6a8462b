"""The header extensions of the packets ``PacketSender`` sends (``sender``): mid and
abs-send-time as the sender's ``HeaderExtensionsMap`` serializes them, read through its
private ``__ids`` (the negotiated ids), from a template serialized once and patched with
each frame's send time, and the wall clock as NTP without aiortc's ``datetime``
objects (``ntp_now``)."""

from __future__ import annotations

import struct
import time
from typing import Any

from aiortc.rtp import HeaderExtensions

from videoassist.media.aiortc_hooks.internals import IncompatibleAiortc

_EXTENSION_HEADER = struct.Struct("!HH")
_MAP_IDS = "_HeaderExtensionsMap__ids"  # the negotiated ids, a HeaderExtensions
_NTP_EPOCH_S = 2_208_988_800  # 1900-01-01 to 1970-01-01


def ntp_now() -> int:
    """The wall clock as a 64-bit NTP timestamp, as aiortc's ``clock.current_ntp_time()``
    gives it, without its two ``datetime`` objects."""
    now = time.time()
    seconds = int(now)
    return ((seconds + _NTP_EPOCH_S) << 32) | int((now - seconds) * (1 << 32))


def _serialize_extensions(extensions_map: Any, extensions: HeaderExtensions) -> bytes:
    """aiortc's serialization of header extensions, with the profile and length that
    precede them in a packet; empty when none is negotiated."""
    profile, value = extensions_map.set(extensions)
    if not value:
        return b""
    return bytes(_EXTENSION_HEADER.pack(profile, len(value) >> 2) + value)


def _with_send_time(template: tuple[bytes, int | None], abs_send_time: int) -> bytes:
    """A template of ``_extensions_template`` with this abs-send-time in it."""
    block, offset = template
    if offset is None:
        return block
    return block[:offset] + abs_send_time.to_bytes(3, "big") + block[offset + 3:]


def _extensions_template(extensions_map: Any, mid: str | None) -> tuple[bytes, int | None]:
    """The serialized mid and abs-send-time extensions and where the three bytes of
    the send time are in them (None: not negotiated; the block is then the same for
    every frame)."""
    low = _serialize_extensions(extensions_map, HeaderExtensions(mid=mid, abs_send_time=0))
    high = _serialize_extensions(extensions_map,
                                 HeaderExtensions(mid=mid, abs_send_time=0xFFFFFF))
    differ = [i for i, (a, b) in enumerate(zip(low, high, strict=False)) if a != b]
    if not differ and low == high:
        return low, None
    if len(low) != len(high) or differ != [differ[0], differ[0] + 1, differ[0] + 2]:
        raise IncompatibleAiortc("abs-send-time is not three bytes of its own in the "
                                 "serialized header extensions")
    return low, differ[0]
