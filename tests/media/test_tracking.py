"""Pinned regions followed through a video with ground truth (issue 23): the scene of
``tests.support.scene`` (photographs on a plane, a moving camera whose homography is
known for every frame) encoded with VP8 as a browser's would be, decoded as the server
decodes for tracking (``decoding.decoder_for(loop_filter=False)``,
``tracking.working_picture``), followed by ``tracking.Tracking`` at 10 pictures a
second, as the server tracks (``trackfeed.MAX_RATE``). The errors are the pinned
points' distances from where the plane put them, as a share of the frame's diagonal;
the targets are the issue's.

These test the tracker alone; the server's use of it (decoding only while something
is pinned, the transforms sent to every participant) is tested through the server."""

from __future__ import annotations

import fractions
import functools
from dataclasses import dataclass

import av
import cv2
import numpy as np
import pytest

from tests.support.clips import ENCODERS
from tests.support.scene import Camera
from videoassist.media.decoding import decoder_for
from videoassist.media.tracking import Step, Tracking, working_picture

SIZE = (640, 360)  # the same view as 720p (the scene's zooms follow the width)
PIN_AT = 10
EVERY = 3  # tracked pictures: every third frame of 30 fps (trackfeed.MAX_RATE)
MEDIAN_MAX = 0.015
P95_MAX = 0.04
REACQUIRE_S = 1.0


@functools.cache
def pictures() -> tuple[Camera, tuple[np.ndarray, ...]]:
    """The scene's frames through VP8 and back, as the tracker sees them."""
    camera = Camera(SIZE)
    name, options = ENCODERS["VP8"]
    encoder = av.CodecContext.create(name, "w")
    assert isinstance(encoder, av.VideoCodecContext)
    encoder.width, encoder.height, encoder.pix_fmt = *SIZE, "yuv420p"
    encoder.time_base = fractions.Fraction(1, 30)
    encoder.bit_rate = 800_000
    encoder.options = {**options, "g": "90", "kf-max-dist": "90"}
    encoder.thread_count = 1
    decoder = decoder_for("VP8", loop_filter=False)
    out: list[np.ndarray] = []
    for t, image in enumerate(camera):
        frame = av.VideoFrame.from_ndarray(image, format="bgr24").reformat(format="yuv420p")
        frame.pts = t
        for packet in encoder.encode(frame):
            out.extend(working_picture(f) for f in decoder.decode(av.Packet(bytes(packet))))
    assert len(out) == camera.frames
    return camera, tuple(out)


@dataclass
class Pinned:
    name: str
    box: tuple[float, float, float, float]  # frame pixels at PIN_AT

    @property
    def points(self) -> np.ndarray:
        """Its corners and centre."""
        x0, y0, x1, y1 = self.box
        return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1],
                         [(x0 + x1) / 2, (y0 + y1) / 2]], float)


def shapes(camera: Camera) -> list[Pinned]:
    """Three shapes an expert might draw on the appliance: around the cup, on the
    spoon, on the saucer's edge near a corner."""
    corners = camera.appliance_in(PIN_AT)
    (x0, y0), (x1, y1) = corners.min(axis=0), corners.max(axis=0)
    w, h = x1 - x0, y1 - y0

    def box(a: float, b: float, c: float, d: float) -> tuple[float, float, float, float]:
        return (x0 + a * w, y0 + b * h, x0 + c * w, y0 + d * h)

    return [Pinned("cup", box(0.25, 0.05, 0.6, 0.45)),
            Pinned("spoon", box(0.55, 0.5, 0.7, 0.75)),
            Pinned("corner", box(0.02, 0.7, 0.15, 0.95))]


