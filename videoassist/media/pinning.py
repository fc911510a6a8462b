"""The shapes pinned in one call (issue 23), and what each participant is told of
where they are.

A shape drawn on a participant's video may be pinned to what is under it: that video's
``trackfeed.TrackingFeed`` follows it, made with the first pin on it and closed with
the last unpin (nothing is decoded for a video nothing is pinned on). The call's feeds
share one thread (``ThreadPoolExecutor(1)``), made with the first feed and ended with
the last: at most one core of the machine per call, whatever is pinned. A call holds
at most ``MAX_PINNED`` pinned shapes; past it a pin is refused and the shape stays
where it was drawn.

For every tracked picture each participant gets ``annotation.track`` (the caller's
``Deliver`` sends it to each, signalling knowing who is in the call): the video's
participant (``target``), the RTP timestamp of that frame *as this participant receives
it* (each viewer's stream numbers its frames from its own origin: ``rtp_timestamp``;
null for the participant whose video it is, whose own picture is local, and for one
not receiving it), and each pinned shape's state and matrix (``trackfeed.Found``).
docs/protocol.md has the message.

When a participant's video ends, its pins wait (``CARRY_S``) for the same camera's next
video (a new peer connection after the network failed, a reloaded page): there they are
lost at first and found again by their features, as an object coming back into view
is. Past the wait they are off.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

from videoassist.errors import TooManyRequests
from videoassist.media.publication import Publication
from videoassist.media.trackfeed import Carried, Found, TrackingFeed, found_at, place

logger = logging.getLogger(__name__)

MAX_PINNED = 8  # pinned shapes in one call at once
# How long the pins on a participant's video wait, once it ends, for the same camera to
# start again (a new peer connection after the network failed, a reloaded page) before
# they are off.
CARRY_S = 30.0
# How long a snapshot waits for the picture tracked after the one it captured (the
# tracking thread a frame or two behind), to place pinned shapes between the two.
PLACE_WAIT_S = 0.5

# Sends a message to every participant of the call: given, for a participant id, the
# message for that participant.
Deliver = Callable[[Callable[[int], dict[str, Any]]], None]


class Timestamps(Protocol):
    """A viewer's numbering of the frames it receives (``outgoing.Outgoing``)."""

    def rtp_timestamp(self, publication: Publication, timestamp: int) -> int | None: ...

    def publication_timestamp(self, publication: Publication, rtp_timestamp: int,
                              near: int) -> int | None: ...


class Viewer(Protocol):
    """A participant's media session, as the pins need it (``session.MediaSession``)."""

    participant_id: int

    @property
    def outgoing(self) -> Timestamps: ...

    def send(self, message: dict[str, Any]) -> None: ...


@dataclass
class _Waiting:
    """Pins whose video ended, waiting for the camera's next (``CARRY_S``)."""

    carried: Carried
    deliver: Deliver
    ended: Publication
    timer: asyncio.TimerHandle


