"""A test video with ground truth for tracking (issue 23): a flat scene of real
photographs seen by a moving camera whose homography is known for every frame.

The scene is one plane, ``World``: a wall (a photograph of bricks, tiled) with an
"appliance" on it (a photograph with detail, the thing a customer shows: a coffee
cup, a motorcycle's engine). Everything on it lies on the plane, so where any point of
it is in a frame is exact: ``Camera.homography(t)`` maps the plane to frame ``t``.
A shape pinned at a point of frame ``t0`` is at ``truth(t0, t, point)`` in frame ``t``.

The camera's path (``PATH``) is written as segments over time, as a hand holding a
phone moves: still, a slow pan, zoom in and out, a turn, shake, a quick pan that leaves
the appliance out of the frame and comes back, a change of light. Frames in motion get
blur along the motion; a pan that leaves the frame is ``out of view`` in ``in_view``.

The photographs are the sample images bundled in scikit-image's wheel, read as files
(its package is not imported).
"""

from __future__ import annotations

import fractions
import importlib.util
import math
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import av
import cv2
import numpy as np

FloatArray = np.ndarray


@cache
def _data_dir() -> Path:
    spec = importlib.util.find_spec("skimage")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("scikit-image is not installed (the test extras: ./scripts/test)")
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def photograph(name: str) -> np.ndarray:
    """One of scikit-image's bundled sample photographs, BGR."""
    image = cv2.imread(str(_data_dir() / name), cv2.IMREAD_COLOR)
    if image is None:
        raise RuntimeError(f"cannot read {name} from {_data_dir()}")
    return image


@dataclass(frozen=True)
class World:
    """The plane: ``image`` (BGR), and the appliance's corners on it."""

    image: np.ndarray
    appliance: tuple[float, float, float, float]  # x0, y0, x1, y1

    @property
    def size(self) -> tuple[int, int]:
        return self.image.shape[1], self.image.shape[0]


AX, AY = 1260, 900  # the appliance's centre on the plane


