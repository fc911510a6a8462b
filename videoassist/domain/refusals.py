"""Audit rows for refusals that anyone can cause without signing in (an unknown or
revoked API key, a sign-in refused with 429), written as counts.

Writing a row per refusal let one client grow the append-only audit log by megabytes a
second. Now a client's first refusal of a kind is written at once and opens a window of
``window_s`` seconds in which the next ones are only counted; when the window has
passed, one more row says how many there were (``repeated``). At most ``max_clients``
clients have windows open at once; the refusals of any other client meanwhile are
counted together, under the actor ``client:*``. Strings are cut to ``MAX_TEXT``
characters.

So a window costs at most about ``2 * (max_clients + 1)`` rows per kind of refusal, in
each server process, however many requests it refused. The counts live in the memory
of the process that refused; they are written when their window has passed, at the
latest at the next ``flush`` (every window) or when the server stops.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from videoassist.storage.audit import Audit

logger = logging.getLogger(__name__)

MAX_TEXT = 256  # characters kept of any string a refusal row stores
OVERFLOW_ACTOR = "client:*"


def cut(text: str) -> str:
    """``text`` cut to ``MAX_TEXT`` characters, marked when it was cut."""
    return text if len(text) <= MAX_TEXT else text[:MAX_TEXT - 1] + "…"


@dataclass
class _Tally:
    started: float  # the first refusal's time: the window runs window_s from it
    target: str | None
    detail: dict[str, Any]
    repeated: int = 0


@dataclass
class Refusals:
    audit: Audit
    clock: Callable[[], float]
    window_s: float
    max_clients: int
    _tallies: dict[tuple[str, str, str], _Tally] = field(default_factory=dict)
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def record(self, actor: str, action: str, target: str | None,
                     reason: str = "", **detail: Any) -> None:
        """Audit a refusal of ``actor`` (``client:ADDRESS``): at once if it opens a
        window for its ``action`` and ``reason``, as a count in the open one otherwise."""
        now = self.clock()
        await self._flush_before(now - self.window_s)
        key = (actor, action, reason)
        if key not in self._tallies:
            clients = {k[0] for k in self._tallies} - {OVERFLOW_ACTOR}
            if actor not in clients and len(clients) >= self.max_clients:
                key = (OVERFLOW_ACTOR, action, reason)
        tally = self._tallies.get(key)
        if tally is not None:
            tally.repeated += 1
            return
        if key[0] == OVERFLOW_ACTOR:
            target, stored = None, {"reason": reason} if reason else {}
        else:
            target = None if target is None else cut(target)
            stored = {k: cut(v) if isinstance(v, str) else v for k, v in detail.items()}
            if reason:
                stored["reason"] = reason
        self._tallies[key] = _Tally(now, target, stored)
        await self.audit.record(cut(key[0]), action, target, **stored)

    async def flush(self, everything: bool = False) -> None:
        """Write the counts of the windows that have passed (``everything``: of all)."""
        await self._flush_before(math.inf if everything else self.clock() - self.window_s)

    async def _flush_before(self, started: float) -> None:
        """Write the counts of the windows opened at or before ``started``."""
        done = [k for k, t in self._tallies.items() if t.started <= started]
        if not done:
            return
        async with self._lock:
            for key in done:
                tally = self._tallies.pop(key, None)
                if tally is not None and tally.repeated:
                    await self.audit.record(key[0], key[1], tally.target, **tally.detail,
                                            repeated=tally.repeated,
                                            window_s=self.window_s)

    async def run(self) -> None:
        """Flush every window, until cancelled."""
        while True:
            await asyncio.sleep(self.window_s)
            try:
                await self.flush()
            except Exception:
                logger.exception("writing the counts of refusals failed")
