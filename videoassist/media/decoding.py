"""The one way the server decodes video it forwards: which RTP codecs it can decode,
and a decoder for one of them. Every decoder is single-threaded (PyAV gives a thread
per core by default): each runs in a thread of its own off the event loop (a capture's
worker, a transcoding feed's thread), and a call's decoding must not take every core
from the others' forwarding."""

from __future__ import annotations

import av

# RTP codec name: FFmpeg decoder.
DECODERS = {"VP8": "vp8", "H264": "h264"}


def decoder_for(codec: str, *, loop_filter: bool = True) -> av.VideoCodecContext:
    """A fresh single-threaded decoder for an RTP video codec in ``DECODERS``
    (KeyError for another). ``loop_filter`` False: pictures for a machine to look at,
    not a person (tracking): the deblocking filter skipped, a third of VP8's decoding
    time at 720p, its blocking edges no matter at the size tracking works at."""
    decoder = av.CodecContext.create(DECODERS[codec], "r")
    assert isinstance(decoder, av.VideoCodecContext)
    decoder.thread_count = 1
    if not loop_filter:
        decoder.options = {"skip_loop_filter": "all"}
    return decoder
