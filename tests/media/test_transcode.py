"""Re-encoding is released with its viewers: real aiortc peers through the real server,
an H.264 publisher and viewers that take VP8 only."""

from __future__ import annotations

import asyncio
import fractions
import gc
import threading
import weakref
from typing import Any

import av
import numpy as np

from tests.support.clips import video_clip
from tests.support.peers import MediaClient
from tests.support.server import Server, two_parties
from videoassist.appkeys import MEDIA
from videoassist.media.publication import Publication
from videoassist.media.router import MediaRouter
from videoassist.media.transcode import DecodedFeed, TranscodeTrack, copy_picture


def _decoding_threads(publication_id: str) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith(f"decode-{publication_id}")]


async def _gone(router: MediaRouter, client: MediaClient) -> None:
    """The client leaves; until the server has closed its side of the connection (the
    session leaves the router first, then closes: its senders stop, their tasks end
    and let go of their tracks)."""
    pc = router.sessions[client.participant_id].pc
    await client.close()
    async with asyncio.timeout(10):
        while client.participant_id in router.sessions or pc.connectionState != "closed":
            await asyncio.sleep(0.02)


async def _freed(refs: dict[str, weakref.ref[Any]]) -> None:
    """Until nothing of these is left (a thread or task of theirs may take a few more
    turns of the loop to end once the connection is closed)."""
    try:
        async with asyncio.timeout(5):
            while _alive(refs):
                await asyncio.sleep(0.05)
    except TimeoutError:
        assert _alive(refs) == []


def _alive(refs: dict[str, weakref.ref[Any]]) -> list[str]:
    """What is still alive after a full collection, with what holds each."""
    gc.collect()
    alive = []
    for name, ref in refs.items():
        thing = ref()
        if thing is not None:
            holders = [getattr(getattr(h, "f_code", None), "co_qualname", type(h).__name__)
                       for h in gc.get_referrers(thing)]
            alive.append(f"{name} (held by {holders}, and this function)")
        del thing
    return alive


async def test_a_leaving_viewer_frees_its_encoder_and_the_last_one_the_decoder(
        server: Server) -> None:
    staff_token, customer_token, job_id = await two_parties(server)
    publisher = await MediaClient(server, customer_token, audio=False,
                                  video_codec="H264").start()
    viewers = [await MediaClient(server, staff_token, job_id, video=False, audio=False,
                                 offer_codecs=("VP8",)).start() for _ in range(2)]
    router = server.app[MEDIA]
    assert isinstance(router, MediaRouter)
    try:
        for viewer in viewers:
            await viewer.wait_remote(publisher.participant_id, "video", frames=10)
        publication = router.publication(publisher.participant_id)
        assert router.transcoded_streams == 2
        threads = _decoding_threads(publication.id)
        assert len(threads) == 1  # one decoder for both viewers
        refs: dict[str, weakref.ref[Any]] = {}
        for number, viewer in enumerate(viewers):
            slot = router.sessions[viewer.participant_id].outgoing.subscriptions[publication.id]
            track, transceiver = slot.source, slot.transceiver
            assert isinstance(track, TranscodeTrack)
            encoder = transceiver.sender._RTCRtpSender__encoder  # type: ignore[attr-defined]
            assert encoder is not None  # it did encode
            refs[f"track {number}"] = weakref.ref(track)
            refs[f"encoder {number}"] = weakref.ref(encoder)
            refs[f"sender {number}"] = weakref.ref(transceiver.sender)
        feed = track.feed
        assert isinstance(feed, DecodedFeed)
        del slot, track, transceiver, encoder

        await _gone(router, viewers[0])
        await _freed({k: v for k, v in refs.items() if k.endswith("0")})
        assert not feed.closed and len(feed.tracks) == 1 and threads[0].is_alive()
        still = viewers[1].remote(publisher.participant_id)
        assert still is not None
        frames = still.frames
        await viewers[1].wait_remote(publisher.participant_id, "video", frames=frames + 10)

        await _gone(router, viewers[1])
        async with asyncio.timeout(5):  # the decoding thread ends with its last viewer
            while threads[0].is_alive():
                await asyncio.sleep(0.02)
        assert feed.closed
        refs["feed"] = weakref.ref(feed)
        del feed
        await _freed(refs)
        room = router.rooms[next(iter(router.rooms))]
        assert publication.id not in room.feeds
        assert router.rooms  # the publisher is still in its call
        frames = publication.frames_in
        async with asyncio.timeout(5):
            while publication.frames_in < frames + 10:  # and nothing else stopped
                await asyncio.sleep(0.02)
    finally:
        for viewer in viewers:
            await viewer.close()
        await publisher.close()


def _visible(plane: Any) -> np.ndarray:
    rows = np.frombuffer(plane, np.uint8).reshape(-1, plane.line_size)
    return rows[:plane.height, :plane.width]


def test_a_copied_picture_has_its_originals_pixels_and_timing_at_any_size() -> None:
    for width, height in ((241, 135), (240, 136), (1280, 720)):
        picture = av.VideoFrame(width, height, "yuv420p")
        noise = np.random.default_rng(width)
        for plane in picture.planes:
            plane.update(noise.integers(0, 256, plane.buffer_size, dtype=np.uint8).tobytes())
        picture.pts, picture.time_base = 123_456, fractions.Fraction(1, 90_000)
        copy = copy_picture(picture)
        assert copy is not picture and (copy.width, copy.height) == (width, height)
        for original, copied in zip(picture.planes, copy.planes, strict=True):
            assert np.array_equal(_visible(original), _visible(copied))
        assert (copy.pts, copy.time_base) == (123_456, fractions.Fraction(1, 90_000))
        copy.pts = 7
        assert picture.pts == 123_456  # its own
    rgb = av.VideoFrame.from_ndarray(np.full((48, 64, 3), 200, np.uint8), format="rgb24")
    assert copy_picture(rgb).format.name == "yuv420p"  # what the encoder takes


async def _no_keyframe() -> bool:
    return True


async def test_each_transcoding_viewer_gets_a_picture_of_its_own_until_a_mute() -> None:
    # An odd size, as a browser's encoder makes when it scales down on a bad line.
    clip = video_clip(241, 135, frames=4)
    publication = Publication("p1-video-0", 1, "video", _no_keyframe)
    feed = DecodedFeed(publication)
    viewers = [TranscodeTrack(feed, f"p1-video-0-{n}") for n in range(3)]
    for index in range(3):
        publication.push("VP8", clip[index], 3_000 * index)
        pictures = [await asyncio.wait_for(viewer.recv(), 5) for viewer in viewers]
        assert len({id(picture) for picture in pictures}) == 3
        assert {picture.pts for picture in pictures} == {3_000 * index}
        first = _visible(pictures[0].planes[0])
        assert all(np.array_equal(first, _visible(p.planes[0])) for p in pictures[1:])
        # An encoder re-times its own picture in place; the others' stay as they were.
        pictures[0].pts, pictures[0].time_base = index, fractions.Fraction(1, 30)
        assert pictures[1].pts == pictures[2].pts == 3_000 * index

    publication.push("VP8", clip[3], 9_000)  # decoded, waiting for the encoders
    async with asyncio.timeout(5):
        while not all(viewer._queue.qsize() == 1 for viewer in viewers):
            await asyncio.sleep(0.01)
    publication.set_muted(True)  # then the camera is muted: none of it is sent
    assert all(viewer._queue.empty() and viewer.dropped == 1 for viewer in viewers)
    for viewer in viewers:
        viewer.stop()
    assert feed.closed
