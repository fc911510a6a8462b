"""The event loop the server runs on: uvloop's where it is installed, else asyncio's.

Every forwarded packet costs the loop a datagram received and one sent per viewer;
uvloop's loop does that in C (docs/performance.md, "Where a forwarded packet's CPU
goes", measures the difference). ``run`` is what a serving process calls, once per
process: a worker of a supervisor as well as the single-process server. ``watch_lag``
says when the loop could not run for a while, and why, as far as the process can tell.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

logger = logging.getLogger(__name__)


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop]:
    """uvloop's ``new_event_loop`` when uvloop is installed (it is pinned on Linux and
    macOS, see pyproject.toml), else asyncio's."""
    try:
        import uvloop
    except ImportError:  # Windows: uvloop does not build there
        return asyncio.new_event_loop
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def new_event_loop() -> asyncio.AbstractEventLoop:
    return loop_factory()()


def name(loop: asyncio.AbstractEventLoop) -> str:
    """``uvloop`` or ``asyncio``: for the start-up line."""
    return "uvloop" if type(loop).__module__.startswith("uvloop") else "asyncio"


def run(coro: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run`` on ``new_event_loop()``'s loop."""
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        return runner.run(coro)


# The lag watch's tick, and the lateness from which it says so in the log.
LAG_TICK_S = 0.25
LAG_WARN_S = 1.0


async def watch_lag(observe: Callable[[float], None] | None = None, *,
                    tick_s: float = LAG_TICK_S, warn_s: float = LAG_WARN_S) -> None:
    """Sleep ``tick_s`` again and again, and measure how late each wake-up is: the
    time the loop could not run anything. ``observe`` gets each lateness (a metric);
    from ``warn_s`` on, a WARNING says how late, and how much the loop's thread ran
    since the tick began: about all that time, and its own work held the loop (a long
    callback);
    little, and the thread was waiting (a blocking call) or not given a core (the
    machine short of CPU). Runs until cancelled."""
    loop = asyncio.get_running_loop()
    while True:
        started, ran = loop.time(), time.thread_time()
        await asyncio.sleep(tick_s)
        late = max(0.0, loop.time() - started - tick_s)
        if observe is not None:
            observe(late)
        if late >= warn_s:
            used = time.thread_time() - ran
            logger.warning(
                "the event loop was %.1f s late; its thread ran %.1f s meanwhile (%s)",
                late, used, "its own work held it" if used >= late / 2
                else "it waited, or the machine gave it no core")
