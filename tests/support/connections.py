"""Every SQLite connection the code under test opens, watched from inside SQLite: the
statements each runs, and a gate that holds the first long statement where it is.

A long statement is one that runs past ``LONG_STEPS`` of SQLite's virtual machine
instructions (its progress handler); a ping, a sign-in's lookups or an audit append stay
far below, a query over tens of thousands of rows goes far past. Held, that statement is
in flight for as long as the test wants: whatever else the server answers meanwhile did
not wait for it.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

LONG_STEPS = 200_000
HOLD_LIMIT_S = 60.0  # a test that fails before releasing the gate does not hang forever


class Watch:
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.statements: list[str] = []
        self.held = asyncio.Event()  # set (on the loop) once a long statement is held
        self._loop = loop
        self._armed = False
        self._release = threading.Event()

    def hold_next_long_statement(self) -> None:
        self._armed = True

    def release(self) -> None:
        self._release.set()

    def _progress(self) -> int:
        if self._armed:
            self._armed = False
            self._loop.call_soon_threadsafe(self.held.set)
            self._release.wait(HOLD_LIMIT_S)
        return 0  # go on


@contextmanager
def watched(monkeypatch: pytest.MonkeyPatch) -> Iterator[Watch]:
    """Watch every SQLite connection opened inside the block (aiosqlite's included)."""
    watch = Watch(asyncio.get_running_loop())
    connect: Callable[..., sqlite3.Connection] = sqlite3.connect

    def watching_connect(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        conn = connect(*args, **kwargs)
        conn.set_trace_callback(watch.statements.append)
        conn.set_progress_handler(watch._progress, LONG_STEPS)
        return conn

    monkeypatch.setattr(sqlite3, "connect", watching_connect)
    try:
        yield watch
    finally:
        watch.release()
