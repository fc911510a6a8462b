"""Re-encoding, only where forwarding cannot serve a viewer.

The media plane forwards encoded frames (see ``forward``). It re-encodes video when
a viewer shares no codec with the publisher (say an H.264-only phone watching a VP8
camera), which the router counts and logs, or for every viewer when
``media_transcode = "always"`` (aiortc's own behaviour, kept for comparison in
``scripts/bench.py``). Audio is always forwarded: Opus is mandatory in WebRTC.

One ``DecodedFeed`` per publication decodes each frame once, in one worker thread of
its own (a single-threaded decoder), for all its transcoding viewers; each viewer's
aiortc sender encodes the pictures for itself, in aiortc's executor. Nothing is
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

from videoassist.media.forward import QueuedTrack
from videoassist.media.frames import EncodedFrame
from videoassist.media.publication import Publication

logger = logging.getLogger(__name__)

DECODERS = {"VP8": "vp8", "H264": "h264"}
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

    def end(self) -> None:
        """The publication is gone."""
        for track in list(self.tracks):
            track.end()
        self.close()

    def _restart(self) -> None:
        while not self._queue.empty():
            self._queue.get_nowait()
            self.dropped += 1
        self._waiting_for_keyframe = True
        self.publication.want_keyframe()

    # -- decoding --------------------------------------------------------------

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while (frame := await self._queue.get()) is not None:
            try:
                pictures = await loop.run_in_executor(self._executor, self._decode, frame)
            except (av.error.FFmpegError, ValueError) as exc:
                self.errors += 1
                logger.info("%s decoding failed, waiting for a keyframe: %s",
                            self.publication.log_prefix, exc)
                self._decoder = None
                self._restart()
                continue
            for picture in pictures:
                self._deliver(picture)

    def _deliver(self, picture: av.VideoFrame) -> None:
        # Not inline in _run: its suspended frame would hold the last track it served.
        self.decoded += 1
        for track in list(self.tracks):
            track.put(picture)

    def _decode(self, frame: EncodedFrame) -> list[av.VideoFrame]:
        """In the feed's worker thread."""
        if self._decoder is None or self._decoder.name != DECODERS[frame.codec]:
            decoder = av.CodecContext.create(DECODERS[frame.codec], "r")
            assert isinstance(decoder, av.VideoCodecContext)
            decoder.thread_count = 1  # PyAV defaults to a thread per core
            self._decoder = decoder
        pictures = self._decoder.decode(av.Packet(frame.data))
        for picture in pictures:
            picture.pts = frame.timestamp
            picture.time_base = fractions.Fraction(1, frame.clock_rate)
        return pictures

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

    async def recv(self) -> av.VideoFrame:
        return await self._next()

    def stop(self) -> None:
        self.feed.detach(self)
        super().stop()

