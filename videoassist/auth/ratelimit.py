"""Rate limits kept in memory: failed sign-ins per key, and a token bucket.

Limits are per process; a server that restarts forgets them (documented in
docs/security.md).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable


class FailureLimiter:
    """At most ``limit`` failures per key within ``window_s``; then blocked until the
    oldest failure leaves the window."""

    def __init__(self, limit: int, window_s: float, clock: Callable[[], float],
                 max_keys: int = 100_000) -> None:
        self._limit = limit
        self._window = window_s
        self._clock = clock
        self._max_keys = max_keys
        self._failures: dict[str, deque[float]] = {}

    def retry_after(self, key: str) -> float | None:
        """Seconds until ``key`` may try again, or None if it may now."""
        times = self._prune(key)
        if times is None or len(times) < self._limit:
            return None
        return max(0.0, times[0] + self._window - self._clock())

    def fail(self, key: str) -> None:
        times = self._prune(key)
        if times is None:
            if len(self._failures) >= self._max_keys:
                self._sweep()
            times = self._failures[key] = deque()
        times.append(self._clock())

    def succeed(self, key: str) -> None:
        self._failures.pop(key, None)

    def _prune(self, key: str) -> deque[float] | None:
        times = self._failures.get(key)
        if times is None:
            return None
        horizon = self._clock() - self._window
        while times and times[0] <= horizon:
            times.popleft()
        if not times:
            del self._failures[key]
            return None
        return times

    def _sweep(self) -> None:
        for key in list(self._failures):
            self._prune(key)
        while len(self._failures) >= self._max_keys:  # still full: forget the oldest keys
            self._failures.pop(next(iter(self._failures)))


class TokenBucket:
    """``rate`` events per second on average, ``burst`` at once."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float]) -> None:
        self._rate = rate
        self._burst = float(burst)
        self._tokens = float(burst)
        self._clock = clock
        self._stamp = clock()

    def take(self) -> bool:
        now = self._clock()
        self._tokens = min(self._burst, self._tokens + (now - self._stamp) * self._rate)
        self._stamp = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False

    def wait_s(self) -> float:
        return 0.0 if self._tokens >= 1 else math.ceil((1 - self._tokens) / self._rate * 10) / 10
