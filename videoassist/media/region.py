"""One pinned region followed from picture to picture (``RegionTracker``), as
``tracking.Tracking`` drives it: where the region drawn on one picture is in each
later one, a homography from the picture it was pinned on.

- At the pin, features of the region under the shape, grown to some context (a shape
  is often a circle drawn around a small thing, with too little texture inside to
  follow on its own): Shi-Tomasi corners to follow, and ORB keypoints with their
  descriptors to find the region again.
- Each picture: the corners follow by pyramidal Lucas-Kanade optical flow, kept only
  when the flow back from where they went returns where they were (forward-backward
  check); a homography from their places in the pinned picture to their places now,
  fitted robustly (RANSAC), is the region's transform. Corners that drop out are
  replaced by new ones found in the region's place now, mapped back to the pinned
  picture through the transform, so the fit is always against the pin. Every
  ``CHECK_EVERY`` pictures the pin's ORB features are matched in the picture, and
  where they say wins when it is ``CHECK_PX`` off (``check``).
- Too few corners agreeing, an implausible fit (folded, or scaled past ``MAX_SCALE``)
  or the region's place out of the picture: the region is lost. Where it was last
  seen is kept while that was well inside the picture, moved with the whole picture
  (``carry``). Every ``REACQUIRE_EVERY`` pictures the pin's ORB descriptors are matched
  against the whole picture's (Lowe's ratio test; the picture's found once for every
  lost region, ``Features``) and, with ``MIN_REACQUIRE_INLIERS`` agreeing in a robust
  fit, tracking starts again from there.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import cv2
import numpy as np

State = Literal["tracking", "lost"]

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
# While tracked, a region is checked against the pin's features this often (pictures),
# and moved to where they say if that is this many pixels or more from the flow's.
CHECK_EVERY = 10
CHECK_PX = 2.0
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


def flow(before: np.ndarray, after: np.ndarray, points: np.ndarray
          ) -> tuple[np.ndarray, np.ndarray]:
    """Where ``points`` (N x 1 x 2) of ``before`` went in ``after``, and which were found."""
    moved, found, _ = cv2.calcOpticalFlowPyrLK(before, after, points, None, winSize=WINDOW,
                                               maxLevel=LEVELS, criteria=CRITERIA)
    return np.asarray(moved), np.asarray(found)


def apply(homography: np.ndarray, points: np.ndarray) -> np.ndarray:
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
        self._checked = 0  # tracked pictures since the last ``check``
        if self.blank:
            self.homography = None

    @property
    def where(self) -> np.ndarray | None:
        """The region's corners in the last picture (4 x 2), None while lost."""
        return None if self.homography is None else apply(self.homography, self.corners)

    def _refill(self, picture: np.ndarray) -> None:
        """Add corners found in the region's place now, away from those kept."""
        assert self.homography is not None
        place = apply(self.homography, self.corners)
        mask = _mask(self.size, place)
        for x, y in self._now:
            cv2.circle(mask, (int(x), int(y)), 5, 0, -1)
        wanted = MAX_CORNERS - len(self._now)
        found = cv2.goodFeaturesToTrack(picture, wanted, 0.01, 6, mask=mask, blockSize=5)
        if found is None:
            return
        found = found.reshape(-1, 2).astype(np.float32)
        back = apply(np.linalg.inv(self.homography), found)
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
            return self.lost_now()
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
        return self.lost_now()

    def gone(self) -> None:
        """The video went (its camera starts again): lost, seen nowhere yet; found
        again by its features in the new video's pictures."""
        self.lose()
        self.last_seen = None

    def lost_now(self) -> Step:
        """Lost, in this picture: where it was last seen, if anywhere."""
        return Step("lost", self.last_seen, 0)

    def carry(self, motion: np.ndarray | None) -> None:
        """While lost: move where it was last seen with the whole picture's ``motion``
        (``picture_motion``); forget it when the motion could not be found (a blur, a
        swing) or takes it near the edge: its object has left, or may have."""
        if self.last_seen is None:
            return
        moved = None if motion is None else motion @ self.last_seen
        self.last_seen = moved if moved is not None and self._well_inside(moved) else None

    def _well_inside(self, homography: np.ndarray) -> bool:
        """Whether the region's centre there is inside the picture, ``EDGE`` of its size
        away from every side."""
        cx, cy = apply(homography, self.corners).mean(axis=0)
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
        place = apply(homography, self.corners)
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

    def _match(self, picture: np.ndarray, features: Features
               ) -> tuple[np.ndarray, int] | None:
        """Where the pin's ORB features are in ``picture``: a homography from the pinned
        picture, fitted robustly and then by least squares on the points that agree
        (RANSAC's fit is the best of a few samples' guesses), and how many agree."""
        if self._ref_descriptors is None or len(self._ref_keypoints) < MIN_REACQUIRE_INLIERS:
            return None
        keypoints, descriptors = features.of(picture)
        if descriptors is None or len(keypoints) < MIN_REACQUIRE_INLIERS:
            return None
        pairs = self._matcher.knnMatch(self._ref_descriptors, descriptors, k=2)
        good = [p[0] for p in pairs if len(p) == 2 and p[0].distance < RATIO * p[1].distance]
        if len(good) < MIN_REACQUIRE_INLIERS:
            return None
        ref = self._ref_keypoints[[m.queryIdx for m in good]]
        now = np.array([keypoints[m.trainIdx].pt for m in good], np.float32)
        homography, inliers = cv2.findHomography(ref, now, cv2.RANSAC, RANSAC_PX)
        if (homography is None or inliers is None
                or inliers.sum() < MIN_REACQUIRE_INLIERS or not self._plausible(homography)):
            return None
        agree = inliers.ravel().astype(bool)
        refined, _ = cv2.findHomography(ref[agree], now[agree], 0)
        if refined is not None and self._plausible(refined):
            homography = refined
        return homography, int(agree.sum())

    def _start_at(self, picture: np.ndarray, homography: np.ndarray) -> bool:
        """Follow the region from ``homography`` in ``picture``, with new corners;
        whether there are enough, in the picture."""
        self.homography = homography
        self.state = "tracking"
        self._ref = self._now = np.empty((0, 2), np.float32)
        self._refill(picture)
        return len(self._now) >= MIN_CORNERS and self._in_picture()

    def _reacquire(self, picture: np.ndarray, features: Features) -> Step:
        """Look for the pinned region in the whole picture."""
        found = self._match(picture, features)
        # As many agreeing as a check asks: a region coming back into view, blurred,
        # half out, is found a picture or two later rather than found wrong.
        if found is None or found[1] < 2 * MIN_REACQUIRE_INLIERS:
            return self.lost_now()
        homography, agreeing = found
        if not self._start_at(picture, homography):
            return self.lose()
        self._checked = CHECK_EVERY - 1  # checked again with the next picture
        return Step("tracking", homography, agreeing)

    def check(self, picture: np.ndarray, features: Features) -> bool:
        """Every ``CHECK_EVERY`` tracked pictures, the pin's features matched in this one:
        where they say the region is, when many agree and it is ``CHECK_PX`` or more off
        where the flow put it, wins. The flow's small errors add up, and a region found
        again from a few features, half in view, can start a little off; this corrects
        both within a second. Whether it moved the region."""
        self._checked += 1
        if self._checked < CHECK_EVERY or self.homography is None:
            return False
        self._checked = 0
        found = self._match(picture, features)
        if found is None or found[1] < 2 * MIN_REACQUIRE_INLIERS:
            return False
        homography = found[0]
        off = np.linalg.norm(apply(homography, self.corners)
                             - apply(self.homography, self.corners), axis=1).max()
        if off < CHECK_PX:
            return False
        kept = self.homography
        if self._start_at(picture, homography):
            return True
        self._start_at(picture, kept)
        return False
