"""Drawing annotation shapes onto a captured picture, as the client draws them on screen.

The geometry is docs/protocol.md's "Drawing shapes"; the browser's canvas code
follows the same rules, so a snapshot shows what the expert saw. Everything here
is CPU work on numpy arrays: callers run it in a worker thread, off the event loop.
OpenCV releases the GIL while it draws and encodes. Labels are drawn in real fonts
(``fonts``, ``labels``: FreeType and HarfBuzz through Pillow), not OpenCV's own face.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
from PIL import Image, ImageDraw

from videoassist.errors import BadRequest, Unavailable
from videoassist.snapshots import labels
from videoassist.snapshots.fonts import LabelFonts

ARROW_HEAD_STROKES = 4.0       # head length, in strokes
ARROW_HEAD_HALF_ANGLE = math.radians(28)
TEXT_HEIGHT_STROKES = 6.0      # height of a capital letter, in strokes
MIN_TEXT_HEIGHT_PX = 10
MAX_TEXT_HEIGHT = 0.25         # of the picture's height
# The labels of one snapshot may cover at most this many times the picture, each label
# counted by its patch (letters, outline and the outline's reach, within the picture).
# A patch the size of a 720p picture took ~90 ms to draw on a busy 2-core machine.
MAX_LABEL_AREA = 2.0
_SHIFT = 4                     # OpenCV sub-pixel bits: coordinates are in 1/16 pixel
_ONE = 1 << _SHIFT


def bgr(color: str) -> tuple[int, int, int]:
    """'#rrggbb' as OpenCV's (b, g, r)."""
    r, g, b = (int(color[i:i + 2], 16) for i in (1, 3, 5))
    return b, g, r


def outline_color(color: str) -> tuple[int, int, int]:
    """Black around light colours, white around dark ones (Rec. 601 luma)."""
    b, g, r = bgr(color)
    return (0, 0, 0) if 0.299 * r + 0.587 * g + 0.114 * b >= 128 else (255, 255, 255)


def stroke_px(shape: dict[str, Any], width: int) -> float:
    return max(1.0, float(shape["width"]) * width)


def draw(image: np.ndarray, shapes: list[dict[str, Any]], fonts: LabelFonts | None
         ) -> np.ndarray:
    """A copy of the BGR ``image`` with the checked ``shapes`` drawn in order, labels in
    ``fonts`` (None: a picture with a label cannot be drawn)."""
    height, width = image.shape[:2]
    plans: dict[int, _TextPlan | None] = {}
    for index, shape in enumerate(shapes):
        if shape["kind"] == "text":
            if fonts is None:
                raise Unavailable("This server cannot draw labels.")
            plans[index] = _plan_text(shape, width, height, fonts)
    # Labels cost by the pixels they cover (a patch each), far more a pixel than a
    # stroke: counted here, where their size on this picture is known.
    area = sum(plan.area for plan in plans.values() if plan is not None)
    if area > MAX_LABEL_AREA * width * height:
        raise BadRequest(f"Too much text for one snapshot: the labels would cover "
                         f"{area / (width * height):.1f} times the picture (at most "
                         f"{MAX_LABEL_AREA:g}); use fewer, shorter or thinner labels.")
    out = np.ascontiguousarray(image).copy()
    for index, shape in enumerate(shapes):
        if shape["kind"] == "text":
            plan = plans[index]
            if plan is not None:
                _text(out, plan)
        else:
            _DRAW[shape["kind"]](out, shape, width, height)
    return out


def encode_jpeg(image: np.ndarray, quality: int) -> bytes:
    ok, buffer = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise Unavailable("The picture could not be encoded.")
    return buffer.tobytes()


def decode_jpeg(data: bytes) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise Unavailable("The stored picture could not be decoded.")
    return image


def _px(point: list[float], width: int, height: int) -> tuple[float, float]:
    return point[0] * width, point[1] * height


def _fixed(x: float, y: float) -> tuple[int, int]:
    return round(x * _ONE), round(y * _ONE)


