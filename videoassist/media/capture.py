"""The capture tap: the newest picture of a live video track, decoded on demand.

Nothing is decoded while nobody captures. A capture decodes the frames kept since
the publication's last keyframe, with a fresh single-threaded decoder, in a worker
thread off the event loop. When that run is long (a phone may send a keyframe only
every few seconds), it asks the publisher for a keyframe and decodes from there.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

import av
import numpy as np

from videoassist.errors import Muted, Unavailable
from videoassist.media.decoding import DECODERS, decoder_for
from videoassist.media.publication import Publication

# Decoding costs ~1 ms a 360p frame here: a whole cached run (publication.GOP_MAX_FRAMES)
# stays within the 150 ms a snapshot may take; past it, ask for a fresh keyframe.
MAX_DECODE_FRAMES = 90
# Past this many frames since the keyframe, a capture also asks for a fresh keyframe
# and uses whichever picture is ready first (docs/performance.md, "Snapshots").
RACE_AFTER_FRAMES = 15
KEYFRAME_WAIT_S = 1.0


@dataclass(frozen=True)
class Capture:
    image: np.ndarray     # BGR, the full received resolution
    captured_at: float    # wall-clock time the server received the frame
    frame_index: int      # the frame's position in its publication
    timestamp: int = 0    # the frame's (``EncodedFrame.timestamp``): where pinned shapes are


async def capture(publication: Publication) -> Capture:
    """The newest picture; ``Muted`` for a muted camera, even one muted meanwhile."""
    if publication.kind != "video" or publication.closed:
        raise Unavailable("That camera is not live.")
    if publication.muted:
        raise Muted()
    frames = list(publication.gop)
    if not frames or len(frames) > MAX_DECODE_FRAMES:
        try:
            arrived = await publication.next_keyframe(KEYFRAME_WAIT_S)
        except TimeoutError:
            raise Unavailable("The camera sent no picture in time; try again.") from None
        if publication.muted:  # muted as the keyframe came
            raise Muted()
        # The cache may have been emptied since the keyframe came (a loss after it).
        frames = list(publication.gop) or [arrived]
    codec = frames[0].codec
    if codec not in DECODERS:
        raise Unavailable(f"Capturing {codec} video is not supported.")
    loop = asyncio.get_running_loop()
    decode = loop.run_in_executor(None, _decode_last, codec, [f.data for f in frames])
    if len(frames) > RACE_AFTER_FRAMES:
        # A long run takes ~2 ms a frame at 720p to decode: race it against a fresh
        # keyframe, which a browser sends within a round trip, and take what is first.
        # (A decode that loses still finishes in its thread; it cannot be interrupted.)
        keyframe = asyncio.ensure_future(publication.next_keyframe(KEYFRAME_WAIT_S))
        racers: set[asyncio.Future[Any]] = {decode, keyframe}
        await asyncio.wait(racers, return_when=asyncio.FIRST_COMPLETED)
        if not decode.done() and not keyframe.cancelled() and keyframe.exception() is None:
            fresh = list(publication.gop)
            if fresh and fresh[0].codec == codec:
                frames = fresh
                decode = loop.run_in_executor(
                    None, _decode_last, codec, [f.data for f in frames])
        if not keyframe.done():
            keyframe.cancel()
        elif not keyframe.cancelled():
            keyframe.exception()  # retrieved: a timeout here is not an error
    image = await decode
    if publication.muted:  # muted while the picture was decoded
        raise Muted()
    newest = frames[-1]
    captured_at = time.time() - (time.monotonic() - newest.received)
    return Capture(image, captured_at, newest.index, newest.timestamp)


def _decode_last(codec: str, payloads: list[bytes]) -> np.ndarray:
    decoder = decoder_for(codec)
    last = None
    for payload in payloads:
        for frame in decoder.decode(av.Packet(payload)):
            last = frame
    if last is None:
        raise Unavailable("The camera's picture could not be decoded.")
    image: np.ndarray = last.to_ndarray(format="bgr24")
    return image