@dataclass
class Run:
    camera: Camera
    scale: float  # working picture pixels per frame pixel
    steps: list[tuple[int, dict[str, Step]]]

    def error(self, shape: Pinned, t: int, step: Step) -> float:
        """The farthest of the shape's points from the truth, share of the diagonal."""
        assert step.homography is not None
        found = cv2.perspectiveTransform(
            (shape.points * self.scale).reshape(-1, 1, 2).astype(np.float32),
            step.homography).reshape(-1, 2) / self.scale
        truth = self.camera.truth(PIN_AT, t, shape.points)
        return float(np.linalg.norm(found - truth, axis=1).max() / self.camera.diagonal)

    def in_view(self, shape: Pinned, t: int) -> bool:
        centre = self.camera.truth(PIN_AT, t, shape.points[4:])
        return bool(self.camera.in_view(t, centre)[0])


@pytest.fixture(scope="module")
def run() -> Run:
    camera, frames = pictures()
    scale = frames[0].shape[1] / SIZE[0]
    tracking = Tracking()
    tracking.update(frames[PIN_AT])
    for shape in shapes(camera):
        tracking.pin(shape.name, tuple(v * scale for v in shape.box))  # type: ignore[arg-type]
    steps = [(t, tracking.update(frames[t])) for t in range(PIN_AT + EVERY, len(frames), EVERY)]
    return Run(camera, scale, steps)


@pytest.mark.parametrize("name", ["cup", "spoon", "corner"])
def test_a_pinned_shape_stays_on_what_it_was_drawn_on(run: Run, name: str) -> None:
    shape = next(s for s in shapes(run.camera) if s.name == name)
    errors, missed = [], []
    for t, steps in run.steps:
        step = steps[name]
        if not run.in_view(shape, t):
            continue
        if step.homography is None:
            missed.append(t)
        else:
            errors.append(run.error(shape, t, step))
    in_view = len(errors) + len(missed)
    assert np.median(errors) <= MEDIAN_MAX, (np.median(errors), name)
    assert np.percentile(errors, 95) <= P95_MAX, (np.percentile(errors, 95), name)
    # Not followed only about the frames it left and came back in.
    assert len(missed) <= 0.05 * in_view, (missed, [run.camera.segment_name(t) for t in missed])


@pytest.mark.parametrize("name", ["cup", "spoon", "corner"])
def test_a_shape_whose_object_left_is_lost_and_found_again_when_it_returns(
        run: Run, name: str) -> None:
    shape = next(s for s in shapes(run.camera) if s.name == name)
    away = [t for t, _ in run.steps if not run.in_view(shape, t)]
    assert away, "the scene's path takes the appliance out of the frame"
    # Out of the frame, the shape is not put anywhere (a frame or two as it leaves).
    shown_away = [t for t, steps in run.steps if t in away and steps[name].state == "tracking"]
    assert len(shown_away) <= 2, shown_away
    back = max(away) + 1
    found = next(t for t, steps in run.steps
                 if t >= back and steps[name].state == "tracking")
    assert (found - back) / run.camera.fps <= REACQUIRE_S


def test_a_region_with_nothing_to_follow_is_lost_at_once() -> None:
    """A shape drawn on a blank wall: nothing to follow, so it is not pinned to
    anything, rather than pinned to noise."""
    blank = np.full((180, 320), 128, np.uint8)
    tracking = Tracking()
    tracking.update(blank)
    region = tracking.pin("blank", (100.0, 60.0, 160.0, 120.0))
    assert region.state == "lost" and region.blank
    assert tracking.update(blank)["blank"].state == "lost"


def test_a_shift_of_the_picture_is_the_transform() -> None:
    """A picture moved by a known number of pixels: the region's homography is that
    shift, to a tenth of a pixel."""
    _, frames = pictures()
    picture = frames[PIN_AT]
    tracking = Tracking()
    tracking.update(picture)
    tracking.pin("part", (100.0, 50.0, 200.0, 130.0))
    moved = np.roll(np.roll(picture, 7, axis=1), -4, axis=0)
    step = tracking.update(moved)["part"]
    assert step.state == "tracking" and step.homography is not None
    expected = np.array([[1, 0, 7], [0, 1, -4], [0, 0, 1]], float)
    assert np.abs(step.homography - expected).max() < 0.1
