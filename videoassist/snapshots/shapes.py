"""Annotation shapes: what the expert draws on live video, checked before anything
uses them (signalling relays them, a snapshot renders them, the record stores them).

Coordinates are normalized: (0, 0) is the top-left corner of the video's picture,
(1, 1) its bottom-right, whatever its size or letterboxing on screen. A stroke
``width`` is a fraction of the picture's width. How each kind is drawn is specified
in docs/protocol.md ("Drawing shapes") and implemented by ``render``.
"""

from __future__ import annotations

import itertools
import math
import re
from typing import Any

from videoassist.errors import BadRequest

MAX_SHAPE_POINTS = 1000
MAX_LABEL_CHARS = 200
MAX_SHAPES = 200  # on one snapshot
# A bound on drawing work: the strokes' length times their width, summed over the
# shapes, in picture widths squared (a stroke across the picture 0.01 wide is 0.01).
# Real annotations use well under 1; a label counts as MAX_INK / MAX_SHAPES at most.
MAX_INK = 20.0
SHAPE_KINDS = ("pen", "arrow", "circle", "text")
SHAPE_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
COLOR = re.compile(r"^#[0-9a-fA-F]{6}$")


def number(value: object) -> float | None:
    """A JSON number as a finite float; None for anything else (a boolean, an integer
    too large for a float, such as 400 digits, NaN or an infinity)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        converted = float(value)
    except OverflowError:
        return None
    return converted if math.isfinite(converted) else None


def unit(value: object, what: str) -> float:
    converted = number(value)
    if converted is None:
        raise BadRequest(f"{what} must be a number between 0 and 1.")
    if not 0.0 <= converted <= 1.0:
        raise BadRequest(f"{what} must be between 0 and 1 (normalized coordinates).")
    return converted


def _point(value: object) -> list[float]:
    if not isinstance(value, list) or len(value) != 2:
        raise BadRequest("A point is [x, y].")
    return [unit(value[0], "x"), unit(value[1], "y")]


def check_shape(shape: object) -> dict[str, Any]:
    """A drawable shape: {id, kind, points, color, width[, text]}."""
    if not isinstance(shape, dict):
        raise BadRequest("'shape' must be an object.")
    shape_id = shape.get("id")
    if not isinstance(shape_id, str) or not SHAPE_ID.match(shape_id):
        raise BadRequest("A shape 'id' is 1 to 64 letters, digits, '_' or '-'.")
    kind = shape.get("kind")
    if kind not in SHAPE_KINDS:
        raise BadRequest(f"A shape 'kind' is one of {', '.join(SHAPE_KINDS)}.")
    points = shape.get("points")
    if not isinstance(points, list) or not 1 <= len(points) <= MAX_SHAPE_POINTS:
        raise BadRequest(f"'points' must hold 1 to {MAX_SHAPE_POINTS} points.")
    needed = {"pen": 1, "arrow": 2, "circle": 2, "text": 1}[kind]
    if len(points) < needed or (kind in ("arrow", "circle") and len(points) != 2):
        article = "An" if kind == "arrow" else "A"
        raise BadRequest(f"{article} {kind} needs "
                         f"{'exactly 2 points' if needed == 2 else 'at least 1 point'}.")
    color = shape.get("color")
    if not isinstance(color, str) or not COLOR.match(color):
        raise BadRequest("'color' must look like #rrggbb.")
    width = number(shape.get("width"))
    if width is None or not 0 < width <= 0.1:
        raise BadRequest("'width' is the stroke width as a fraction of the picture's width, "
                         "above 0 and at most 0.1.")
    checked: dict[str, Any] = {
        "id": shape_id, "kind": kind, "points": [_point(p) for p in points],
        "color": color.lower(), "width": width,
    }
    pinned = shape.get("pinned", False)
    if not isinstance(pinned, bool):
        raise BadRequest("'pinned' must be true or false.")
    if pinned:  # followed on the video (issue 23), from the frame it was drawn on
        checked["pinned"] = True
        at = shape.get("at")
        if at is not None:
            if isinstance(at, bool) or not isinstance(at, int) or not 0 <= at < 2**32:
                raise BadRequest("'at' is the RTP timestamp of the frame drawn on, 0 to "
                                 "2**32 - 1.")
            checked["at"] = at
    if kind == "text":
        text = shape.get("text")
        if not isinstance(text, str) or not text.strip():
            raise BadRequest("A text shape needs a non-empty 'text'.")
        if len(text) > MAX_LABEL_CHARS:
            raise BadRequest(f"'text' must be at most {MAX_LABEL_CHARS} characters.")
        checked["text"] = text
    return checked


def check_shapes(shapes: object) -> list[dict[str, Any]]:
    """A list of shapes, as a snapshot carries them (in drawing order)."""
    if not isinstance(shapes, list):
        raise BadRequest("'shapes' must be a list of shapes.")
    if len(shapes) > MAX_SHAPES:
        raise BadRequest(f"A snapshot carries at most {MAX_SHAPES} shapes.")
    checked = [check_shape(s) for s in shapes]
    ids = [s["id"] for s in checked]
    if len(set(ids)) != len(ids):
        raise BadRequest("Shape ids must be unique.")
    # fsum: 200 labels' MAX_INK / MAX_SHAPES each add up to MAX_INK exactly, not a hair over.
    if math.fsum(ink(s) for s in checked) > MAX_INK:
        raise BadRequest("Too much drawing for one snapshot: draw fewer or thinner strokes.")
    return checked


def ink(shape: dict[str, Any]) -> float:
    """About how much of the picture a checked shape paints (see MAX_INK)."""
    points, width = shape["points"], float(shape["width"])
    if shape["kind"] == "text":
        return MAX_INK / MAX_SHAPES
    if shape["kind"] == "circle":
        (cx, cy), (ex, ey) = points
        return 2 * math.pi * math.hypot(ex - cx, ey - cy) * width
    length = sum(math.hypot(b[0] - a[0], b[1] - a[1]) for a, b in itertools.pairwise(points))
    return (length + 4 * width) * width
