"""The faces snapshot labels are drawn in: found and checked at start-up, loaded once.

A label may mix scripts. Each character is drawn in the first face of the list that
has it, as a browser falls back along a CSS ``font-family`` list, so the list goes from
the main face (Latin, Greek, Cyrillic) to the faces of other scripts. The default list
is Debian's Noto fonts, Bold in every script; ``web/static/js/shapes.js`` names the
same families in the same order. Which characters a face has is read from its
character map (fontTools), not guessed from what it draws.

Complex scripts need shaping (Arabic joining, Devanagari conjuncts) and right-to-left
text needs reordering: Pillow does both through its Raqm layout, which needs FriBiDi
(Debian's ``libfribidi0``) at run time. Without it Pillow would silently draw letters
unjoined and in the wrong order, so the server refuses to start instead.

Pillow's FreeType calls hold the GIL, so worker threads may share the loaded fonts.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from fontTools.ttLib import TTFont, TTLibError
from PIL import ImageFont, features

from videoassist.errors import ConfigError, Unavailable
from videoassist.snapshots.bidi import Bidi

logger = logging.getLogger(__name__)

# Debian 12's fonts-noto-core and fonts-noto-cjk (docs/deploy.md). "#2" picks the third
# face of the collection, Noto Sans CJK SC (Simplified Chinese forms).
DEBIAN_FACES = (
    "/usr/share/fonts/truetype/noto/NotoSans-Bold.ttf",
    "/usr/share/fonts/truetype/noto/NotoSansArabic-Bold.ttf",
    "/usr/share/fonts/truetype/noto/NotoSansHebrew-Bold.ttf",
    "/usr/share/fonts/truetype/noto/NotoSansDevanagari-Bold.ttf",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Bold.ttc#2",
)
DEBIAN_PACKAGES = "fonts-noto-core fonts-noto-cjk libfribidi0"
SIZES_KEPT = 16  # loaded sizes kept per face; a label's size follows the picture's


@dataclass(frozen=True)
class Face:
    """One face of a font file: ``PATH`` or ``PATH#INDEX`` for a collection (.ttc)."""

    path: Path
    index: int = 0

    @classmethod
    def parse(cls, spec: str) -> Face:
        path, _, index = spec.partition("#")
        if index and not index.isdigit():
            raise ConfigError(f"VIDEOASSIST_LABEL_FONTS: {spec!r}: the face index after "
                              "'#' must be a number")
        return cls(Path(path), int(index or 0))

    def __str__(self) -> str:
        return f"{self.path}#{self.index}" if self.index else str(self.path)


class LabelFonts:
    """The faces of the label font list, each loaded once per size it is used at."""

    def __init__(self, faces: Sequence[Face], bidi: Bidi) -> None:
        self.faces = tuple(faces)
        self.bidi = bidi
        self._lock = threading.Lock()
        self._cmaps: dict[int, frozenset[int]] = {}
        self._sizes: list[OrderedDict[float, ImageFont.FreeTypeFont]] = [
            OrderedDict() for _ in self.faces]
        # How much of the em a capital letter takes in the main face: a label is sized
        # by its capitals' height, as the browser sizes it (measuring "H").
        top = self.font(0, 1000.0).getbbox("H", anchor="ls")[1]
        self.capital_share = -top / 1000.0

    @classmethod
    def open(cls, specs: Sequence[str]) -> LabelFonts:
        """The faces named by ``specs`` (Debian's Noto fonts if empty), checked: each
        opens, and Pillow can shape text. A ConfigError says what to install."""
        faces = [Face.parse(s) for s in specs or DEBIAN_FACES]
        if not features.check("raqm"):
            raise ConfigError(
                "Pillow cannot shape text (its Raqm layout needs FriBiDi): labels in "
                "Arabic, Hebrew or Devanagari would be drawn wrong (Debian: apt-get install "
                "libfribidi0)")
        for face in faces:
            try:
                ImageFont.truetype(str(face.path), 10, index=face.index)
                with TTFont(face.path, fontNumber=face.index, lazy=True) as font:
                    if "cmap" not in font:
                        raise TTLibError("it has no character map")
            except (OSError, TTLibError) as exc:
                hint = (f" (Debian: apt-get install {DEBIAN_PACKAGES})" if not specs else "")
                raise ConfigError(f"label font {face} cannot be used ({exc}); set "
                                  f"VIDEOASSIST_LABEL_FONTS to fonts you have{hint}") from None
        fonts = cls(faces, Bidi.load())
        logger.info("labels are drawn in %s", ", ".join(str(f) for f in faces))
        return fonts

    def em(self, letters: float) -> float:
        """The font size, in pixels, whose capital letters are ``letters`` high."""
        return letters / self.capital_share

    def font(self, face: int, size: float) -> ImageFont.FreeTypeFont:
        """Face number ``face`` at ``size`` pixels to the em, loaded once."""
        with self._lock:
            loaded = self._sizes[face]
            font = loaded.get(size)
            if font is None:
                spec = self.faces[face]
                font = ImageFont.truetype(str(spec.path), size, index=spec.index,
                                          layout_engine=ImageFont.Layout.RAQM)
                loaded[size] = font
                if len(loaded) > SIZES_KEPT:
                    loaded.popitem(last=False)
            else:
                loaded.move_to_end(size)
            return font

    def covers(self, face: int, char: str) -> bool:
        """Whether face number ``face`` has a glyph for ``char``."""
        return ord(char) in self._cmap(face)

    def first_covering(self, chars: str) -> int | None:
        """The first face that has every one of ``chars``, or None."""
        for face in range(len(self.faces)):
            if all(self.covers(face, c) for c in chars):
                return face
        return None

    def _cmap(self, face: int) -> frozenset[int]:
        cmap = self._cmaps.get(face)
        if cmap is None:
            # Read on first use: the CJK face's map takes a third of a second.
            spec = self.faces[face]
            try:
                with TTFont(spec.path, fontNumber=spec.index, lazy=True) as font:
                    cmap = frozenset(font.getBestCmap() or ())
            except (OSError, TTLibError) as exc:  # it had one at start-up
                logger.error("label font %s: the character map cannot be read: %s", spec, exc)
                raise Unavailable("A label font cannot be read; tell an admin.") from None
            with self._lock:
                self._cmaps[face] = cmap
        return cmap