class Pins:
    def __init__(self, call_id: int, sessions: Mapping[int, Viewer]) -> None:
        self.call_id = call_id
        self._sessions = sessions
        self._executor: ThreadPoolExecutor | None = None
        self.feeds: dict[str, TrackingFeed] = {}  # by publication id
        self._deliver: dict[str, Deliver] = {}  # by publication id: the last pin's
        self.waiting: dict[int, _Waiting] = {}  # by participant id

    @property
    def pinned(self) -> int:
        return (sum(len(feed.pinned) for feed in self.feeds.values() if not feed.closed)
                + sum(len(waiting.carried.pinned) for waiting in self.waiting.values()))

    def pin(self, publication: Publication, key: str, shape: dict[str, Any],
            drawer: int | None, rtp_timestamp: int | None, deliver: Deliver) -> None:
        """Pin a shape on the publication's video, drawn by participant ``drawer`` on
        its frame of that RTP timestamp (as the drawer received it), if known; where
        its shapes are goes out through ``deliver``."""
        self._deliver[publication.id] = deliver
        feed = self._feed(publication)
        if key not in feed.pinned and self.pinned >= MAX_PINNED:
            raise TooManyRequests(f"At most {MAX_PINNED} shapes can be pinned in a call; "
                                  "unpin or remove one first.")
        feed.pin(key, shape, self._drawn_at(publication, drawer, rtp_timestamp))

    def _drawn_at(self, publication: Publication, drawer: int | None,
                  rtp_timestamp: int | None) -> int | None:
        """The publication's timestamp of the frame the drawer drew on."""
        session = None if drawer is None else self._sessions.get(drawer)
        if session is None or rtp_timestamp is None or not publication.gop:
            return None
        return session.outgoing.publication_timestamp(publication, rtp_timestamp,
                                                      publication.gop[-1].timestamp)

    def unpin(self, participant_id: int, key: str | None = None) -> None:
        """Unpin a shape (None: every shape) on the participant's video."""
        waiting = self.waiting.get(participant_id)
        if waiting is not None:
            waiting.carried.pinned.difference_update(
                [key] if key is not None else list(waiting.carried.pinned))
            if not waiting.carried.pinned:
                self._stop_waiting(participant_id)
        for publication_id, feed in list(self.feeds.items()):
            if feed.publication.participant_id != participant_id:
                continue
            for one in [key] if key is not None else list(feed.pinned):
                if one in feed.pinned:
                    feed.unpin(one)
            if not feed.pinned:
                self._close(publication_id)

    def _feed(self, publication: Publication, carried: Carried | None = None) -> TrackingFeed:
        feed = self.feeds.get(publication.id)
        if feed is not None and not feed.closed:
            return feed
        if self._executor is None:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix=f"track-{self.call_id}")
        feed = self.feeds[publication.id] = TrackingFeed(
            publication, self._executor,
            lambda timestamp, found: self._report(publication, timestamp, found), carried)
        feed.start()
        logger.info("[call %d] tracking %s", self.call_id, publication.id)
        return feed

    def _close(self, publication_id: str) -> None:
        feed = self.feeds.pop(publication_id, None)
        self._deliver.pop(publication_id, None)
        if feed is not None:
            feed.close()
            logger.info("[call %d] no longer tracking %s", self.call_id, publication_id)
        if not self.feeds and self._executor is not None:
            self._executor.shutdown(wait=False)
            self._executor = None

    def published(self, publication: Publication, replaces: Publication | None) -> None:
        """A participant's camera started (again): the pins on its previous video (that
        ended, or that this one ``replaces``) go on on this one, each found again by its
        features."""
        if publication.kind != "video":
            return
        if replaces is not None:
            self.ended(replaces)
        waiting = self.waiting.pop(publication.participant_id, None)
        if waiting is None:
            return
        waiting.timer.cancel()
        self._deliver[publication.id] = waiting.deliver
        self._feed(publication, waiting.carried)
        logger.info("[call %d] %d pins carried from %s", self.call_id,
                    len(waiting.carried.pinned), waiting.ended.id)

    def ended(self, publication: Publication) -> None:
        """The publication is gone: its pins wait ``CARRY_S`` for the camera's next
        (``published``), then are off."""
        feed = self.feeds.get(publication.id)
        if feed is None:
            return
        deliver = self._deliver.get(publication.id)
        carried = feed.carry()
        self._close(publication.id)
        if deliver is None or not carried.pinned:
            return
        self._stop_waiting(publication.participant_id)
        timer = asyncio.get_running_loop().call_later(
            CARRY_S, self._stop_waiting, publication.participant_id)
        self.waiting[publication.participant_id] = _Waiting(carried, deliver, publication, timer)

    def _stop_waiting(self, participant_id: int) -> None:
        """Pins that waited for a camera are off (those still pinned: everyone told)."""
        waiting = self.waiting.pop(participant_id, None)
        if waiting is None:
            return
        waiting.timer.cancel()
        shapes = [{"id": key, "state": "off", "matrix": None}
                  for key in sorted(waiting.carried.pinned)]
        if shapes:
            self._send(waiting.deliver, waiting.ended, None, shapes)

    def _report(self, publication: Publication, timestamp: int,
                found: dict[str, Found]) -> None:
        deliver = self._deliver.get(publication.id)
        if deliver is None:
            return
        shapes = [{"id": key, "state": f.state,
                   "matrix": None if f.matrix is None else list(f.matrix)}
                  for key, f in found.items()]
        self._send(deliver, publication, timestamp, shapes)
        feed = self.feeds.get(publication.id)
        if feed is not None and not feed.pinned:  # its pins had nothing to follow
            self._close(publication.id)

    def _send(self, deliver: Deliver, publication: Publication, timestamp: int | None,
              shapes: list[dict[str, Any]]) -> None:
        def message_for(participant_id: int) -> dict[str, Any]:
            session = self._sessions.get(participant_id)
            rtp = (None if session is None or timestamp is None
                   or participant_id == publication.participant_id
                   else session.outgoing.rtp_timestamp(publication, timestamp))
            return {"type": "annotation.track", "target": publication.participant_id,
                    "rtp_timestamp": rtp, "shapes": shapes}

        deliver(message_for)

    async def placed(self, publication: Publication, shapes: list[dict[str, Any]],
                     timestamp: int) -> list[dict[str, Any]]:
        """``shapes`` as drawn on the publication's frame of that timestamp: each pinned
        one where the tracking put it in that frame (``trackfeed.found_at``: it waits, up
        to ``PLACE_WAIT_S``, for a picture tracked after it), one whose object was out of
        view left out; the others as they are."""
        feed = self.feeds.get(publication.id)
        if feed is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(PLACE_WAIT_S):
                    await feed.tracked_from(timestamp)
        found = None if feed is None else found_at(feed.recent, timestamp)
        out = []
        for shape in shapes:
            where = None if found is None or not shape.get("pinned") else found.get(shape["id"])
            drawn = shape if where is None else place(shape, where)
            if drawn is not None:
                out.append(drawn)
        return out

    def close(self) -> None:
        for waiting in self.waiting.values():
            waiting.timer.cancel()
        self.waiting.clear()
        for publication_id in list(self.feeds):
            self._close(publication_id)
