"""Each participant's media connection, told to the database for every process to read.

A call lives whole in one server process (its WebSockets, its peer connections), but
the admin views may be asked of any process (several workers share one database). So
the process holding a call writes whether each of its participants' media connection
(their PeerConnection with the server) is up to the participant's row: only when that
changes, looked at every ``PERIOD_S``, never per packet. A view is at most that late.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

from videoassist.signalling.hub import Hub
from videoassist.storage import Store

logger = logging.getLogger(__name__)

PERIOD_S = 0.5


class MediaConnections(Protocol):
    """What the writer reads of the media plane (``MediaRouter`` implements it)."""

    def connected(self, participant_id: int) -> bool:
        """Whether the participant's peer connection is up."""


class MediaStateWriter:
    def __init__(self, hub: Hub, media: MediaConnections, store: Store) -> None:
        self._hub = hub
        self._media = media
        self._store = store
        self._written: dict[int, bool] = {}  # participant id: as the database has it

    async def write_changes(self) -> int:
        """Write the states that changed since the last call; return how many."""
        # A participant away keeps its media session, which may still be up.
        now = {m.id: self._media.connected(m.id) for m in self._hub.members()
               if m.away or not m.closing}
        # A new participant's row says "not connected" until told otherwise.
        changed = {pid: up for pid, up in now.items() if self._written.get(pid, False) != up}
        await self._store.calls.set_media_connected(changed)
        self._written = now  # who left is forgotten; their row is no longer read
        return len(changed)

    async def run(self) -> None:
        """``write_changes`` every ``PERIOD_S`` until cancelled."""
        while True:
            await asyncio.sleep(PERIOD_S)
            try:
                await self.write_changes()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("writing the media states failed; retrying")
