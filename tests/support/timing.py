"""How late the test's own event loop runs what it is given: on a busy machine a task
that sleeps 20 ms wakes later, and so does everything else on the loop, an in-process
server's watchers and writers included. A test whose bound is "within a second" of
work done on its loop adds what this measured beside it, instead of failing on a
machine whose two cores other processes hold."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

TICK_S = 0.02


class LoopLag:
    """The worst lateness of a 20 ms sleep on this loop while the block ran (seconds)."""

    def __init__(self) -> None:
        self.worst = 0.0

    async def _watch(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            asked = loop.time()
            await asyncio.sleep(TICK_S)
            self.worst = max(self.worst, loop.time() - asked - TICK_S)


@contextlib.asynccontextmanager
async def loop_lag() -> AsyncIterator[LoopLag]:
    lag = LoopLag()
    watcher = asyncio.create_task(lag._watch())
    try:
        yield lag
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
