"""Periodic duties: work done now and then for the whole installation, by one node at a
time (the retention purge, forgetting finished webhook deliveries and expired sign-in
failures).

Two nodes doing it at once would do it twice (two retention audit entries for one
purge) or trip over each other. Which node does it:

- **PostgreSQL** (a fleet, on one machine or many): the node holding the session
  advisory lock ``duties`` (``Database.session_lock``), on a connection of its own.
  Every node tries to take it every ``TRY_EVERY_S``; the one that has it runs the
  duties for as long as it keeps that connection. A node that dies, or whose
  connection is lost (the database restarted, the network cut, the session ended by
  an administrator), loses the lock with it: its duties stop (it cancels them as soon
  as it sees the connection gone) and another node takes the lock at its next try.
- **SQLite** (one machine): worker 0 of the supervisor, or the server of one process,
  as before; the supervisor starts a new worker 0 if it dies.

Each duty runs at once when its node takes them on, then every ``every_s``. A duty
that fails is logged and tried again at its next turn.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from videoassist.storage import Store

logger = logging.getLogger(__name__)

LOCK = "duties"
TRY_EVERY_S = 3.0  # how often a node without the duties tries to take them
ERROR_PAUSE_S = 5.0  # after the database refused even a try


@dataclass(frozen=True)
class Duty:
    name: str
    every_s: float
    run: Callable[[float], Awaitable[object]]  # given the time now


class Duties:
    """The periodic duties, run by this node when it is the one to run them."""

    def __init__(self, store: Store, duties: list[Duty], clock: Callable[[], float],
                 worker: int | None, try_every_s: float = TRY_EVERY_S) -> None:
        self._store = store
        self._duties = duties
        self._clock = clock
        self._worker = worker
        self._try_every_s = try_every_s

    async def run(self, node_id: int) -> None:
        """Run the duties whenever this node is the one to, until cancelled."""
        if not self._store.db.session_locks:
            if self._worker in (None, 0):
                await self._run_all()
            return
        holder = f"videoassist node {node_id} duties"
        while True:
            try:
                async with self._store.db.session_lock(LOCK, holder) as lock:
                    if lock is not None:
                        logger.info("node %d runs the periodic duties", node_id)
                        await _until_first(self._run_all(), lock.lost())
                        logger.warning("node %d lost the periodic duties' lock (its "
                                       "database connection): stopped them", node_id)
                        continue  # try again at once: it may be this node's again
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("node %d: could not try to take the periodic duties",
                                 node_id)
                await asyncio.sleep(ERROR_PAUSE_S)
                continue
            await asyncio.sleep(self._try_every_s)

    async def _run_all(self) -> None:
        await asyncio.gather(*(self._repeat(duty) for duty in self._duties))

    async def _repeat(self, duty: Duty) -> None:
        while True:
            try:
                await duty.run(self._clock())
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("%s failed; trying again in %g s", duty.name, duty.every_s)
            await asyncio.sleep(duty.every_s)


async def _until_first(*waits: Awaitable[None]) -> None:
    """Wait until one of ``waits`` returns (or raises), then cancel the others."""
    tasks = [asyncio.ensure_future(w) for w in waits]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    for task in done:
        task.result()