def _thickness(stroke: float) -> int:
    return max(1, round(stroke))


def _pen(out: np.ndarray, shape: dict[str, Any], width: int, height: int) -> None:
    stroke = stroke_px(shape, width)
    color = bgr(shape["color"])
    points = [_fixed(*_px(p, width, height)) for p in shape["points"]]
    if len(points) == 1:
        cv2.circle(out, points[0], round(stroke / 2 * _ONE), color, -1, cv2.LINE_AA, _SHIFT)
        return
    # OpenCV draws thick lines with round caps: consecutive segments give round joins.
    for start, end in itertools.pairwise(points):
        cv2.line(out, start, end, color, _thickness(stroke), cv2.LINE_AA, _SHIFT)


def _arrow(out: np.ndarray, shape: dict[str, Any], width: int, height: int) -> None:
    stroke = stroke_px(shape, width)
    color = bgr(shape["color"])
    (tx, ty), (hx, hy) = (_px(p, width, height) for p in shape["points"])
    length = math.hypot(hx - tx, hy - ty)
    head = min(ARROW_HEAD_STROKES * stroke, length)
    if length == 0:
        cv2.circle(out, _fixed(hx, hy), round(stroke / 2 * _ONE), color, -1, cv2.LINE_AA,
                   _SHIFT)
        return
    ux, uy = (hx - tx) / length, (hy - ty) / length
    # The shaft stops inside the head, so the tip stays sharp under a thick stroke.
    bx, by = hx - ux * head, hy - uy * head
    if length > head:
        cv2.line(out, _fixed(tx, ty), _fixed(bx + ux * head / 2, by + uy * head / 2), color,
                 _thickness(stroke), cv2.LINE_AA, _SHIFT)
    half = head * math.tan(ARROW_HEAD_HALF_ANGLE)
    triangle = np.array([
        _fixed(hx, hy),
        _fixed(bx - uy * half, by + ux * half),
        _fixed(bx + uy * half, by - ux * half),
    ], dtype=np.int32)
    cv2.fillConvexPoly(out, triangle, color, cv2.LINE_AA, _SHIFT)


def _circle(out: np.ndarray, shape: dict[str, Any], width: int, height: int) -> None:
    stroke = stroke_px(shape, width)
    (cx, cy), (ex, ey) = (_px(p, width, height) for p in shape["points"])
    radius = math.hypot(ex - cx, ey - cy)  # in pixels: round on screen, whatever the aspect
    cv2.circle(out, _fixed(cx, cy), round(radius * _ONE), bgr(shape["color"]),
               _thickness(stroke), cv2.LINE_AA, _SHIFT)


def text_metrics(shape: dict[str, Any], width: int, height: int) -> tuple[int, int]:
    """(capital letters' height, outline width beyond the letters) in pixels.

    Letters are 6 strokes high, at least 10 pixels and at most a quarter of the
    picture's height; the outline is a sixth of that, at least 2 pixels.
    """
    letters = round(min(max(MIN_TEXT_HEIGHT_PX, TEXT_HEIGHT_STROKES * stroke_px(shape, width)),
                        max(MIN_TEXT_HEIGHT_PX, height * MAX_TEXT_HEIGHT)))
    return letters, max(2, round(letters / 6))


@dataclass(frozen=True)
class _TextPlan:
    """A label laid out on a picture: what ``_text`` draws, and the patch it costs."""

    shape: dict[str, Any]
    layout: labels.Layout
    size: float
    x: float
    line: float
    outline: int
    box: tuple[int, int, int, int]  # letters and outline, in picture pixels
    visible: tuple[int, int, int, int]  # of the box, inside the picture
    patch: tuple[int, int, int, int]  # the visible part and the outline's reach around it

    @property
    def area(self) -> int:
        """Pixels of the patch: the work of drawing the label (text, outline, blend)."""
        left, top, right, bottom = self.patch
        return (right - left) * (bottom - top)


