"""A token bucket, kept in memory: the rate of one connection's messages, which one
process holds. (Failed sign-ins are counted in the database, by every process
together: ``storage.signins``.)"""

from __future__ import annotations

import math
from collections.abc import Callable


class TokenBucket:
    """``rate`` events (or bytes, ...) per second on average, ``burst`` at once."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float]) -> None:
        self._rate = rate
        self._burst = float(burst)
        self._tokens = float(burst)
        self._clock = clock
        self._stamp = clock()

    def take(self, amount: float = 1.0) -> bool:
        """Take ``amount`` if the bucket holds it; whether it did."""
        now = self._clock()
        self._tokens = min(self._burst, self._tokens + (now - self._stamp) * self._rate)
        self._stamp = now
        if self._tokens >= amount:
            self._tokens -= amount
            return True
        return False

    def full(self) -> bool:
        """Whether the bucket has refilled to its burst (taking from it now is as
        taking from a new one)."""
        return self._tokens + (self._clock() - self._stamp) * self._rate >= self._burst

    def wait_s(self) -> float:
        return 0.0 if self._tokens >= 1 else math.ceil((1 - self._tokens) / self._rate * 10) / 10
