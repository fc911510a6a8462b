"""Codecs: H.264 forwarded like VP8, a codec every participant takes chosen, and
re-encoding only for a viewer that shares none with the publisher (and counted)."""

from __future__ import annotations

import asyncio
import itertools
import threading

from tests.support.clips import CLIP_FRAMES
from tests.support.peers import MediaClient, Received
from tests.support.server import Server, ServerFactory, two_parties
from videoassist.appkeys import MEDIA
from videoassist.media.router import MediaRouter
from videoassist.media.transcode import TranscodeTrack


def _router(server: Server) -> MediaRouter:
    router = server.app[MEDIA]
    assert isinstance(router, MediaRouter)
    return router


def _received_codec(client: MediaClient, received: Received) -> str:
    """The codec the client's receiver negotiated for that track."""
    transceiver = next(t for t in client.pc.getTransceivers()
                       if t.receiver.track is received.track)
    return str(transceiver._codecs[0].mimeType)


def _in_order(received: Received, dropped: int = 0) -> None:
    """Ids go up by one a frame (a few may be lost), wrapping at the clip's end; more
    may be missing, ``dropped`` in all, where the server says it dropped them."""
    steps = [(b - a) % CLIP_FRAMES for a, b in itertools.pairwise(received.ids)]
    assert all(1 <= step < CLIP_FRAMES // 2 for step in steps), received.ids  # forwards
    assert sum(max(0, step - 3) for step in steps) <= dropped, (received.ids, dropped)


def _dropped_for(server: Server, viewer: MediaClient, publisher: MediaClient) -> int:
    """Pictures the server dropped on their way to a re-encoding viewer: its decoder
    or that viewer's encoder behind (on a busy machine), as designed: each skips
    rather than falls behind."""
    publication = _router(server).publication(publisher.participant_id)
    track = _router(server).sessions[viewer.participant_id].outgoing.subscriptions[
        publication.id].source
    assert isinstance(track, TranscodeTrack)
    return track.dropped + track.feed.dropped


async def test_h264_is_forwarded_as_received(server: Server) -> None:
    staff_token, customer_token, job_id = await two_parties(server)
    customer = await MediaClient(server, customer_token, video_codec="H264").start()
    expert = await MediaClient(server, staff_token, job_id, video=False, audio=False).start()
    try:
        video = await expert.wait_remote(customer.participant_id, "video", frames=30)
        _in_order(video)
        assert _received_codec(expert, video) == "video/H264"
        publication = _router(server).publication(customer.participant_id)
        assert publication.codec == "H264"
        assert _router(server).transcoded_streams == 0
    finally:
        await expert.close()
        await customer.close()


async def test_the_publisher_is_asked_for_a_codec_everyone_takes(server: Server) -> None:
    staff_token, customer_token, job_id = await two_parties(server)
    # The expert's browser takes VP8 only; the customer's phone prefers H.264 but has VP8.
    expert = await MediaClient(server, staff_token, job_id, video=False, audio=False,
                               offer_codecs=("VP8",)).start()
    customer = await MediaClient(server, customer_token, offer_codecs=("H264", "VP8")).start()
    try:
        video = await expert.wait_remote(customer.participant_id, "video", frames=30)
        _in_order(video)
        assert _router(server).publication(customer.participant_id).codec == "VP8"
        assert _received_codec(expert, video) == "video/VP8"
        assert _router(server).transcoded_streams == 0
    finally:
        await expert.close()
        await customer.close()


async def test_a_viewer_without_the_publishers_codec_gets_it_re_encoded(server: Server) -> None:
    staff_token, customer_token, job_id = await two_parties(server)
    customer = await MediaClient(server, customer_token, video_codec="H264").start()
    expert = await MediaClient(server, staff_token, job_id, video=False, audio=False,
                               offer_codecs=("VP8",)).start()
    try:
        video = await expert.wait_remote(customer.participant_id, "video", frames=30)
        # The barcodes survived decoding and re-encoding.
        _in_order(video, _dropped_for(server, expert, customer))
        assert _received_codec(expert, video) == "video/VP8"
        assert _router(server).transcoded_streams == 1
        audio = await expert.wait_remote(customer.participant_id, "audio", frames=10)
        assert _received_codec(expert, audio) == "audio/opus"
    finally:
        await expert.close()
        await customer.close()


async def test_always_mode_re_encodes_and_leaves_no_decoder_behind(
        server_factory: ServerFactory) -> None:
    server = await server_factory(media_transcode="always")
    staff_token, customer_token, job_id = await two_parties(server)
    customer = await MediaClient(server, customer_token).start()
    expert = await MediaClient(server, staff_token, job_id, video=False, audio=False).start()
    try:
        video = await expert.wait_remote(customer.participant_id, "video", frames=30)
        _in_order(video, _dropped_for(server, expert, customer))
        assert _router(server).transcoded_streams == 1
        decoders = [t for t in threading.enumerate() if t.name.startswith("decode-")]
        assert len(decoders) == 1  # one decoding thread for the publication
    finally:
        await expert.close()
        await customer.close()
    # The decoding thread and the room's (weak) hold on the feed go some turns of the
    # loop after the viewer, once the feed's task has ended: later on a busy machine.
    try:
        async with asyncio.timeout(5):
            while (any(t.name.startswith("decode-") for t in threading.enumerate())
                   or any(room.feeds for room in _router(server).rooms.values())):
                await asyncio.sleep(0.1)
    except TimeoutError:
        pass
    assert not [t.name for t in threading.enumerate() if t.name.startswith("decode-")]
    assert not any(room.feeds for room in _router(server).rooms.values())
