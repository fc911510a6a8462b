"""Following what is under a pinned shape from frame to frame (issue 23): where the
region it was drawn on is in each later picture of the same video, as a homography
from the picture it was pinned on to the current one.

Pure OpenCV on grayscale pictures at a reduced size; the caller decodes and scales,
off the event loop. A video's ``Tracking`` holds one ``RegionTracker`` per pinned
shape, and computes the optical flow once a picture, for the corners of every region
it follows at once (each call of OpenCV's builds the two pictures' pyramids again).

- At the pin, features of the region under the shape, grown to some context (a shape
  is often a circle drawn around a small thing, with too little texture inside to
  follow on its own): Shi-Tomasi corners to follow, and ORB keypoints with their
  descriptors to find the region again.
- Each picture: the corners follow by pyramidal Lucas-Kanade optical flow, kept only
  when the flow back from where they went returns where they were (forward-backward
  check); a homography from their places in the pinned picture to their places now,
  fitted robustly (RANSAC), is the region's transform. Corners that drop out are
  replaced by new ones found in the region's place now, mapped back to the pinned
  picture through the transform, so the fit is always against the pin.
- Too few corners agreeing, an implausible fit (folded, or scaled past ``MAX_SCALE``)
  or the region's place out of the picture: the region is lost. Then every
  ``REACQUIRE_EVERY`` pictures the pin's ORB descriptors are matched against the
  whole picture's (Lowe's ratio test; the picture's found once for every lost region,
  ``Features``) and, with ``MIN_REACQUIRE_INLIERS`` agreeing in a robust fit, tracking
  starts again from there.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import av
import cv2
import numpy as np

State = Literal["tracking", "lost"]

# OpenCV's own worker threads (a pool of one per core, for the optical flow's pyramids)
# would take every core from forwarding: a call's tracking is its one thread, alone.
cv2.setNumThreads(1)

# The longer side of the pictures tracked. Measured while it was written (the scene of
# tests/support/scene.py, three shapes, on this machine): following them took 8-11 ms a
# picture at 480 px and 5.5-7 ms at 320, and scaling 720p down 1.5 ms to 480 px against
# 0.5 ms to 320 (a whole factor); at 320 px the error stays a fraction of the issue's
# target (docs/performance.md, Tracking).
WORKING_SIZE = 320
# The region tracked around a shape: its bounding box grown by this share of its size
# on each side, and at least this share of the picture's smaller side across.
GROW = 0.5
MIN_REGION = 0.3
MAX_CORNERS = 120
MIN_CORNERS = 12  # agreeing corners below which the region is lost
REFILL_BELOW = 60  # find new corners when fewer than this are left
FB_MAX_PX = 1.0  # forward-backward disagreement above which a corner is dropped
RANSAC_PX = 2.5
MAX_SCALE = 6.0  # the region grown or shrunk more than this since the pin: a bad fit
MAX_PERSPECTIVE = 0.004  # |h20|, |h21| per pixel of the picture's smaller side, inverse
ORB_FEATURES_REGION = 500
ORB_FEATURES_FRAME = 1000
RATIO = 0.8  # Lowe's ratio test for descriptor matches
MIN_REACQUIRE_INLIERS = 15
# A lost region last seen this share of the picture's size or nearer its edge has left.
EDGE = 0.1
REACQUIRE_EVERY = 1  # pictures between attempts to find a lost region again
# Lucas-Kanade's window and pyramid: 3 levels over a 21 px window follow a quick pan's
# 60 px between two tracked pictures at 320 px.
WINDOW = (21, 21)
LEVELS = 3
CRITERIA = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 30, 0.01)


@dataclass(frozen=True)
class Step:
    """Where the region is in one picture: ``homography`` maps the pinned picture's
    coordinates to this one's (None while lost)."""

    state: State
    homography: np.ndarray | None
    points: int  # corners agreeing with the fit


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


def region_around(box: tuple[float, float, float, float], size: tuple[int, int]
                  ) -> tuple[int, int, int, int]:
    """The region tracked for a shape's bounding box (x0, y0, x1, y1, pixels) in a
    picture of ``size`` (width, height): grown, at least ``MIN_REGION`` across, within
    the picture."""
    w, h = size
    x0, y0, x1, y1 = box
    least = MIN_REGION * min(w, h)
    half_w = max((x1 - x0) * (1 + 2 * GROW), least) / 2
    half_h = max((y1 - y0) * (1 + 2 * GROW), least) / 2
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    return (max(0, int(cx - half_w)), max(0, int(cy - half_h)),
            min(w, math.ceil(cx + half_w)), min(h, math.ceil(cy + half_h)))


def _mask(size: tuple[int, int], polygon: np.ndarray) -> np.ndarray:
    mask = np.zeros((size[1], size[0]), np.uint8)
    cv2.fillConvexPoly(mask, np.round(polygon).astype(np.int32), 255)
    return mask


