"""What signalling needs of the media plane: a small interface, so signalling does
not depend on aiortc (``videoassist.media.router.MediaRouter`` implements it)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

Send = Callable[[dict[str, Any]], bool]
Deliver = Callable[[Callable[[int], dict[str, Any]]], None]


class MediaPlane(Protocol):
    async def offer(self, call_id: int, participant_id: int, sdp: str, send: Send, *,
                    restart: bool = False) -> str:
        """Apply a client's offer; return the server's answer. ``restart``: the offer
        comes from a new peer connection, which takes the place of the previous one."""

    def rebind(self, participant_id: int, send: Send) -> None:
        """The participant's signalling goes on over another connection (a resume):
        the server's messages about its media go there from now on."""

    async def answer(self, participant_id: int, sdp: str) -> None:
        """Apply a client's answer to the server's last offer."""

    async def candidate(self, participant_id: int, fields: dict[str, Any]) -> None:
        """Add a client's ICE candidate."""

    async def mute(self, participant_id: int, kind: str, muted: bool) -> None:
        """The participant muted or unmuted its own tracks of a kind: stop or resume
        forwarding them, and tell the others."""

    def muted(self, participant_id: int, kind: str) -> bool:
        """Whether the participant muted its tracks of that kind (``media.mute``)."""

    async def capture(self, participant_id: int) -> Any:
        """The newest picture of the participant's camera (``media.capture.Capture``);
        ``errors.Muted`` if it is muted."""

    def pin(self, target: int, shape: dict[str, Any], drawer: int,
            rtp_timestamp: int | None, deliver: Deliver) -> None:
        """Follow a shape drawn by ``drawer`` on ``target``'s video (its frame of that
        RTP timestamp as the drawer received it, if given) and tell everyone where it is
        in each picture (``annotation.track``, through ``deliver``: given the message
        for a participant id, it sends each participant theirs). ``errors.NotFound``:
        the target sends no video; ``errors.TooManyRequests``: the call has as many
        pinned shapes as it may."""

    def unpin(self, target: int, key: str | None = None) -> None:
        """Stop following a shape (None: every shape) on ``target``'s video."""

    async def placed(self, participant_id: int, shapes: list[dict[str, Any]],
                     timestamp: int) -> list[dict[str, Any]]:
        """``shapes`` as they are on the participant's frame of that timestamp (a
        capture's): pinned ones where they were followed to, those whose object was
        out of view left out."""

    def withdraw(self, participant_id: int) -> None:
        """Stop at once all forwarding from and to the participant (it is leaving):
        nobody is given its tracks from now on. ``leave`` closes its connection."""

    async def leave(self, participant_id: int) -> None:
        """Close the participant's media: connection, tracks, subscriptions (withdrawn
        first, if it was not)."""

    def connected(self, participant_id: int) -> bool:
        """Whether the participant's media connection (its PeerConnection with the
        server) is up: ICE and DTLS connected."""
