"""The Unicode bidirectional algorithm for labels, from GNU FriBiDi.

A label is one left-to-right line (as the browser's canvas lays it out): right-to-left
words in it read right to left, numbers in them left to right. FriBiDi resolves each
character's embedding level; a label drawn in several faces is then reordered run by
run (rule L2). It is the library Pillow's Raqm layout already needs (Debian's
``libfribidi0``), called here through ctypes because Pillow does not expose it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from collections.abc import Sequence
from typing import TypeVar

from videoassist.errors import ConfigError

T = TypeVar("T")

_PAR_LTR = 0x110  # FRIBIDI_PAR_LTR, the type of a strong left-to-right letter


class Bidi:
    """FriBiDi, loaded once."""

    def __init__(self, lib: ctypes.CDLL) -> None:
        self._lib = lib
        lib.fribidi_get_bidi_type.restype = ctypes.c_uint32
        lib.fribidi_get_bidi_type.argtypes = [ctypes.c_uint32]
        lib.fribidi_get_par_embedding_levels_ex.restype = ctypes.c_int8
        if lib.fribidi_get_bidi_type(ord("A")) != _PAR_LTR:
            raise ConfigError("libfribidi is not the FriBiDi 1.x this server knows")

    @classmethod
    def load(cls) -> Bidi:
        for name in ("libfribidi.so.0", ctypes.util.find_library("fribidi")):
            if name:
                try:
                    return cls(ctypes.CDLL(name))
                except OSError:
                    continue
        raise ConfigError("GNU FriBiDi is not installed (Debian: apt-get install libfribidi0)")

    def levels(self, text: str) -> list[int]:
        """Each character's resolved embedding level in a left-to-right line: even is
        left to right, odd right to left."""
        n = len(text)
        if n == 0:
            return []
        chars = (ctypes.c_uint32 * n)(*map(ord, text))
        types = (ctypes.c_uint32 * n)()
        brackets = (ctypes.c_uint32 * n)()
        levels = (ctypes.c_int8 * n)()
        self._lib.fribidi_get_bidi_types(chars, n, types)
        self._lib.fribidi_get_bracket_types(chars, n, types, brackets)
        base = ctypes.c_uint32(_PAR_LTR)
        if not self._lib.fribidi_get_par_embedding_levels_ex(
                types, brackets, n, ctypes.byref(base), levels):
            raise MemoryError("fribidi could not resolve the label's levels")
        return list(levels)


def visual_order(runs: Sequence[T], levels: Sequence[int]) -> list[T]:
    """``runs`` (each at one level, in logical order) in the order they are seen left to
    right: from the highest level down to the lowest odd one, every stretch of runs at
    that level or above is reversed (Unicode bidi rule L2)."""
    order = list(range(len(runs)))
    top = max(levels, default=0)
    lowest_odd = min((lv for lv in levels if lv % 2), default=top + 1)
    for level in range(top, lowest_odd - 1, -1):
        i = 0
        while i < len(order):
            if levels[order[i]] >= level:
                j = i
                while j < len(order) and levels[order[j]] >= level:
                    j += 1
                order[i:j] = reversed(order[i:j])
                i = j
            else:
                i += 1
    return [runs[i] for i in order]
