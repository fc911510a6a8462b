"""Audit rows for refusals that anyone can cause without signing in (an unknown or
revoked API key, a sign-in refused with 429), written as counts.

Writing a row per refusal let one client grow the append-only audit log by megabytes a
second. Now, within each window of ``window_s`` seconds, a client's first refusal of a
kind is written at once and the next ones are only counted; when the window has passed,
one more row says how many there were (``repeated``). At most ``max_clients`` clients
get rows of their own in a window; the refusals of any other client in it are counted
together, under the actor ``client:*``. Strings are cut to ``MAX_TEXT`` characters.

So a window costs at most about ``2 * (max_clients + 1)`` rows per kind of refusal, in
each server process, however many requests it refused. The counts live in the memory
of the process that refused; they are written when their window has passed, at the
latest at the next ``flush`` (every window) or when the server stops.
"""

from __future__ import annotations

import asyncio
import logging
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
    window: int  # the window's number: start time // window_s
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
        """Audit a refusal of ``actor`` (``client:ADDRESS``): at once if it is its
        first of this ``action`` and ``reason`` in the window, as a count otherwise."""
        now = self.clock()
        window = int(now // self.window_s)
        await self._flush_before(window)
        key = (actor, action, reason)
        if key not in self._tallies:
            clients = {k[0] for k, t in self._tallies.items() if t.window == window}
            if actor not in clients and len(clients - {OVERFLOW_ACTOR}) >= self.max_clients:
                key = (OVERFLOW_ACTOR, action, reason)
        tally = self._tallies.get(key)
        if tally is not None:
            tally.repeated += 1
            return
        stored = {k: cut(v) if isinstance(v, str) else v for k, v in detail.items()}
        if reason:
            stored["reason"] = reason
        target = None if key[0] == OVERFLOW_ACTOR or target is None else cut(target)
        if key[0] == OVERFLOW_ACTOR:
            stored = {"reason": reason} if reason else {}
        self._tallies[key] = _Tally(window, target, stored)
        await self.audit.record(cut(key[0]), action, target, **stored)

    async def flush(self, everything: bool = False) -> None:
        """Write the counts of the windows that have passed (``everything``: of all)."""
        window = int(self.clock() // self.window_s)
        await self._flush_before(window + 1 if everything else window)

    async def _flush_before(self, window: int) -> None:
        done = [k for k, t in self._tallies.items() if t.window < window]
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
