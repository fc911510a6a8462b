"""Laying out a label: which face draws each character, in which order, and where.

The label is cut into clusters (a character and the marks and joiners that go with
it); each cluster is drawn in the first face that has all of it (else the first that
has its first character, else the main face, whose missing-glyph box then shows).
Consecutive clusters of one face and one bidi level make a run, which Raqm shapes as
a whole (joining, conjuncts, kerning) in its direction; runs are placed left to right
in visual order. This is how a browser falls back along a font list too.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

from PIL import ImageFont

from videoassist.snapshots.bidi import visual_order
from videoassist.snapshots.fonts import LabelFonts

# Characters that belong to the cluster before them: combining marks, joiners and
# variation selectors (one face must draw them with their base).
_JOINERS = {"\u200c", "\u200d", "\u034f"}


@dataclass(frozen=True)
class Run:
    """Characters drawn in one face, one direction."""

    text: str
    font: ImageFont.FreeTypeFont
    rtl: bool
    x: float  # its left edge, from the label's, in pixels
    advance: float
    starts: tuple[int, ...]  # where each of its clusters starts in ``text``

    @property
    def direction(self) -> str:
        return "rtl" if self.rtl else "ltr"

    def left_of(self, limit: float) -> str:
        """The run's clusters that start left of ``limit`` pixels from its left edge
        (kept whole: the run's left part, whichever its direction), so that a label
        running off the picture costs only what shows. Only the cut cluster may take
        another form (a final instead of a medial letter); ``limit`` leaves room."""
        if self.advance <= limit:
            return self.text
        n = len(self.starts)
        ends = (*self.starts[1:], len(self.text))
        if not self.rtl:
            # Cluster k starts where the clusters before it end: find the first past limit.
            lo, hi = 1, n
            while lo < hi:
                mid = (lo + hi) // 2
                if self._length(self.text[:self.starts[mid]]) >= limit:
                    hi = mid
                else:
                    lo = mid + 1
            return self.text[:self.starts[lo]] if lo < n else self.text
        # Right to left: cluster k's left edge is where the clusters after it end.
        lo, hi = 0, n - 1
        while lo < hi:
            mid = (lo + hi) // 2
            if self._length(self.text[ends[mid]:]) < limit:
                hi = mid
            else:
                lo = mid + 1
        return self.text[self.starts[lo]:]

    def _length(self, text: str) -> float:
        return float(self.font.getlength(text, direction=self.direction))


@dataclass(frozen=True)
class Layout:
    runs: list[Run]  # in visual order, left to right
    advance: float  # the label's width, in pixels
    ascent: int  # how far the faces used reach above the baseline, in pixels
    descent: int  # and below it


def lay_out(fonts: LabelFonts, text: str, size: float) -> Layout:
    """``text`` at ``size`` pixels to the em, in visual order, on one line."""
    # As a canvas does (HTML's text preparation), tabs and line breaks are spaces; so is
    # any other paragraph or segment separator (Raqm's layout fails on one).
    text = "".join(" " if c == "\f" or unicodedata.bidirectional(c) in ("B", "S") else c
                   for c in text)
    levels = fonts.bidi.levels(text)
    pieces: list[tuple[int, int, list[int]]] = []  # (face, level, cluster starts)
    for start, end in clusters(text):
        face = fonts.first_covering(text[start:end])
        if face is None:
            face = fonts.first_covering(text[start]) or 0
        if pieces and pieces[-1][:2] == (face, levels[start]):
            pieces[-1][2].append(start)
        else:
            pieces.append((face, levels[start], [start]))
    logical: list[tuple[int, int, str, tuple[int, ...]]] = []
    for i, (face, level, starts) in enumerate(pieces):
        end = pieces[i + 1][2][0] if i + 1 < len(pieces) else len(text)
        logical.append((face, level, text[starts[0]:end],
                        tuple(s - starts[0] for s in starts)))
    runs: list[Run] = []
    x = 0.0
    ascent = descent = 0
    for face, level, chunk, offsets in visual_order(logical, [p[1] for p in logical]):
        font = fonts.font(face, size)
        rtl = level % 2 == 1
        advance = float(font.getlength(chunk, direction="rtl" if rtl else "ltr"))
        runs.append(Run(chunk, font, rtl, x, advance, offsets))
        x += advance
        up, down = font.getmetrics()
        ascent, descent = max(ascent, up), max(descent, down)
    return Layout(runs, x, ascent, descent)


def clusters(text: str) -> list[tuple[int, int]]:
    """(start, end) of each cluster: a character with the marks and joiners after it."""
    bounds: list[tuple[int, int]] = []
    for i, char in enumerate(text):
        if bounds and _continues(char):
            bounds[-1] = (bounds[-1][0], i + 1)
        else:
            bounds.append((i, i + 1))
    return bounds


def _continues(char: str) -> bool:
    code = ord(char)
    return (unicodedata.category(char) in ("Mn", "Mc", "Me") or char in _JOINERS
            or 0xFE00 <= code <= 0xFE0F or 0xE0100 <= code <= 0xE01EF)