def _flow(before: np.ndarray, after: np.ndarray, points: np.ndarray
          ) -> tuple[np.ndarray, np.ndarray]:
    """Where ``points`` (N x 1 x 2) of ``before`` went in ``after``, and which were found."""
    moved, found, _ = cv2.calcOpticalFlowPyrLK(before, after, points, None, winSize=WINDOW,
                                               maxLevel=LEVELS, criteria=CRITERIA)
    return np.asarray(moved), np.asarray(found)


def _apply(homography: np.ndarray, points: np.ndarray) -> np.ndarray:
    mapped = cv2.perspectiveTransform(points.reshape(-1, 1, 2).astype(np.float32), homography)
    result: np.ndarray = mapped.reshape(-1, 2)
    return result


class RegionTracker:
    def __init__(self, picture: np.ndarray, box: tuple[float, float, float, float]) -> None:
        """Pin the region under ``box`` (x0, y0, x1, y1) of ``picture`` (grayscale)."""
        self.size = (picture.shape[1], picture.shape[0])
        x0, y0, x1, y1 = region_around(box, self.size)
        self.corners = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], np.float32)
        self._orb = cv2.ORB.create(ORB_FEATURES_REGION, fastThreshold=10)
        self._matcher = cv2.BFMatcher(cv2.NORM_HAMMING)
        mask = _mask(self.size, self.corners)
        keypoints, descriptors = self._orb.detectAndCompute(picture, mask)
        self._ref_keypoints = np.array([k.pt for k in keypoints], np.float32).reshape(-1, 2)
        self._ref_descriptors = descriptors
        self.homography: np.ndarray | None = np.eye(3)
        self._ref = np.empty((0, 2), np.float32)  # corners' places in the pinned picture
        self._now = np.empty((0, 2), np.float32)  # and in the previous picture
        self._refill(picture)
        self._since_lost = 0
        self.state: State = "tracking" if len(self._ref) >= MIN_CORNERS else "lost"
        # Nothing to follow where it was drawn (a blank wall, a flat colour): not the
        # object gone, but nothing to pin to.
        self.blank = self.state == "lost"
        self.last_seen: np.ndarray | None = None  # while lost, see ``lose``
        if self.blank:
            self.homography = None

    @property
    def where(self) -> np.ndarray | None:
        """The region's corners in the last picture (4 x 2), None while lost."""
        return None if self.homography is None else _apply(self.homography, self.corners)

    def _refill(self, picture: np.ndarray) -> None:
        """Add corners found in the region's place now, away from those kept."""
        assert self.homography is not None
        place = _apply(self.homography, self.corners)
        mask = _mask(self.size, place)
        for x, y in self._now:
            cv2.circle(mask, (int(x), int(y)), 5, 0, -1)
        wanted = MAX_CORNERS - len(self._now)
        found = cv2.goodFeaturesToTrack(picture, wanted, 0.01, 6, mask=mask, blockSize=5)
        if found is None:
            return
        found = found.reshape(-1, 2).astype(np.float32)
        back = _apply(np.linalg.inv(self.homography), found)
        self._ref = np.vstack([self._ref, back]).astype(np.float32)
        self._now = np.vstack([self._now, found]).astype(np.float32)

    @property
    def following(self) -> np.ndarray | None:
        """The corners to follow into the next picture (N x 2), None while lost."""
        return self._now if self.state == "tracking" else None

    def lost_step(self, picture: np.ndarray, features: Features) -> Step:
        """A picture while lost: every ``REACQUIRE_EVERY``, look for the region among
        the picture's ``features`` (found once a picture for every lost region)."""
        self._since_lost += 1
        if self._since_lost % REACQUIRE_EVERY:
            return self._lost()
        return self._reacquire(picture, features)

    def lose(self) -> Step:
        """The region is lost: look for it from now on. Where it was last seen is kept
        (``last_seen``) while that was well inside the picture: not followed now (what
        moved under it was not one rigid thing, or a blur), but not gone either; a
        region last seen near or past the edge has left the picture."""
        self.last_seen = (self.homography if self.homography is not None
                          and self._well_inside(self.homography) else None)
        self.state = "lost"
        self.homography = None
        self._since_lost = 0
        self._ref = self._now = np.empty((0, 2), np.float32)
        return self._lost()

    def _lost(self) -> Step:
        return Step("lost", self.last_seen, 0)

    def _well_inside(self, homography: np.ndarray) -> bool:
        """Whether the region's centre there is inside the picture, ``EDGE`` of its size
        away from every side."""
        cx, cy = _apply(homography, self.corners).mean(axis=0)
        w, h = self.size
        return bool(EDGE * w <= cx < (1 - EDGE) * w and EDGE * h <= cy < (1 - EDGE) * h)

    def follow(self, picture: np.ndarray, moved: np.ndarray, good: np.ndarray) -> Step:
        """The corners' places in ``picture`` (``following`` moved by the flow), and
        which of them the flow found and found back."""
        ref, now = self._ref[good], moved[good]
        if len(ref) < MIN_CORNERS:
            return self.lose()
        fit = self._fit(ref, now)
        if fit is None:
            return self.lose()
        homography, inliers = fit
        self.homography = homography
        self._ref, self._now = ref[inliers], now[inliers]
        if not self._in_picture():
            return self.lose()
        if len(self._now) < REFILL_BELOW:
            self._refill(picture)
        return Step("tracking", homography, int(inliers.sum()))

    def _fit(self, ref: np.ndarray, now: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """A plausible homography from ``ref`` to ``now``, and which points agree."""
        homography, inliers = cv2.findHomography(ref, now, cv2.RANSAC, RANSAC_PX)
        if homography is None or inliers is None:
            return None
        agree = inliers.ravel().astype(bool)
        if agree.sum() < MIN_CORNERS or not self._plausible(homography):
            return None
        return homography, agree

    def _plausible(self, homography: np.ndarray) -> bool:
        """Not folded, not scaled past ``MAX_SCALE``, little perspective."""
        place = _apply(homography, self.corners)
        if not cv2.isContourConvex(np.round(place).astype(np.int32).reshape(-1, 1, 2)):
            return False
        before = cv2.contourArea(self.corners)
        after = cv2.contourArea(place)
        if before <= 0 or not 1 / MAX_SCALE**2 <= after / before <= MAX_SCALE**2:
            return False
        side = min(self.size)
        return bool(abs(homography[2, 0]) * side < MAX_PERSPECTIVE * side
                    and abs(homography[2, 1]) * side < MAX_PERSPECTIVE * side)

    def _in_picture(self) -> bool:
        """Whether some of the region's place is in the picture (its centre within)."""
        place = self.where
        if place is None:
            return False
        cx, cy = place.mean(axis=0)
        w, h = self.size
        return bool(0 <= cx < w and 0 <= cy < h)

    def _reacquire(self, picture: np.ndarray, features: Features) -> Step:
        """Look for the pinned region in the whole picture."""
        if self._ref_descriptors is None or len(self._ref_keypoints) < MIN_REACQUIRE_INLIERS:
            return self._lost()
        keypoints, descriptors = features.of(picture)
        if descriptors is None or len(keypoints) < MIN_REACQUIRE_INLIERS:
            return self._lost()
        pairs = self._matcher.knnMatch(self._ref_descriptors, descriptors, k=2)
        good = [p[0] for p in pairs if len(p) == 2 and p[0].distance < RATIO * p[1].distance]
        if len(good) < MIN_REACQUIRE_INLIERS:
            return self._lost()
        ref = self._ref_keypoints[[m.queryIdx for m in good]]
        now = np.array([keypoints[m.trainIdx].pt for m in good], np.float32)
        homography, inliers = cv2.findHomography(ref, now, cv2.RANSAC, RANSAC_PX)
        if (homography is None or inliers is None
                or inliers.sum() < MIN_REACQUIRE_INLIERS or not self._plausible(homography)):
            return self._lost()
        # RANSAC's fit is the best of a few samples' guesses: fitted again to all the
        # points that agree with it (least squares), it is as good as they are.
        agree = inliers.ravel().astype(bool)
        refined, _ = cv2.findHomography(ref[agree], now[agree], 0)
        if refined is not None and self._plausible(refined):
            homography = refined
        self.homography = homography
        self.state = "tracking"
        self._ref = self._now = np.empty((0, 2), np.float32)
        self._refill(picture)
        if len(self._now) < MIN_CORNERS or not self._in_picture():
            return self.lose()
        return Step("tracking", homography, int(inliers.sum()))


class Features:
    """A picture's ORB keypoints and descriptors, found once, the first time a lost
    region looks for itself in it."""

    def __init__(self) -> None:
        self._orb = cv2.ORB.create(ORB_FEATURES_FRAME, fastThreshold=10)
        self._of: tuple[int, Any] | None = None  # (the picture's id, what was found)

    def of(self, picture: np.ndarray) -> Any:
        if self._of is None or self._of[0] != id(picture):
            self._of = (id(picture), self._orb.detectAndCompute(picture, None))
        return self._of[1]


def advance(regions: dict[str, RegionTracker], before: np.ndarray | None,
            after: np.ndarray, features: Features | None = None) -> dict[str, Step]:
    """Follow ``regions`` from the picture ``before`` into ``after``: one optical flow
    for the corners of all those being followed; the lost ones look for themselves."""
    steps: dict[str, Step] = {}
    moving = {key: points for key, region in regions.items()
              if (points := region.following) is not None and len(points) >= MIN_CORNERS}
    if moving and before is not None:
        start = np.vstack(list(moving.values())).reshape(-1, 1, 2).astype(np.float32)
        moved, found = _flow(before, after, start)
        back, found_back = _flow(after, before, moved)
        disagreement = np.linalg.norm((back - start).reshape(-1, 2), axis=1)
        good = (found.ravel() == 1) & (found_back.ravel() == 1) & (disagreement < FB_MAX_PX)
        moved = moved.reshape(-1, 2)
        at = 0
        for key, points in moving.items():
            n = len(points)
            steps[key] = regions[key].follow(after, moved[at:at + n], good[at:at + n])
            at += n
    features = features or Features()
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

    def update(self, picture: np.ndarray) -> dict[str, Step]:
        """Follow every region into ``picture`` (grayscale, one size throughout)."""
        steps = advance(self.regions, self._picture, picture, self._features)
        self._picture = picture
        return steps
