"""Re-encoding, only where forwarding cannot serve a viewer.

The media plane forwards encoded frames (see ``forward``). It re-encodes video when
a viewer shares no codec with the publisher (say an H.264-only phone watching a VP8
camera), which the router counts and logs, or for every viewer when
``media_transcode = "always"`` (aiortc's own behaviour, kept for comparison in
``scripts/bench.py``). Audio is always forwarded: Opus is mandatory in WebRTC.

One ``DecodedFeed`` per publication decodes each frame once, in one worker thread of
its own (a single-threaded decoder), for all its transcoding viewers; each viewer's
aiortc sender encodes the pictures for itself, in aiortc's executor. Each viewer gets
a picture of its own, copied in the feed's thread: an encoder re-times the picture it
is given in place (PyAV rebases its pts to the encoder's time base) and sets its
picture type, and a viewer's slot shifts its pts (``slot.SlotTrack``), so one object
shared between viewers would carry one viewer's timing into another's. Nothing is
decoded while no viewer transcodes: a feed, its thread and its decoder go with its
last viewer (the room holds feeds weakly), a viewer's encoder with that viewer. Every
queue is bounded: a slow viewer loses its own pictures, a slow decoder skips to the
next keyframe.
"""

from __future__ import annotations

import asyncio
import fractions
import logging
from concurrent.futures import ThreadPoolExecutor

import av
import numpy as np

from videoassist.media.decoding import DECODERS, decoder_for
from videoassist.media.forward import QueuedTrack
from videoassist.media.frames import EncodedFrame
from videoassist.media.publication import Publication

logger = logging.getLogger(__name__)

FEED_QUEUE_FRAMES = 30    # one second at 30 fps waiting for the decoder
VIEWER_QUEUE_FRAMES = 3   # decoded pictures waiting for one viewer's encoder


class DecodedFeed:
    """Decodes one publication's video once for all the viewers that need pictures."""

    def __init__(self, publication: Publication) -> None:
        self.publication = publication
        self.tracks: set[TranscodeTrack] = set()
        self._queue: asyncio.Queue[EncodedFrame | None] = asyncio.Queue(FEED_QUEUE_FRAMES)
        self._executor = ThreadPoolExecutor(1, thread_name_prefix=f"decode-{publication.id}")
        self._decoder: av.VideoCodecContext | None = None
        self._waiting_for_keyframe = True
        self._task: asyncio.Task[None] | None = None
        self.decoded = 0
        self.dropped = 0
        self.errors = 0
        self.closed = False

    def attach(self, track: TranscodeTrack) -> None:
        self.tracks.add(track)
        if self._task is None and not self.closed:
            self._task = asyncio.create_task(self._run())
            self.publication.subscribe(self)  # replays the cached keyframe run to us

    def detach(self, track: TranscodeTrack) -> None:
        self.tracks.discard(track)
        if not self.tracks:
            self.close()

    # -- the publication's side (the same calls a ForwardTrack takes) --------------

    def offer(self, frame: EncodedFrame) -> None:
        if self.closed:
            return
        if self._waiting_for_keyframe:
            if not frame.keyframe:
                self.dropped += 1
                return
            self._waiting_for_keyframe = False
        if self._queue.full():  # the decoder fell a second behind: start again
            self._restart()
            return
        self._queue.put_nowait(frame)

    def replay(self, frames: list[EncodedFrame], now: float) -> None:
        """The cached run, offered at once as it always was: it is decoded here, and
        a viewer's encoder takes pictures from a queue of a few, so nothing of it
        bursts onto the network (the encoder sends its own frames as it makes them)."""
        for frame in frames:
            self.offer(frame)

    def discard(self) -> None:
        """The publisher muted: nothing decoded or queued before is encoded after."""
        self._drop_queued()
        for track in list(self.tracks):
            track.discard()

    def end(self) -> None:
        """The publication is gone."""
        for track in list(self.tracks):
            track.end()
        self.close()

    def _restart(self) -> None:
        self._drop_queued()
        self.publication.want_keyframe()

    def _drop_queued(self) -> None:
        """Drop the frames waiting for the decoder; start again at a keyframe."""
        while not self._queue.empty():
            self._queue.get_nowait()
            self.dropped += 1
        self._waiting_for_keyframe = True

    # -- decoding --------------------------------------------------------------

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while (frame := await self._queue.get()) is not None:
            viewers = len(self.tracks)
            try:
                pictures = await loop.run_in_executor(
                    self._executor, self._decode, frame, viewers)
            except (av.error.FFmpegError, ValueError) as exc:
                self.errors += 1
                logger.info("%s decoding failed, waiting for a keyframe: %s",
                            self.publication.log_prefix, exc)
                self._decoder = None
                self._restart()
                continue
            for copies in pictures:
                self._deliver(copies)

    def _deliver(self, copies: list[av.VideoFrame]) -> None:
        """One picture, a copy for each viewer; a viewer that came during the decode
        starts with the next one, and a mute during it sends nothing."""
        # Not inline in _run: its suspended frame would hold the last track it served.
        self.decoded += 1
        if self.publication.muted:
            return
        for track, picture in zip(list(self.tracks), copies, strict=False):  # see above
            track.put(picture)

    def _decode(self, frame: EncodedFrame, viewers: int) -> list[list[av.VideoFrame]]:
        """In the feed's worker thread: each picture, and a copy of it for each viewer
        after the first."""
        if self._decoder is None or self._decoder.name != DECODERS[frame.codec]:
            self._decoder = decoder_for(frame.codec)
        pictures = self._decoder.decode(av.Packet(frame.data))
        for picture in pictures:
            picture.pts = frame.timestamp
            picture.time_base = fractions.Fraction(1, frame.clock_rate)
        return [[picture] + [copy_picture(picture) for _ in range(viewers - 1)]
                for picture in pictures]

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.publication.unsubscribe(self)
        if self._task is not None:
            # Let go of it: once cancelled it keeps its traceback, whose frame holds
            # this feed and the last picture (a cycle the collector would have to find).
            self._task.cancel()
            self._task = None
        self._executor.shutdown(wait=False, cancel_futures=True)
        for track in list(self.tracks):
            track.end()
        self.tracks.clear()


