"""Re-encoding is released with its viewers: real aiortc peers through the real server,
an H.264 publisher and viewers that take VP8 only."""

from __future__ import annotations

import asyncio
import gc
import threading
import weakref
from typing import Any

from tests.conftest import Server
from tests.media.peers import MediaClient
from tests.media.test_forwarding import _two_parties
from videoassist.appkeys import MEDIA
from videoassist.media.router import MediaRouter
from videoassist.media.transcode import DecodedFeed, TranscodeTrack


def _decoding_threads(publication_id: str) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith(f"decode-{publication_id}")]


async def _gone(router: MediaRouter, client: MediaClient) -> None:
    await client.close()
    async with asyncio.timeout(5):
        while client.participant_id in router.sessions:
            await asyncio.sleep(0.02)


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
    staff_token, customer_token, job_id = await _two_parties(server)
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
            slot = router.sessions[viewer.participant_id].subscriptions[publication.id]
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
        assert _alive({k: v for k, v in refs.items() if k.endswith("0")}) == []
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
        assert _alive(refs) == []
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
