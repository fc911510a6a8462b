"""What a setting's declaration is made of: its one-line doc and the bounds of a number
(``doc``, ``Bounds``: stated once, checked at start-up, said in the error and held to
docs/configuration.md by tests/test_config.py), a value that never shows (``Secret``),
and the prefix of its environment variable."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

ENV_PREFIX = "VIDEOASSIST_"


class Secret:
    """A string that never shows its value in a repr, a log line or a traceback."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True)
class Bounds:
    """The values a number setting may take, stated once beside it: checked at start-up,
    and said in the error (``words``, else from the numbers)."""

    low: float | None = None  # the least allowed
    high: float | None = None  # the most allowed
    above: float | None = None  # every value above this, not this ("positive": 0)
    words: str | None = None  # how to say it where the numbers alone do not

    def holds(self, value: float) -> bool:
        return ((self.low is None or value >= self.low)
                and (self.high is None or value <= self.high)
                and (self.above is None or value > self.above))

    def say(self) -> str:
        if self.words is not None:
            return self.words
        if self.above == 0 and self.low is None and self.high is None:
            return "positive"
        if self.high is None:
            return f"at least {say_number(self.low)}"
        return f"{say_number(self.low)}..{say_number(self.high)}"


def say_number(value: float | None) -> str:
    return "?" if value is None else str(int(value)) if float(value).is_integer() else str(value)


POSITIVE = Bounds(above=0)


def within(low: float, high: float | None, words: str | None = None) -> Bounds:
    return Bounds(low=low, high=high, words=words)


def doc(text: str, bounds: Bounds | None = None) -> dict[str, Any]:
    return {"doc": text, "bounds": bounds}
