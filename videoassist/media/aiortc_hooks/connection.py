"""The peer connection: aiortc's ``RTCPeerConnection``, whose connecting task ends
quietly when the connection closes under it (``PeerConnection``). ``__connect``, which
``setRemoteDescription`` starts as a task nobody awaits, raised InvalidStateError for a
client that offers and vanishes at once, and asyncio logged it as never retrieved."""

from __future__ import annotations

from aiortc import RTCPeerConnection
from aiortc.exceptions import InvalidStateError

from videoassist.media.aiortc_hooks.internals import _names

_CONNECT = "_RTCPeerConnection__connect"
_CLOSED = "_RTCPeerConnection__isClosed"


class PeerConnection(RTCPeerConnection):
    """aiortc's peer connection, whose connecting task ends quietly when the connection
    closes under it.

    ``setRemoteDescription`` starts ``__connect`` as a task nobody awaits. It looks
    whether the connection is closed only before it starts; one closed while it awaits
    ICE (a client that offers and vanishes at once) made ``RTCIceTransport.start`` raise
    InvalidStateError, logged by asyncio as "Task exception was never retrieved" (seen
    by test_sdp_fuzz on a busy machine). On a closed connection there is nothing left
    to connect; on an open one the error is aiortc's, raised as before."""

    async def _RTCPeerConnection__connect(self) -> None:
        try:
            await getattr(super(), _CONNECT)()
        except InvalidStateError:
            if getattr(self, _CLOSED) is None:
                raise


def _connect_problems() -> list[str]:
    connect = getattr(RTCPeerConnection, _CONNECT, None)
    if not callable(connect):
        return [f"RTCPeerConnection.{_CONNECT} is gone"]
    if _CLOSED not in _names(connect) and _CLOSED not in _names(RTCPeerConnection.close):
        return [f"RTCPeerConnection no longer keeps {_CLOSED}"]
    return []
