"""The call's shared freeze (docs/protocol.md, "Freeze"): one frame of one camera that
everyone in the call looks at, with the drawings on it, until it is resumed.

Staff freeze the picture to draw on something that holds still. The server takes the
camera's newest frame (its newest still in stills mode) once, and everyone gets that
one frame as a binary frame on the signalling socket, as stills travel
(``signalling.stills``): the person holding the phone sees what the expert draws on,
not their own live preview, and a snapshot of that camera while it is frozen is that
frame, to the pixel. The frame is in memory only, the call's, and forgotten when the
freeze ends: resumed by anyone but a customer, or when the camera's owner or whoever
froze it leaves the call.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from videoassist.signalling.stills import pack
from videoassist.snapshots.service import Picture


@dataclass(frozen=True)
class Frozen:
    camera: int  # the participant whose camera's frame it is
    by: int  # the participant who froze it
    picture: Picture

    def header(self) -> dict[str, Any]:
        return {"type": "frozen", "camera": self.camera, "by": self.by,
                "width": self.picture.width, "height": self.picture.height,
                "at": self.picture.captured_at}

    def message(self) -> dict[str, Any]:
        """For a member's outbox: the binary frame everyone gets (header, JPEG)."""
        return {"type": "frozen", "frame": pack(self.header(), self.picture.jpeg)}

    def ended(self, by: int | None) -> dict[str, Any]:
        """What everyone is told when it ends: by whom (None: its camera's owner or the
        one who froze it left the call)."""
        return {"type": "freeze.ended", "camera": self.camera, "by": by}
