"""Following what is under a pinned shape from frame to frame (issue 23): where the
region it was drawn on is in each later picture of the same video, as a homography
from the picture it was pinned on to the current one.

Pure OpenCV on grayscale pictures at a reduced size (``working_picture``); the caller
decodes, off the event loop. A video's ``Tracking`` holds one ``region.RegionTracker``
per pinned shape (the method is there), and computes what they share once a picture
(``advance``): one optical flow for the corners of every region it follows (each call
of OpenCV's builds the two pictures' pyramids again), the picture's ORB features for
the regions that look for themselves, the whole picture's motion for those lost.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import av
import cv2
import numpy as np

from videoassist.media.region import (
    FB_MAX_PX,
    MIN_CORNERS,
    RANSAC_PX,
    Features,
    RegionTracker,
    Step,
    flow,
)

__all__ = ["RegionTracker", "Step", "Tracking", "advance", "fitted", "picture_motion",
           "working_picture"]

# OpenCV's own worker threads (a pool of one per core, for the optical flow's pyramids)
# would take every core from forwarding: a call's tracking is its one thread, alone.
cv2.setNumThreads(1)

# The longer side of the pictures tracked. Measured while it was written (the scene of
# tests/support/scene.py, three shapes, on this machine): following them took 8-11 ms a
# picture at 480 px and 5.5-7 ms at 320, and scaling 720p down 1.5 ms to 480 px against
# 0.5 ms to 320 (a whole factor); at 320 px the error stays a fraction of the issue's
# target (docs/performance.md, Tracking).
WORKING_SIZE = 320


def working_picture(frame: av.VideoFrame) -> np.ndarray:
    """What a tracker looks at of a decoded frame: its luma (brightness) plane, scaled
    down by a whole factor to about ``WORKING_SIZE`` pixels on its longer side (a whole
    factor: an even average of pixels, the cheapest scaling and the steadiest)."""
    plane = frame.planes[0]
    luma = np.frombuffer(memoryview(plane), np.uint8).reshape(frame.height, plane.line_size)
    luma = luma[:, :frame.width]
    factor = max(1, round(max(frame.width, frame.height) / WORKING_SIZE))
    if factor == 1:
        return np.ascontiguousarray(luma)
    small: np.ndarray = cv2.resize(luma, (frame.width // factor, frame.height // factor),
                                   interpolation=cv2.INTER_AREA)
    return small


# How far two sizes' shapes (width over height) may differ and still be one picture at
# another resolution: a sender's scaling rounds each side to whole (often even) pixels.
SAME_SHAPE = 0.02


def fitted(picture: np.ndarray, size: tuple[int, int]) -> np.ndarray | None:
    """``picture`` at ``size`` (height, width): the same picture a sender scaled (to
    save bandwidth, Chromium's steps of 3/4) is tracked at the size it started with;
    None if its shape changed (a phone turned), when it is another picture."""
    h, w = picture.shape[:2]
    if (h, w) == size:
        return picture
    if abs(w / h - size[1] / size[0]) > SAME_SHAPE * size[1] / size[0]:
        return None
    larger = w * h > size[0] * size[1]
    resized: np.ndarray = cv2.resize(picture, (size[1], size[0]), interpolation=(
        cv2.INTER_AREA if larger else cv2.INTER_LINEAR))
    return resized


# The whole picture's motion: corners over all of it, as many as this.
MOTION_CORNERS = 100
STILL = np.eye(3)


def picture_motion(before: np.ndarray, after: np.ndarray) -> np.ndarray | None:
    """How the whole picture moved from ``before`` to ``after`` (a homography), for
    regions lost meanwhile: ``STILL`` for a picture too flat to tell (nothing there
    that moves), None when its corners do not follow one motion (a blur, a swing)."""
    corners = cv2.goodFeaturesToTrack(before, MOTION_CORNERS, 0.01, 10, blockSize=5)
    if corners is None or len(corners) < MIN_CORNERS:
        return STILL
    moved, found = flow(before, after, corners.astype(np.float32))
    good = found.ravel() == 1
    if good.sum() < MIN_CORNERS:
        return None
    motion, inliers = cv2.findHomography(corners.reshape(-1, 2)[good],
                                         moved.reshape(-1, 2)[good], cv2.RANSAC, RANSAC_PX)
    if motion is None or inliers is None or inliers.sum() < max(MIN_CORNERS, good.sum() // 2):
        return None
    result: np.ndarray = motion
    return result


def advance(regions: dict[str, RegionTracker], before: np.ndarray | None,
            after: np.ndarray, features: Features | None = None) -> dict[str, Step]:
    """Follow ``regions`` from the picture ``before`` into ``after``: one optical flow
    for the corners of all those being followed; the lost ones look for themselves."""
    steps: dict[str, Step] = {}
    moving = {key: points for key, region in regions.items()
              if (points := region.following) is not None and len(points) >= MIN_CORNERS}
    if moving and before is not None:
        start = np.vstack(list(moving.values())).reshape(-1, 1, 2).astype(np.float32)
        moved, found = flow(before, after, start)
        back, found_back = flow(after, before, moved)
        disagreement = np.linalg.norm((back - start).reshape(-1, 2), axis=1)
        good = (found.ravel() == 1) & (found_back.ravel() == 1) & (disagreement < FB_MAX_PX)
        moved = moved.reshape(-1, 2)
        at = 0
        for key, points in moving.items():
            n = len(points)
            steps[key] = regions[key].follow(after, moved[at:at + n], good[at:at + n])
            at += n
    features = features or Features()
    for key in moving:
        region = regions[key]
        if region.state == "tracking" and region.check(after, features):
            steps[key] = Step("tracking", region.homography, steps[key].points)
    # Lost, last seen inside the picture (this picture included): carried along.
    carried = [key for key, r in regions.items() if r.state == "lost" and r.last_seen is not None]
    if carried and before is not None:
        motion = picture_motion(before, after)
        for key in carried:
            regions[key].carry(motion)
            if key in steps:  # lost in this very picture: where it is carried to
                steps[key] = regions[key].lost_now()
    for key, region in regions.items():
        if key not in steps:
            steps[key] = (region.lost_step(after, features) if region.state == "lost"
                          else region.lose())
    return steps


class Tracking:
    """The pinned regions of one video, each followed into every picture given."""

    def __init__(self) -> None:
        self.regions: dict[str, RegionTracker] = {}
        self._picture: np.ndarray | None = None
        self._features = Features()

    def pin(self, key: str, box: tuple[float, float, float, float],
            history: Sequence[np.ndarray] = ()) -> RegionTracker:
        """Pin the region under ``box`` of ``history[0]`` (the picture the shape was
        drawn on), followed through the rest of ``history``, which ends with the last
        picture given to ``update``; without history, of that last picture."""
        if history:
            pictures = list(history)
        else:
            assert self._picture is not None, "pin on a picture: update first"
            pictures = [self._picture]
        region = RegionTracker(pictures[0], box)
        for before, after in itertools.pairwise(pictures):
            advance({key: region}, before, after)
        self.regions[key] = region
        return region

    def unpin(self, key: str) -> None:
        self.regions.pop(key, None)

    def restart(self) -> None:
        """The video starts again (a new one of the same camera): no picture before the
        next, every region lost, to be found again by its features."""
        self._picture = None
        for region in self.regions.values():
            region.gone()

    def update(self, picture: np.ndarray) -> dict[str, Step]:
        """Follow every region into ``picture`` (grayscale, one size throughout)."""
        steps = advance(self.regions, self._picture, picture, self._features)
        self._picture = picture
        return steps
