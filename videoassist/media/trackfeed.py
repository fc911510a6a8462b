"""One publication's video, followed for the shapes pinned on it (issue 23).

A ``TrackingFeed`` subscribes to the publication only while a shape is pinned on it
(the call's ``pinning.Pins`` makes and closes it): nothing is decoded otherwise. Every
frame is decoded (a frame depends on those before it), in the call's one tracking
thread, with a decoder for machines (``decoding.decoder_for(loop_filter=False)``);
pictures at most ``MAX_RATE`` a second are scaled down (``tracking.working_picture``)
and the pinned regions followed in them (``tracking.Tracking``). Each tracked picture's
result goes back to the event loop, with the frame's timestamp, to ``report``.

A pin names the frame the shape was drawn on (its timestamp, as the drawer's video
showed it); the last ``HISTORY`` tracked pictures are kept, so the region is taken from
that picture and followed up to the newest at once. Pins and unpins reach the thread
with the next frame, in order.

Cost stays bounded: the thread decodes and tracks one frame at a time, off the event
loop; when frames wait (``DEGRADE_AT``), pictures are decoded but not tracked until it
has caught up (a lower rate, never a delay to forwarding, which does not wait on
this); a second's worth waiting (``QUEUE_FRAMES``) are dropped, and decoding starts
again at a keyframe, asked for.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

import av
import cv2
import numpy as np

from videoassist.media.decoding import DECODERS, decoder_for
from videoassist.media.frames import EncodedFrame
from videoassist.media.publication import Publication
from videoassist.media.tracking import Step, Tracking, fitted, working_picture

logger = logging.getLogger(__name__)

# Tracked pictures a second at most: at 15 a 720p call took 0.19 cores here, at 10 the
# error stays a fraction of its target (docs/performance.md, Tracking), and browsers
# blend the matrices between tracked pictures for the frames between them (pins.js).
MAX_RATE = 10.0
HISTORY = 15  # tracked pictures kept to pin on (a second and a half at MAX_RATE)
QUEUE_FRAMES = 30
DEGRADE_AT = 3  # frames waiting from which pictures are decoded but not tracked

# A label's region when pinned: it starts at its point and runs right (shares of the
# picture: about a short label's size on a phone's picture).
LABEL_SIZE = (0.2, 0.06)


@dataclass(frozen=True)
class Found:
    """Where a pinned shape is in one picture: ``matrix`` (3 x 3, row by row) maps the
    picture it was pinned on to this one, both in shares of the picture's width and
    height; None unless ``state`` is tracking."""

    state: str
    matrix: tuple[float, ...] | None


Report = Callable[[int, dict[str, Found]], None]


@dataclass(frozen=True)
class _Pin:
    key: str
    shape: dict[str, Any] | None  # as ``snapshots.shapes.check_shape`` gives; None: unpin
    at: int | None  # the timestamp of the frame it was drawn on


def box_of(shape: dict[str, Any], width: int, height: int) -> tuple[float, ...]:
    """The shape's bounding box in pixels of a picture ``width`` x ``height``: a
    circle's round in pixels (docs/protocol.md, "Drawing shapes"), a label's from its
    point to the right."""
    points = np.array(shape["points"], float) * (width, height)
    if shape["kind"] == "circle":
        centre, edge = points
        r = float(np.linalg.norm(edge - centre))
        return (centre[0] - r, centre[1] - r, centre[0] + r, centre[1] + r)
    if shape["kind"] == "text":
        x, y = points[0]
        return (x, y - LABEL_SIZE[1] * height, x + LABEL_SIZE[0] * width, y)
    (x0, y0), (x1, y1) = points.min(axis=0), points.max(axis=0)
    return (float(x0), float(y0), float(x1), float(y1))


@dataclass
class Carried:
    """What a feed's pins take to the next video of the same camera (``carry``): the
    regions followed (each with its pin's features, to find it again), the size
    pictures were tracked at, the shapes still pinned, and the feed's task, whose end
    means its thread is done with them."""

    tracking: Tracking
    size: tuple[int, int] | None
    pinned: set[str]
    done: asyncio.Task[None] | None


class TrackingFeed:
    def __init__(self, publication: Publication, executor: Executor, report: Report,
                 carried: Carried | None = None) -> None:
        self.publication = publication
        self._executor = executor
        self._report = report
        self._queue: asyncio.Queue[EncodedFrame | None] = asyncio.Queue(QUEUE_FRAMES)
        self._waiting_for_keyframe = True
        self._pins: list[_Pin] = []  # for the thread, with the next frame
        self.pinned: set[str] = set()
        # The thread's alone from here on.
        self._decoder: av.VideoCodecContext | None = None
        self._tracking = Tracking()
        self._size: tuple[int, int] | None = None  # the tracked pictures' (height, width)
        self._history: collections.deque[tuple[int, np.ndarray]] = collections.deque(
            maxlen=HISTORY)
        self._last_tracked: int | None = None
        self._task: asyncio.Task[None] | None = None
        self._carried = carried
        if carried is not None:
            self.pinned = set(carried.pinned)
            self._tracking, self._size = carried.tracking, carried.size
        # Where the pinned shapes were in the last tracked pictures, by timestamp (on the
        # loop: a snapshot draws them where they are in the frame it captured).
        self.recent: collections.deque[tuple[int, dict[str, Found]]] = collections.deque(
            maxlen=HISTORY * 3)
        self._news = asyncio.Event()  # set at each tracked picture
        self.tracked = 0
        self.dropped = 0
        self.closed = False

    def start(self) -> None:
        if self._task is None and not self.closed:
            self._task = asyncio.create_task(self._run())
            self.publication.subscribe(self)  # replays the cached run: a keyframe first

    def pin(self, key: str, shape: dict[str, Any], at: int | None) -> None:
        """Pin the shape ``key`` (drawn on the frame of timestamp ``at``, if known)."""
        self.pinned.add(key)
        self._pins.append(_Pin(key, shape, at))

    def unpin(self, key: str) -> None:
        self.pinned.discard(key)
        self._pins.append(_Pin(key, None, None))

    async def tracked_from(self, timestamp: int) -> None:
        """Return once a picture at or after ``timestamp`` is tracked, or the feed
        closes."""
        while not self.closed and not any(at >= timestamp for at, _ in self.recent):
            self._news.clear()
            await self._news.wait()

    # -- the publication's side (as a viewer's track) ------------------------------

    def offer(self, frame: EncodedFrame) -> None:
        if self.closed:
            return
        if self._waiting_for_keyframe:
            if not frame.keyframe:
                return
            self._waiting_for_keyframe = False
        if self._queue.full():  # a second behind: start again at a keyframe
            self._restart()
            return
        self._queue.put_nowait(frame)

    def replay(self, frames: list[EncodedFrame], now: float) -> None:
        for frame in frames:
            self.offer(frame)

    def discard(self) -> None:
        """The publisher muted: start again at a keyframe when it comes back."""
        self._drop_queued()

    def end(self) -> None:
        self.close()

    def carry(self) -> Carried:
        """The pins, to go on on the camera's next video (then ``close`` this feed)."""
        return Carried(self._tracking, self._size, set(self.pinned), self._task)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._news.set()
        self.publication.unsubscribe(self)
        self._drop_queued()
        if self._task is not None:
            self._queue.put_nowait(None)

    def _restart(self) -> None:
        self._drop_queued()
        self.publication.want_keyframe()

    def _drop_queued(self) -> None:
        while not self._queue.empty():
            if self._queue.get_nowait() is not None:
                self.dropped += 1
        self._waiting_for_keyframe = True

    # -- the tracking thread -----------------------------------------------------

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        if (carried := self._carried) is not None:
            if carried.done is not None:  # the previous feed's thread lets go of them
                await asyncio.wait([carried.done])
            for key in set(self._tracking.regions) - carried.pinned:  # unpinned meanwhile
                self._tracking.unpin(key)
            self._tracking.restart()
            self._carried = None
        while (frame := await self._queue.get()) is not None:
            pins, self._pins = self._pins, []
            track = self._queue.qsize() < DEGRADE_AT or bool(pins)
            try:
                found = await loop.run_in_executor(self._executor, self._work, frame, pins,
                                                   track)
            except (av.error.FFmpegError, ValueError) as exc:
                logger.info("%s decoding for tracking failed, waiting for a keyframe: %s",
                            self.publication.log_prefix, exc)
                self._decoder = None
                self._pins = pins + self._pins  # applied with the next picture
                self._restart()
                continue
            except cv2.error:  # a picture tracking cannot take: not pinned after all
                logger.exception("%s tracking failed, its pins are off",
                                 self.publication.log_prefix)
                self._tracking = Tracking()  # the thread is between frames
                self._history.clear()
                off = {key: Found("off", None) for key in self.pinned}
                self.pinned.clear()
                if not self.closed:
                    self._report(frame.timestamp, off)
                continue
            if found is None:
                self.publication.counters.untracked_pictures += not track
            elif not self.closed:
                for key, place in found.items():
                    if place.state == "off":  # nothing to follow: not pinned after all
                        self.pinned.discard(key)
                self.publication.counters.tracking_delay(
                    self.publication.clock() - frame.received)
                self.recent.append((frame.timestamp, found))
                self._news.set()
                self._report(frame.timestamp, found)

    def _work(self, frame: EncodedFrame, pins: list[_Pin], track: bool
              ) -> dict[str, Found] | None:
        """In the thread: decode the frame; track its picture if it is time (and
        ``track``), or if pins wait; None if it was not tracked."""
        if self._decoder is None or self._decoder.name != DECODERS[frame.codec]:
            self._decoder = decoder_for(frame.codec, loop_filter=False)
        pictures = self._decoder.decode(av.Packet(frame.data))
        if not pictures:
            return None
        step_ticks = frame.clock_rate / MAX_RATE * 0.9  # a little early is on time
        due = self._last_tracked is None or frame.timestamp - self._last_tracked >= step_ticks
        if not pins and not (due and track):
            return None
        picture = working_picture(pictures[-1])
        turned: dict[str, Found] = {}
        if self._size is not None and (same := fitted(picture, self._size)) is not None:
            picture = same
        elif self._size is not None:  # turned: another picture, where nothing is pinned
            logger.info("%s the picture turned (%dx%d): its pins are off",
                        self.publication.log_prefix, picture.shape[1], picture.shape[0])
            turned = {key: Found("off", None) for key in self._tracking.regions}
            self._tracking = Tracking()
            self._history.clear()
        self._size = picture.shape[:2]
        self._last_tracked = frame.timestamp
        self.tracked += 1
        steps = self._tracking.update(picture)
        self._history.append((frame.timestamp, picture))
        found = {key: _found(step, picture) for key, step in steps.items()}
        for pin in pins:
            if pin.shape is None:
                self._tracking.unpin(pin.key)
                found.pop(pin.key, None)
                continue
            found[pin.key] = self._pin(pin, picture)
        return turned | found

    def _pin(self, pin: _Pin, picture: np.ndarray) -> Found:
        """Pin on the kept picture the shape was drawn on (the newest not after it),
        followed to this one; without one, on this one. Where there is nothing to follow
        under it, the shape is not pinned: ``off``, drawn where it was drawn."""
        assert pin.shape is not None
        kept = list(self._history)
        start = len(kept) - 1
        if pin.at is not None:
            for i, (timestamp, _) in enumerate(kept):
                if timestamp <= pin.at:
                    start = i
        h, w = picture.shape
        x0, y0, x1, y1 = box_of(pin.shape, w, h)
        region = self._tracking.pin(pin.key, (x0, y0, x1, y1), [p for _, p in kept[start:]])
        if region.blank:
            self._tracking.unpin(pin.key)
            return Found("off", None)
        return _found(Step(region.state, region.homography, 0), picture)


def found_at(recent: collections.deque[tuple[int, dict[str, Found]]], timestamp: int
             ) -> dict[str, Found] | None:
    """Where the pinned shapes were in the frame of ``timestamp``: tracked in it, or
    between the tracked pictures around it (the matrices blended by time: pictures a
    fifteenth of a second apart), or in the nearest tracked one; None if none was
    tracked."""
    before = max(((at, f) for at, f in recent if at <= timestamp), default=None,
                 key=lambda item: item[0])
    after = min(((at, f) for at, f in recent if at >= timestamp), default=None,
                key=lambda item: item[0])
    if before is None or after is None or before[0] == after[0]:
        nearest = before or after
        return None if nearest is None else nearest[1]
    share = (timestamp - before[0]) / (after[0] - before[0])
    blended = {}
    for key, first in before[1].items():
        second = after[1].get(key)
        if second is None or first.matrix is None or second.matrix is None:
            blended[key] = first if share < 0.5 or second is None else second
            continue
        matrix = (1 - share) * np.array(first.matrix) + share * np.array(second.matrix)
        blended[key] = Found("tracking", tuple(float(v) for v in matrix))
    return blended


def place(shape: dict[str, Any], found: Found) -> dict[str, Any] | None:
    """A pinned shape with its points where ``found`` puts them (within the picture);
    None if its object is not in view."""
    if found.matrix is None:
        return None if found.state == "lost" else shape
    matrix = np.array(found.matrix).reshape(3, 3)
    points = np.array(shape["points"], float)
    mapped = np.hstack([points, np.ones((len(points), 1))]) @ matrix.T
    mapped = np.clip(mapped[:, :2] / mapped[:, 2:3], 0.0, 1.0)
    return {**shape, "points": [[round(float(x), 6), round(float(y), 6)] for x, y in mapped]}


def _found(step: Step, picture: np.ndarray) -> Found:
    """A step in shares of the picture."""
    if step.homography is None:
        return Found(step.state, None)
    h, w = picture.shape
    scale = np.diag([w, h, 1.0])
    shares = np.linalg.inv(scale) @ step.homography @ scale
    shares /= shares[2, 2]
    return Found(step.state, tuple(round(float(v), 6) for v in shares.ravel()))
