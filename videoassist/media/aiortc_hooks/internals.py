"""What several hooks share: the error raised when aiortc's internals are not what a
hook was written for, the receiver's private attributes that more than one hook reaches
(the tap, its fast path, the estimate relay, ``check_compatible``), and ``_names``,
with which each concern's ``_*_problems()`` looks for a name in aiortc's code."""

from __future__ import annotations

from typing import Any


class IncompatibleAiortc(RuntimeError):
    """The installed aiortc does not have the internals the forwarding hooks use."""


_DECODER_QUEUE = "_RTCRtpReceiver__decoder_queue"
_JITTER_BUFFER = "_RTCRtpReceiver__jitter_buffer"
_RTCP_SSRC = "_RTCRtpReceiver__rtcp_ssrc"
_ESTIMATOR = "_RTCRtpReceiver__remote_bitrate_estimator"


def _names(function: Any) -> tuple[str, ...]:
    """The names a function's code uses (attributes, globals)."""
    names: tuple[str, ...] = getattr(getattr(function, "__code__", None), "co_names", ())
    return names
