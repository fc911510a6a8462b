"""A seeded, structure-aware mutator of JSON messages, for the fuzz tests.

It starts from a valid message (an example of docs/api.md or docs/protocol.md) and
changes one to three things in it: a value's type, size or text (unicode, controls,
lone surrogates), numbers no float holds, NaN, nesting, fields missing or added, lists
of hundreds; now and then the text itself (not JSON, truncated, nested past any
parser, a duplicated key, oversized). ``fuzz_seed`` gives each run a random seed, or
the one in ``VIDEOASSIST_FUZZ_SEED`` to replay a failure: every fuzz test names it in
its failures. ``Budget`` bounds a run in cases and in time.
"""

from __future__ import annotations

import copy
import json
import os
import random
import time
from dataclasses import dataclass, field
from typing import Any

SEED_VARIABLE = "VIDEOASSIST_FUZZ_SEED"
SCALE_VARIABLE = "VIDEOASSIST_FUZZ_SCALE"

HUGE_INT = 10**400  # a JSON integer no float holds
STRINGS: tuple[str, ...] = (
    "", " ", "\t\n", "x", "x" * 64, "x" * 65, "x" * 257, "x" * 2001, "x" * 4097,
    "é", "Zoë", "😀" * 40, "\u202eevil", "\x00", "a\x00b", "\ud800", "\udfff\ud800",
    "²", "٣", "\uff11", "\u0301", "null", "true", "NaN", "1e999", "-1", "0x10", "1_000",
    "../../etc/passwd", "<script>alert(1)</script>", "' OR 1=1 --", "%00", "\\", "\r\n",
    "2026-02-30", "9999-12-31", "0000-00-00", "2026-11-01T00:00:00Z", "vak_" + "A" * 40,
    "admin", "customer", "technician", "expert", "#ff0000", "#FFF", "s1", "open", "csv",
)
NUMBERS: tuple[Any, ...] = (
    0, 1, -1, 2, 2**31, 2**53, 2**53 + 1, 2**63, 2**64, -(2**63), HUGE_INT, -HUGE_INT,
    0.5, -0.0, 1e-9, 1e308, 5e-324, 1.7976931348623157e308, float("nan"), float("inf"),
    float("-inf"),
)
OTHERS: tuple[Any, ...] = (None, True, False, [], {}, [None], {"": None}, [[]], [{}])
KEYS: tuple[str, ...] = (
    "", "type", "id", "__proto__", "constructor", "x" * 300, "é", "\x00", "token", "role",
    "target", "shapes", "points", "text",
)
# Path parameters: never a small id, which could name one of the fuzz's own callers.
PATH_VALUES: tuple[str, ...] = (
    "0", "00", "-1", "1.0", "1e3", "0x1", "99999999", "9" * 15, "9" * 16, "9" * 40,
    "9" * 400, "²", "٣", "\uff11", "abc", "%20", "%00", "%F0%9F%98%80", "null", "x" * 300,
)


def fuzz_seed() -> int:
    """The run's seed: ``VIDEOASSIST_FUZZ_SEED`` (``FUZZ_SEED``, its older name), or a
    random one. Printed, so that it shows with a failure's captured output."""
    raw = os.environ.get(SEED_VARIABLE) or os.environ.get("FUZZ_SEED")
    seed = int(raw) if raw else random.randrange(2**32)
    print(f"{SEED_VARIABLE}={seed}")
    return seed


@dataclass
class Budget:
    """At most ``cases``, and no more than ``seconds`` of them; both times
    ``VIDEOASSIST_FUZZ_SCALE`` (1 unless set), for a longer hunt by hand."""

    cases: int
    seconds: float
    done: int = 0
    started: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        scale = float(os.environ.get(SCALE_VARIABLE) or 1)
        self.cases, self.seconds = int(self.cases * scale), self.seconds * scale

    def more(self) -> bool:
        if self.done >= self.cases or time.monotonic() - self.started >= self.seconds:
            return False
        self.done += 1
        return True