def _plan_text(shape: dict[str, Any], width: int, height: int,
               fonts: LabelFonts) -> _TextPlan | None:
    """The label's layout and patch; None if none of it is inside the picture."""
    letters, outline = text_metrics(shape, width, height)
    size = fonts.em(letters)
    layout = labels.lay_out(fonts, shape["text"], size)
    # points[0] is the top-left corner of the capital letters: the baseline lies a
    # capital's height below it (accents and tall glyphs may rise above the point).
    x, y = _px(shape["points"][0], width, height)
    line = y + letters
    reach = outline + 1
    slack = math.ceil(size / 4)  # ink past the ends of the advance: overhangs, swashes
    # The box the letters and their outline take, in picture pixels:
    box = (math.floor(x) - slack - reach, math.floor(line) - layout.ascent - reach,
           math.ceil(x + layout.advance) + slack + reach,
           math.ceil(line) + layout.descent + reach)
    # Only the visible part is drawn: a patch of it, plus the outline's reach around it,
    # so a long label costs at most about the picture's size.
    x0, y0 = max(0, box[0]), max(0, box[1])
    x1, y1 = min(width, box[2]), min(height, box[3])
    if x0 >= x1 or y0 >= y1:
        return None
    patch = (max(box[0], x0 - reach), max(box[1], y0 - reach),
             min(box[2], x1 + reach), min(box[3], y1 + reach))
    return _TextPlan(shape, layout, size, x, line, outline, box, (x0, y0, x1, y1), patch)


def _text(out: np.ndarray, plan: _TextPlan) -> None:
    shape, size, x, line = plan.shape, plan.size, plan.x, plan.line
    x0, y0, x1, y1 = plan.visible
    left, top, right, bottom = plan.patch
    patch = Image.new("L", (right - left, bottom - top), 0)
    pen = ImageDraw.Draw(patch)
    # Runs, and clusters of a run, that start this far right of the label's start are
    # past the patch: two ems leave room for a cluster's overhang and changed form.
    limit = right - x + 2 * size
    for run in plan.layout.runs:
        if run.x >= limit:
            break
        pen.text((x - left + run.x, line - top), run.left_of(limit - run.x), fill=255,
                 font=run.font, anchor="ls", direction=run.direction)
    mask = np.asarray(patch)
    if not mask.any():  # only characters that draw nothing (joiners, format controls)
        return
    outline = plan.outline
    # The outline: every pixel within ``outline`` of the letters.
    # (Capped: with no pixel half covered it would be the float maximum everywhere.)
    distance = np.minimum(
        cv2.distanceTransform((mask < 128).astype(np.uint8), cv2.DIST_L2, 5), outline + 1)
    ring = np.clip((outline + 0.5 - distance) * 255, 0, 255).astype(np.uint8)
    visible = (slice(y0 - top, y1 - top), slice(x0 - left, x1 - left))
    _blend(out, ring[visible], x0, y0, outline_color(shape["color"]))
    _blend(out, mask[visible], x0, y0, bgr(shape["color"]))


def _blend(out: np.ndarray, coverage: np.ndarray, left: int, top: int,
           color: tuple[int, int, int]) -> None:
    """Paint ``color`` over ``out`` through a 0..255 coverage patch placed at (left, top)."""
    height, width = out.shape[:2]
    x0, y0 = max(0, left), max(0, top)
    x1, y1 = min(width, left + coverage.shape[1]), min(height, top + coverage.shape[0])
    if x0 >= x1 or y0 >= y1:
        return
    alpha = coverage[y0 - top:y1 - top, x0 - left:x1 - left, None].astype(np.float32) / 255
    region = out[y0:y1, x0:x1].astype(np.float32)
    region += (np.array(color, np.float32) - region) * alpha
    out[y0:y1, x0:x1] = np.rint(region).astype(np.uint8)


_DRAW = {"pen": _pen, "arrow": _arrow, "circle": _circle}