def copy_picture(picture: av.VideoFrame) -> av.VideoFrame:
    """A picture of its own with the same pixels and timing, any size (odd ones too:
    ``to_ndarray`` refuses those for 4:2:0). Decoders give 8-bit planar 4:2:0, copied
    plane by plane; anything else is converted to it, which the encoder does anyway."""
    if picture.format.name not in ("yuv420p", "yuvj420p"):
        copy = picture.reformat(format="yuv420p")  # a new picture: the format differs
    else:
        copy = av.VideoFrame(picture.width, picture.height, picture.format.name)
        for source, target in zip(picture.planes, copy.planes, strict=True):
            rows = np.frombuffer(memoryview(source), np.uint8).reshape(-1, source.line_size)
            into = np.frombuffer(memoryview(target), np.uint8).reshape(-1, target.line_size)
            into[:target.height, :target.width] = rows[:source.height, :source.width]
    copy.pts = picture.pts
    if picture.time_base is not None:
        copy.time_base = picture.time_base
    return copy


class TranscodeTrack(QueuedTrack[av.VideoFrame]):
    """Decoded pictures of a publication for one viewer's sender, which encodes them."""

    def __init__(self, feed: DecodedFeed, track_id: str) -> None:
        super().__init__("video", track_id, VIEWER_QUEUE_FRAMES)
        self.feed = feed
        feed.attach(self)

    def put(self, picture: av.VideoFrame) -> None:
        if self.readyState != "live":
            return
        if self._queue.full():  # this viewer's encoder is behind: drop its oldest
            self._queue.get_nowait()
            self.dropped += 1
        self._queue.put_nowait(picture)

    def discard(self) -> None:
        """The publisher muted: the pictures waiting for the encoder are not sent."""
        self.dropped += self._drain()

    async def recv(self) -> av.VideoFrame:
        return await self._next()

    def stop(self) -> None:
        self.feed.detach(self)
        super().stop()

