"""The event loop the server runs on: uvloop's where it is installed, else asyncio's.

Every forwarded packet costs the loop a datagram received and one sent per viewer;
uvloop's loop does that in C (docs/performance.md, "Where a forwarded packet's CPU
goes", measures the difference). ``run`` is what a serving process calls, once per
process: a worker of a supervisor as well as the single-process server.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


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