@cache
def world(appliance: str = "coffee.png") -> World:
    """A 4200 x 1800 wall of bricks with the appliance's photograph, 720 px wide,
    centred at (``AX``, ``AY``), room to its right to pan it out of view. The wall is
    tiled from a 512 px photograph, whose repeats would fool a tracker that matched the
    wall: the appliance is what shapes are pinned to."""
    bricks = photograph("brick.png")
    width, height = 4200, 1800
    wall = np.tile(bricks, (height // bricks.shape[0] + 1, width // bricks.shape[1] + 1, 1))
    wall = np.ascontiguousarray(wall[:height, :width])
    wall = cv2.convertScaleAbs(wall, alpha=0.6, beta=40)  # a paler wall than the thing
    thing = photograph(appliance)
    w = 720
    h = round(thing.shape[0] * w / thing.shape[1])
    thing = cv2.resize(thing, (w, h), interpolation=cv2.INTER_AREA)
    x0, y0 = AX - w // 2, AY - h // 2
    wall[y0:y0 + h, x0:x0 + w] = thing
    cv2.rectangle(wall, (x0 - 6, y0 - 6), (x0 + w + 5, y0 + h + 5), (40, 40, 40), 6)
    return World(wall, (float(x0), float(y0), float(x0 + w), float(y0 + h)))


WIDTH = 1280  # the frame width the zooms are written for


@dataclass(frozen=True)
class Pose:
    """Where the camera looks: the plane point at the frame's centre, how many frame
    pixels a plane pixel is (zoom, at ``WIDTH``), its turn (radians) and a tilt
    (perspective, per frame pixel at ``WIDTH``)."""

    cx: float
    cy: float
    zoom: float
    angle: float = 0.0
    tilt: float = 0.0  # a small perspective term along x


@dataclass(frozen=True)
class Segment:
    """From the previous pose to ``pose`` over ``seconds``; ``shake`` in frame pixels,
    ``light`` the gain at its end."""

    seconds: float
    pose: Pose
    shake: float = 0.0
    light: float = 1.0
    name: str = ""


START = Pose(AX, AY, 0.9)
# The camera's path: each segment eases from the pose before to its own. Away, the
# frame (1280 px at zoom 0.8: 1600 plane px) starts 200 px right of the appliance.
PATH: tuple[Segment, ...] = (
    Segment(1.0, START, name="still"),
    Segment(2.0, Pose(AX - 120, AY - 40, 0.9), name="slow pan"),
    Segment(1.5, Pose(AX - 60, AY - 20, 1.3), name="zoom in"),
    Segment(1.5, Pose(AX - 60, AY - 20, 1.3, angle=0.35), name="turn"),
    Segment(1.5, Pose(AX, AY, 0.8, angle=0.0, tilt=0.00012), shake=6.0,
            name="shake, zoom out, tilt"),
    Segment(1.0, Pose(AX, AY, 0.8), light=0.55, name="light dims"),
    Segment(0.8, Pose(AX + 1360, AY - 40, 0.8), light=0.55, name="quick pan away"),
    Segment(1.5, Pose(AX + 1360, AY - 40, 0.8), light=0.55, name="away"),
    Segment(0.8, Pose(AX + 20, AY + 20, 0.85), light=1.0, name="quick pan back"),
    Segment(1.5, Pose(AX + 20, AY + 20, 0.85), shake=3.0, name="held"),
)


def _ease(x: float) -> float:
    return 0.5 - 0.5 * math.cos(math.pi * min(max(x, 0.0), 1.0))


class Camera:
    """Frames of ``world`` along ``path`` at ``fps``, ``size`` (width, height)."""

    def __init__(self, size: tuple[int, int] = (1280, 720), fps: float = 30.0,
                 path: tuple[Segment, ...] = PATH, appliance: str = "coffee.png",
                 seed: int = 1) -> None:
        self.size = size
        self.fps = fps
        self.path = path
        self.world = world(appliance)
        self.frames = round(sum(s.seconds for s in path) * fps)
        # Shake: noise smoothed over a few frames (a hand, not a vibration), of unit
        # spread, scaled by the segment's amplitude.
        noise = np.random.default_rng(seed).normal(0.0, 1.0, (self.frames + 5, 2))
        kernel = np.array([1.0, 2.0, 3.0, 2.0, 1.0])
        smooth = np.stack([np.convolve(noise[:, i], kernel, "valid") for i in (0, 1)], 1)
        self._jitter = smooth / smooth.std(axis=0)

    def _segment(self, t: int) -> tuple[Segment, Pose, float]:
        """The segment frame ``t`` is in, the pose it starts from, how far along."""
        seconds = t / self.fps
        before = self.path[0].pose
        for segment in self.path:
            if seconds < segment.seconds:
                return segment, before, seconds / segment.seconds
            seconds -= segment.seconds
            before = segment.pose
        last = self.path[-1]
        return last, last.pose, 1.0

    def pose(self, t: int) -> tuple[Pose, float, float]:
        """Frame ``t``'s pose, shake amplitude and light gain."""
        segment, before, x = self._segment(t)
        k = _ease(x)
        end = segment.pose

        def mix(a: float, b: float) -> float:
            return a + (b - a) * k

        pose = Pose(mix(before.cx, end.cx), mix(before.cy, end.cy),
                    mix(before.zoom, end.zoom), mix(before.angle, end.angle),
                    mix(before.tilt, end.tilt))
        index = self.path.index(segment)
        light_before = self.path[index - 1].light if index else 1.0
        return pose, segment.shake, light_before + (segment.light - light_before) * k

    def homography(self, t: int) -> FloatArray:
        """The plane to frame ``t`` (3 x 3)."""
        pose, shake, _ = self.pose(t)
        w, h = self.size
        dx, dy = self._jitter[t] * shake
        c, s = math.cos(pose.angle), math.sin(pose.angle)
        to_origin = np.array([[1, 0, -pose.cx], [0, 1, -pose.cy], [0, 0, 1]], float)
        zoom = pose.zoom * w / WIDTH  # the same view at any size
        turn_zoom = np.array([[zoom * c, -zoom * s, 0], [zoom * s, zoom * c, 0], [0, 0, 1]],
                             float)
        tilt = np.array([[1, 0, 0], [0, 1, 0], [pose.tilt * WIDTH / w, 0, 1]], float)
        to_frame = np.array([[1, 0, w / 2 + dx], [0, 1, h / 2 + dy], [0, 0, 1]], float)
        result: FloatArray = to_frame @ tilt @ turn_zoom @ to_origin
        normalized: FloatArray = result / result[2, 2]
        return normalized

    def motion(self, t: int) -> tuple[float, float]:
        """How far (frame pixels) the frame's centre moves from frame ``t - 1``."""
        if t == 0:
            return 0.0, 0.0
        w, h = self.size
        centre = np.array([w / 2, h / 2])
        before = apply(self.homography(t) @ np.linalg.inv(self.homography(t - 1)),
                       centre[None])[0]
        return float(before[0] - centre[0]), float(before[1] - centre[1])

    def render(self, t: int) -> np.ndarray:
        """Frame ``t`` (BGR, ``size``): the plane warped, blurred along its motion,
        lit by the segment's gain."""
        _, _, light = self.pose(t)
        frame = cv2.warpPerspective(self.world.image, self.homography(t), self.size,
                                    flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        mx, my = self.motion(t)
        length = math.hypot(mx, my)
        if length >= 2.0:  # a half-exposed frame's blur: half the motion between frames
            n = min(int(length / 2) | 1, 31)
            kernel = np.zeros((n, n), np.float32)
            a = math.atan2(my, mx)
            cx = cy = n // 2
            ex, ey = math.cos(a) * (n // 2), math.sin(a) * (n // 2)
            cv2.line(kernel, (round(cx - ex), round(cy - ey)), (round(cx + ex), round(cy + ey)),
                     1.0, 1)
            frame = cv2.filter2D(frame, -1, kernel / kernel.sum())
        if light != 1.0:
            frame = cv2.convertScaleAbs(frame, alpha=light, beta=0)
        return frame

    def __iter__(self) -> Iterator[np.ndarray]:
        return (self.render(t) for t in range(self.frames))

    def truth(self, t0: int, t: int, points: FloatArray) -> FloatArray:
        """Where points of frame ``t0`` (N x 2, frame pixels) are in frame ``t``."""
        return apply(self.homography(t) @ np.linalg.inv(self.homography(t0)), points)

    def appliance_in(self, t: int) -> FloatArray:
        """The appliance's corners in frame ``t`` (4 x 2)."""
        x0, y0, x1, y1 = self.world.appliance
        corners = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], float)
        return apply(self.homography(t), corners)

    def in_view(self, t: int, points: FloatArray, margin: float = 0.0) -> np.ndarray:
        """Which points of frame ``t`` lie within the frame (``margin`` pixels in)."""
        w, h = self.size
        return ((points[:, 0] >= margin) & (points[:, 0] < w - margin)
                & (points[:, 1] >= margin) & (points[:, 1] < h - margin))

    @property
    def diagonal(self) -> float:
        return math.hypot(*self.size)

    def segment_name(self, t: int) -> str:
        return self._segment(t)[0].name


def apply(homography: FloatArray, points: FloatArray) -> FloatArray:
    """Points (N x 2) through a homography."""
    ones = np.ones((len(points), 1))
    mapped = np.hstack([points, ones]) @ homography.T
    result: FloatArray = mapped[:, :2] / mapped[:, 2:3]
    return result


@cache
def clip(size: tuple[int, int] = (640, 360), keyframe_every: int = 60,
         then: tuple[int, int] | None = None, switch_at: int = 0) -> tuple[bytes, ...]:
    """The scene's frames encoded with VP8 as ``clips.video_clip`` encodes (30 fps, a
    keyframe every ``keyframe_every``), for an aiortc publisher (``track``); from frame
    ``switch_at`` on, at the size ``then`` if given (a keyframe there: a sender scaling
    its picture, or a phone turned), each frame stamped with its number (``stamp``).
    The view is the same at any size (``Camera``). A
    little noise on each frame, as a camera's sensor makes, so that no two frames are
    the same bytes (``peers.sent_numbers`` tells frames apart by their bytes)."""
    from tests.support.clips import ENCODERS, FPS, VIDEO_RATE

    name, options = ENCODERS["VP8"]

    def encoder(size: tuple[int, int]) -> av.VideoCodecContext:
        codec = av.CodecContext.create(name, "w")
        assert isinstance(codec, av.VideoCodecContext)
        codec.width, codec.height, codec.pix_fmt = *size, "yuv420p"
        codec.time_base = fractions.Fraction(1, VIDEO_RATE)
        codec.framerate = fractions.Fraction(FPS)
        codec.bit_rate = 1_000_000
        codec.gop_size = keyframe_every
        codec.options = {**options, "g": str(keyframe_every),
                         "kf-max-dist": str(keyframe_every)}
        codec.thread_count = 1
        return codec

    first = Camera(size)
    second = Camera(then) if then is not None else first
    codec = encoder(size)
    noise = np.random.default_rng(7)
    out: list[bytes] = []
    for t in range(first.frames):
        if then is not None and t == switch_at:
            codec = encoder(then)
        later = then is not None and t >= switch_at
        image = (second if later else first).render(t)
        grain = noise.integers(-2, 3, image.shape, dtype=np.int16)
        noisy = np.clip(image.astype(np.int16) + grain, 0, 255).astype(np.uint8)
        # Stamped after a switch: a far view's frames, skipped, would be the same bytes.
        planes = to_i420(noisy, t % 2 ** STAMP_BITS if later else None)
        frame = av.VideoFrame.from_ndarray(planes, format="yuv420p")
        frame.pts = t * (VIDEO_RATE // FPS)
        frame.time_base = fractions.Fraction(1, VIDEO_RATE)
        if t % keyframe_every == 0 or (then is not None and t == switch_at):
            frame.pict_type = av.video.frame.PictureType.I
        packets = codec.encode(frame)
        assert len(packets) == 1, "the encoder must not delay frames"
        out.append(bytes(packets[0]))
    return tuple(out)


# A frame's number, stamped in its bottom-left corner, so that whoever sees a frame
# (a browser's video element, a snapshot) can tell which of the scene's it is: a blue
# and a red cell (the levels to compare with), STAMP_BITS cells of the number's bits
# (blue 1, red 0), most significant first, and one of even parity, square cells 1/30
# of the width. Only the colour is changed, not the brightness: a tracker looks at
# brightness alone (``tracking.working_picture``), and a stamp it saw would be a patch
# that stays still while the picture moves.
STAMP_BITS = 8
STAMP_CELLS = 2 + STAMP_BITS + 1
_CHROMA = {1: (200, 60), 0: (60, 200)}  # (U, V): blue, red


def stamp_geometry(width: int, height: int) -> tuple[float, float, float]:
    """The stamp's cell size and its first cell's top-left corner, in pixels."""
    cell = width / 30
    return cell, cell / 2, height - 1.5 * cell


def _stamp_values(t: int) -> list[int]:
    bits = [(t >> (STAMP_BITS - 1 - i)) & 1 for i in range(STAMP_BITS)]
    return [1, 0, *bits, sum(bits) % 2]


def to_i420(image: np.ndarray, t: int | None = None) -> np.ndarray:
    """``image`` (BGR) as I420 planes, one array (height * 3 / 2, width), with frame
    number ``t`` stamped in its colour planes if given."""
    h, w = image.shape[:2]
    planes = cv2.cvtColor(image, cv2.COLOR_BGR2YUV_I420)
    if t is None:
        return planes
    flat = planes.reshape(-1)  # the planes one after another: Y, U, V
    u = flat[w * h:w * h * 5 // 4].reshape(h // 2, w // 2)
    v = flat[w * h * 5 // 4:].reshape(h // 2, w // 2)
    cell, x0, y0 = stamp_geometry(w, h)
    for i, value in enumerate(_stamp_values(t)):
        rows = slice(round(y0 / 2), round((y0 + cell) / 2))
        columns = slice(round((x0 + i * cell) / 2), round((x0 + (i + 1) * cell) / 2))
        u[rows, columns], v[rows, columns] = _CHROMA[value]
    return planes


def read_stamp(image: np.ndarray) -> int | None:
    """The frame number stamped in ``image`` (BGR, any size), None if none reads."""
    h, w = image.shape[:2]
    cell, x0, y0 = stamp_geometry(w, h)
    blue = image[:, :, 0].astype(float) - image[:, :, 2]
    levels = []
    for i in range(STAMP_CELLS):  # the middle half of each cell
        cx, cy = round(x0 + (i + 0.5) * cell), round(y0 + 0.5 * cell)
        q = max(1, round(cell / 4))
        levels.append(float(blue[cy - q:cy + q, cx - q:cx + q].mean()))
    one, zero = levels[0], levels[1]
    if one - zero < 80:
        return None
    values = [int(v > (one + zero) / 2) for v in levels]
    bits, parity = values[2:-1], values[-1]
    if sum(bits) % 2 != parity:
        return None
    return sum(bit << (STAMP_BITS - 1 - i) for i, bit in enumerate(bits))


def write_y4m(path: Path, size: tuple[int, int] = (480, 270), fps: int = 15,
              stamped: bool = True) -> Camera:
    """The scene as a YUV4MPEG2 file at ``path``, for Chromium's fake camera
    (``--use-file-for-fake-video-capture``), which plays it in a loop; each frame's
    number stamped in (``stamp``) unless not ``stamped``. 480x270 at 15 fps is 38 MB
    for the 13 s. Returns the camera that filmed it, for the ground truth."""
    camera = Camera(size, fps=float(fps))
    assert camera.frames < 2 ** STAMP_BITS
    w, h = size
    with path.open("wb") as out:
        out.write(f"YUV4MPEG2 W{w} H{h} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for t, image in enumerate(camera):
            out.write(b"FRAME\n")
            out.write(to_i420(image, t if stamped else None).tobytes())
    return camera
