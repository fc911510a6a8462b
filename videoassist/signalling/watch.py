"""When the hub looks at the database for who may no longer be in its calls, and
whether what it last read stands for the database.

The hub's watcher looks every ``poll_s``, and at once when the database notifies a
change (PostgreSQL, ``videoassist.cluster.changes``); while the notifications do not
come, at least every ``UNHEARD_POLL_S``. While notifications come, what it last read is
current enough to stand for the database: ``notified`` says so. Without them (SQLite;
the notifications lost), what it read in a look begun within ``TRUSTED_LOOK_S`` stands
for the database too: ``current`` says whether either holds. A connection checks its
messages against the member's state while the watch is current, and reads the database
for them only while it is not (the watcher late or failing): under load, a read per
message queued the call's signalling behind the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Protocol

logger = logging.getLogger(__name__)

# How often the watcher looks at most while the database's notifications do not come
# (lost, or not yet there), however long ``poll_s`` is: the poll is then what bounds
# how late a change made elsewhere takes effect.
UNHEARD_POLL_S = 0.25
# How often the watcher looks at most while someone is away, whatever the window: the
# wall clock its windows are counted on may jump (tests move it).
AWAY_CHECK_S = 1.0
# How old the watcher's last whole look at the database may be (counted from when it
# began) for a signalling message to be checked against what it read rather than read
# from the database again: the bound on how long after a change made elsewhere (another
# process, the CLI) a message of whom it concerns may still be acted upon, without
# notifications.
TRUSTED_LOOK_S = 1.0
# How often the calls placed on this node that nobody joined are looked for.
UNCLAIMED_CHECK_S = 5.0


class Watched(Protocol):
    """What the watch looks at (the hub)."""

    def next_away_end(self) -> float | None:
        """When the first window of a participant away ends (the clock's time)."""

    async def look(self) -> None:
        """One whole look at the database for this node's calls."""

    async def end_unclaimed(self) -> None:
        """End the calls placed here that nobody joined."""


class Watch:
    def __init__(self, poll_s: float, clock: Callable[[], float]) -> None:
        self._poll_s = poll_s
        self._clock = clock
        self._wake = asyncio.Event()
        self._listening = False  # the database's notifications come
        self._listen_epoch = 0   # times they started coming
        self._checked_epoch = -1  # the epoch at the start of the last whole check
        self._changes = 0  # changes notified
        self._checked_changes = 0  # changes notified before the last whole check began
        self._looked_at = -float("inf")  # when the last look that ended well began

    @property
    def notified(self) -> bool:
        """Whether every change to who may stay in a call reaches this hub as a
        notification, and the watcher has looked at the calls since they began to and
        since the last one came: then a member not closed may still be there, without
        asking the database."""
        return (self._listening and self._checked_epoch == self._listen_epoch
                and self._checked_changes == self._changes)

    @property
    def current(self) -> bool:
        """Whether what the watcher last read stands for the database: it is notified
        (``notified``), or its last whole look began at most ``TRUSTED_LOOK_S`` ago and
        no change notified since is waiting for the next."""
        if self.notified:
            return True
        return (self._checked_changes == self._changes
                and asyncio.get_running_loop().time() - self._looked_at <= TRUSTED_LOOK_S)

    def changed(self, table: str, row: int) -> None:
        """The database notified a change (a user, job, link, API key or call): look at
        the calls now."""
        self._changes += 1
        self._wake.set()

    def notifications(self, up: bool) -> None:
        """The database's notifications started coming (again: look at the calls now,
        for what changed while they did not), or stopped."""
        self._listening = up
        if up:
            self._listen_epoch += 1
        self._wake.set()  # up: look now; down: poll often from now on

    def wake(self) -> None:
        """Look again now (someone went away: the next look is by their window's end)."""
        self._wake.set()

    async def run(self, watched: Watched) -> None:
        """Look every ``poll_s`` (while the database's notifications do not come, at
        least every ``UNHEARD_POLL_S``), at once when it notifies a change, by the end
        of the first window of someone away and at least every ``AWAY_CHECK_S`` while
        anyone is away; and every ``UNCLAIMED_CHECK_S`` for calls nobody joined. A look
        that fails is logged and tried again at the next round."""
        loop = asyncio.get_running_loop()
        unclaimed_at = loop.time()
        self._wake.set()  # the first look at once: until it ends, messages read
        while True:
            unclaimed_in = unclaimed_at + UNCLAIMED_CHECK_S - loop.time()
            poll_s = self._poll_s if self._listening else min(self._poll_s, UNHEARD_POLL_S)
            away_end = watched.next_away_end()
            if away_end is not None:
                poll_s = min(poll_s, AWAY_CHECK_S, away_end - self._clock())
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(0.0, min(poll_s, unclaimed_in))):
                    await self._wake.wait()
            self._wake.clear()  # a change notified from here on wakes the next round
            epoch, changes = self._listen_epoch, self._changes
            began = loop.time()
            try:
                await watched.look()
                self._checked_epoch, self._checked_changes = epoch, changes
                self._looked_at = began
                if loop.time() - unclaimed_at >= UNCLAIMED_CHECK_S:
                    unclaimed_at = loop.time()
                    await watched.end_unclaimed()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("revocation check failed; retrying")