class Mutator:
    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def interesting(self) -> Any:
        rng = self.rng
        pick = rng.random()
        if pick < 0.45:
            return rng.choice(STRINGS)
        if pick < 0.8:
            return rng.choice(NUMBERS)
        if pick < 0.9:
            return copy.deepcopy(rng.choice(OTHERS))
        return self.nested(rng.choice((2, 20, 200)))

    def nested(self, depth: int) -> Any:
        value: Any = self.rng.choice((0.5, "x", None, HUGE_INT))
        for _ in range(depth):
            value = [value] if self.rng.random() < 0.5 else {"a": value}
        return value

    def value(self, base: Any) -> Any:
        """A deep copy of ``base`` with one to three changes."""
        value = copy.deepcopy(base)
        for _ in range(self.rng.randint(1, 3)):
            value = self._change(value)
        return value

    def _change(self, root: Any) -> Any:
        """One change somewhere in the tree (the root itself, rarely)."""
        rng = self.rng
        nodes = list(_nodes(root, ()))
        if len(nodes) > 1 and rng.random() < 0.95:
            nodes = nodes[1:]
        path = rng.choice(nodes)
        node = _get(root, path)
        op = rng.randrange(9)
        new: Any
        if op == 0:
            new = self.interesting()
        elif op == 1:  # the same kind of thing, at an edge
            new = self._variant(node)
        elif op == 2 and isinstance(node, dict) and node:  # a field missing
            node = dict(node)
            del node[rng.choice(list(node))]
            new = node
        elif op == 3 and isinstance(node, dict):  # a field added
            node = dict(node)
            node[rng.choice(KEYS + tuple(node))] = self.interesting()
            new = node
        elif op == 4 and isinstance(node, list) and node:  # a list of hundreds
            new = node * rng.choice((2, 50, 300))
        elif op == 5 and isinstance(node, list) and node:
            new = node[: rng.randrange(len(node))]
        elif op == 6:  # wrapped
            new = [node] if rng.random() < 0.5 else {"value": node}
        elif op == 7:  # another type of the same text
            new = _retyped(node)
        else:
            new = self.interesting()
        return _set(root, path, new)

    def _variant(self, node: Any) -> Any:
        rng = self.rng
        if isinstance(node, bool):
            return not node
        if isinstance(node, int):
            return rng.choice((node + 1, node - 1, -node, node * 2**40, HUGE_INT, 0))
        if isinstance(node, float):
            return rng.choice((node * 1e300, -node, node + 1e-12, float("nan"), 1.0000001))
        if isinstance(node, str):
            return rng.choice((node * rng.choice((2, 40, 500)), node.upper(), node[:-1],
                               node + rng.choice(STRINGS), " " + node + " ",
                               rng.choice(STRINGS) + node))
        return self.interesting()

    def text(self, base: dict[str, Any], *, raw: float = 0.1) -> str:
        """The message mutated, as JSON text; with probability ``raw``, text mutated as
        text instead."""
        rng = self.rng
        if rng.random() < raw:
            return self.raw_text(base)
        return dumps(self.value(base), rng)

    def raw_text(self, base: dict[str, Any]) -> str:
        rng = self.rng
        text = dumps(base, rng)
        op = rng.randrange(8)
        if op == 0:
            return text[: rng.randrange(len(text))]
        if op == 1:
            return "[" * 30_000 + "]" * 30_000
        if op == 2:
            return '{"a":' * 6_000 + "1" + "}" * 6_000
        if op == 3 and len(text) > 2:  # a key twice: the last one wins in Python
            first = next(iter(base), "x")
            return text[:-1] + f', {json.dumps(first)}: {dumps(self.interesting(), rng)}}}'
        if op == 4:
            return rng.choice(("", "null", "[]", '"x"', "1", "{", "}", "{}", "\x00", "NaN",
                               "[" + text + "]"))
        if op == 5:  # oversized, still JSON
            return text[:-1] + ', "pad": "' + "x" * rng.choice((70_000, 1_100_000)) + '"}'
        if op == 6:
            return text.replace('"', "'")
        return text + rng.choice((" ", "x", "{}", "\n" * 3))


def dumps(value: Any, rng: random.Random) -> str:
    """JSON as a client might write it: ASCII escapes or UTF-8, NaN and Infinity kept
    (Python's parser takes them). A lone surrogate is always escaped."""
    if rng.random() < 0.5:
        return json.dumps(value)
    text = json.dumps(value, ensure_ascii=False)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(value)
    return text


def _nodes(value: Any, path: tuple[Any, ...]) -> Any:
    yield path
    if isinstance(value, dict):
        for key, child in value.items():
            yield from _nodes(child, (*path, key))
    elif isinstance(value, list):
        for i, child in enumerate(value[:20]):  # a list of hundreds: its first ones
            yield from _nodes(child, (*path, i))


def _get(root: Any, path: tuple[Any, ...]) -> Any:
    for step in path:
        root = root[step]
    return root


def _set(root: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    parent = _get(root, path[:-1])
    parent[path[-1]] = new
    return root


def _retyped(node: Any) -> Any:
    if isinstance(node, str):
        try:
            return json.loads(node)
        except ValueError:
            return [node]
    if isinstance(node, (int, float)) and not isinstance(node, bool):
        return str(node)
    return json.dumps(node)
