"""Taking, annotating again and reading snapshots.

A snapshot is the newest frame of a live camera (the media plane's capture tap),
with the shapes drawn on it at its full received resolution, encoded as JPEG and
sealed with the job's data key. The clean frame is sealed and kept too, so the
snapshot can be annotated again later as a new version. All image work (drawing,
JPEG, AES-GCM) runs in worker threads; at most ``MAX_CONCURRENT`` at a time, so a
burst of requests cannot take every core from the media it shares them with, and work
that queued behind others and whose requester left while it waited is dropped.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from videoassist.actors import Actor
from videoassist.errors import BadRequest, Gone, Unavailable
from videoassist.snapshots import render
from videoassist.snapshots.fonts import LabelFonts
from videoassist.snapshots.vault import Vault
from videoassist.storage import Store
from videoassist.storage.records import Author, Snapshot
from videoassist.storage.snapshots import NewImage
from videoassist.webhooks.events import Emit

logger = logging.getLogger(__name__)

MAX_CONCURRENT = 2
MAX_CAPTION_CHARS = 500


class Capturer(Protocol):
    """What the service needs of the media plane (``MediaRouter`` implements it)."""

    async def capture(self, participant_id: int) -> Any:
        """The newest picture of the participant's camera: ``.image`` (BGR numpy
        array), ``.captured_at`` (Unix seconds) and ``.timestamp`` (the frame's)."""

    async def placed(self, participant_id: int, shapes: list[dict[str, Any]],
                     timestamp: int) -> list[dict[str, Any]]:
        """``shapes`` as they are on the camera's frame of that timestamp: pinned ones
        where they were followed to (issue 23), those whose object was out of view
        left out."""


Wanted = Callable[[], bool]


def _always() -> bool:
    return True


def _check_wanted(queued: bool, wanted: Wanted, job_id: int) -> None:
    """Before drawing: work that had to queue behind others, whose requester left while
    it waited, is not done. (Work that could start at once is: the company keeps what
    was asked for, even when the call ended meanwhile.)"""
    if queued and not wanted():
        logger.info("[job %d] a queued snapshot was dropped: its requester has gone", job_id)
        raise Gone("The snapshot was not made: its requester has gone.")


@dataclass(frozen=True)
class Still:
    """A picture the camera's owner sent as a JPEG (a still, in stills mode), taken in
    place of the newest video frame, which is stale then."""

    jpeg: bytes
    captured_at: float  # Unix seconds when the server received it


@dataclass(frozen=True)
class Picture:
    """A camera's picture already in memory, decoded: the call's frozen frame
    (``signalling.freeze``), which a snapshot taken while it is frozen must be, to the
    pixel, and its JPEG as everyone in the call was shown it."""

    image: np.ndarray  # BGR
    captured_at: float  # Unix seconds when the server received the frame
    jpeg: bytes

    @property
    def width(self) -> int:
        return int(self.image.shape[1])

    @property
    def height(self) -> int:
        return int(self.image.shape[0])


@dataclass(frozen=True)
class _Captured:
    image: np.ndarray
    captured_at: float


@dataclass(frozen=True)
class _Rendered:
    frame: NewImage
    image: NewImage


class SnapshotService:
    def __init__(self, store: Store, vault: Vault, capturer: Capturer | None, jpeg_quality: int,
                 emit: Emit | None = None, *, fonts: LabelFonts | None = None) -> None:
        """``fonts`` draw labels; without them a snapshot with a label is refused
        (the CLI's export reads snapshots, and draws none)."""
        self._store = store
        self._vault = vault
        self._capturer = capturer
        self._quality = jpeg_quality
        self._emit = emit
        self._fonts = fonts
        self._work = asyncio.Semaphore(MAX_CONCURRENT)

    async def busy(self, job_id: int) -> bool:
        """Whether a snapshot of the job is being made, by this process or another
        (erasing waits for it)."""
        return await self._store.snapshots.in_progress(job_id)

    async def picture(self, participant_id: int, still: Still | None = None) -> Picture:
        """The camera's newest frame (or ``still``, decoded), with its JPEG: what a
        freeze shows everyone. Nothing is stored."""
        if self._capturer is None:
            raise Unavailable("Pictures are taken by the server that carries the call.")
        loop = asyncio.get_running_loop()
        if still is not None:
            async with self._work:
                image = await loop.run_in_executor(None, render.decode_jpeg, still.jpeg)
            return Picture(image, still.captured_at, still.jpeg)
        captured = await self._capturer.capture(participant_id)
        async with self._work:
            jpeg = await loop.run_in_executor(None, render.encode_jpeg, captured.image,
                                              self._quality)
        return Picture(captured.image, captured.captured_at, jpeg)

    async def take(self, job_id: int, call_id: int | None, author: Author, camera: Author,
                   shapes: list[dict[str, Any]], actor: Actor, wanted: Wanted = _always,
                   still: Still | Picture | None = None) -> Snapshot:
        """Capture the camera's newest frame (or take ``still``: the camera's newest
        still, decoded, or the frozen picture as it is), draw ``shapes`` (checked) on
        it, store it, audited as ``actor``'s. ``wanted``: whether the requester is still
        there; work that queued behind others and finds it gone at its turn is dropped
        (``Gone``)."""
        if self._capturer is None or camera.participant_id is None:
            raise Unavailable("Snapshots are taken by the server that carries the call.")
        # In the database, not this process's memory: an erase asked of another
        # process must wait for it too.
        mark = await self._store.snapshots.begin(job_id)
        try:
            captured: Any
            if still is None:
                captured = await self._capturer.capture(camera.participant_id)
                shapes = await self._capturer.placed(camera.participant_id, shapes,
                                                     captured.timestamp)
            elif isinstance(still, Picture):
                captured = _Captured(still.image, still.captured_at)
            else:
                image = await asyncio.get_running_loop().run_in_executor(
                    None, render.decode_jpeg, still.jpeg)
                captured = _Captured(image, still.captured_at)
            key = await self._vault.key_for_new(job_id)
            queued = self._work.locked()
            async with self._work:
                _check_wanted(queued, wanted, job_id)
                rendered = await asyncio.get_running_loop().run_in_executor(
                    None, self._render_new, key, job_id, captured.image, shapes)
            snapshot = await self._store.snapshots.add(
                job_id, call_id, rendered.frame, captured.captured_at, rendered.image, author,
                camera, shapes)
        finally:
            await self._store.snapshots.done(mark)
        logger.info("[job %d] snapshot %d of participant %s's camera, %dx%d, %d bytes",
                    job_id, snapshot.id, camera.participant_id, snapshot.width, snapshot.height,
                    snapshot.byte_size)
        await self._saved(snapshot)
        await self._store.audit.record(actor, "snapshot.created", f"snapshot:{snapshot.id}",
                                       job=job_id, call=call_id, camera=camera.participant_id)
        return snapshot

    async def annotate(self, snapshot_id: int, author: Author, shapes: list[dict[str, Any]],
                       caption: str | None, actor: Actor, wanted: Wanted = _always
                       ) -> Snapshot:
        """A new version of a snapshot: ``shapes`` drawn on its clean frame (``wanted``
        as for ``take``), audited as ``actor``'s."""
        caption = check_caption(caption)
        original = await self._store.snapshots.get(snapshot_id)
        key = await self._vault.key(original.job_id)
        sealed = await self._store.snapshots.sealed_frame(original.frame_id)
        queued = self._work.locked()
        async with self._work:
            _check_wanted(queued, wanted, original.job_id)
            image = await asyncio.get_running_loop().run_in_executor(
                None, self._render_again, key, original.job_id, sealed, shapes)
        snapshot = await self._store.snapshots.add_version(original, image, author, shapes,
                                                           caption)
        await self._saved(snapshot)
        await self._store.audit.record(actor, "snapshot.annotated", f"snapshot:{snapshot.id}",
                                       job=snapshot.job_id)
        return snapshot

    async def caption(self, snapshot_id: int, caption: object, actor: Actor) -> Snapshot:
        """Set (or clear, None) a snapshot's caption, audited."""
        snapshot = await self._store.snapshots.set_caption(snapshot_id, check_caption(caption))
        await self._store.audit.record(actor, "snapshot.captioned", f"snapshot:{snapshot.id}",
                                       job=snapshot.job_id)
        return snapshot

    async def view(self, snapshot_id: int, actor: Actor) -> tuple[Snapshot, bytes]:
        """A snapshot and its JPEG for someone to look at (``image``), audited."""
        snapshot, jpeg = await self.image(snapshot_id)
        await self._store.audit.record(actor, "snapshot.viewed", f"snapshot:{snapshot.id}",
                                       job=snapshot.job_id)
        return snapshot, jpeg

    async def image(self, snapshot_id: int) -> tuple[Snapshot, bytes]:
        """A snapshot and its JPEG, decrypted."""
        snapshot = await self._store.snapshots.get(snapshot_id)
        key = await self._vault.key(snapshot.job_id)
        sealed = await self._store.snapshots.sealed_image(snapshot_id)
        jpeg, digest = await asyncio.get_running_loop().run_in_executor(
            None, self._open, key, snapshot.job_id, sealed)
        if digest != snapshot.sha256:
            logger.error("[job %d] snapshot %d does not match its SHA-256", snapshot.job_id,
                         snapshot.id)
            raise Unavailable("This image does not match its record; tell an admin.")
        return snapshot, jpeg

    async def _saved(self, snapshot: Snapshot) -> None:
        if self._emit is None:
            return
        try:
            await self._emit_saved(snapshot, self._emit)
        except Exception:  # the snapshot is stored; its webhook must not undo that
            logger.exception("[job %d] snapshot %d: queueing the webhook failed",
                             snapshot.job_id, snapshot.id)

    async def _emit_saved(self, snapshot: Snapshot, emit: Emit) -> None:
        job = await self._store.jobs.get(snapshot.job_id)
        public = snapshot.public()
        await emit("snapshot.saved", {
            "job": {"id": job.id, "external_ref": job.external_ref},
            "snapshot": {k: public[k] for k in (
                "id", "version", "original_id", "call_id", "captured_at", "width", "height",
                "sha256")},
        })

    # -- worker threads ---------------------------------------------------------

    def _render_new(self, key: bytes, job_id: int, frame: np.ndarray,
                    shapes: list[dict[str, Any]]) -> _Rendered:
        clean = render.encode_jpeg(frame, self._quality)
        annotated = (render.encode_jpeg(render.draw(frame, shapes, self._fonts), self._quality)
                     if shapes else clean)
        return _Rendered(self._seal(key, job_id, clean, frame),
                         self._seal(key, job_id, annotated, frame))

    def _render_again(self, key: bytes, job_id: int, sealed_frame: bytes,
                      shapes: list[dict[str, Any]]) -> NewImage:
        frame = render.decode_jpeg(self._vault.open_image(key, job_id, sealed_frame))
        annotated = render.encode_jpeg(render.draw(frame, shapes, self._fonts), self._quality)
        return self._seal(key, job_id, annotated, frame)

    def _open(self, key: bytes, job_id: int, sealed: bytes) -> tuple[bytes, str]:
        jpeg = self._vault.open_image(key, job_id, sealed)
        return jpeg, hashlib.sha256(jpeg).hexdigest()

    def _seal(self, key: bytes, job_id: int, jpeg: bytes, frame: np.ndarray) -> NewImage:
        height, width = frame.shape[:2]
        return NewImage(self._vault.seal_image(key, job_id, jpeg),
                        hashlib.sha256(jpeg).hexdigest(), len(jpeg), width, height)


def check_caption(caption: object) -> str | None:
    if caption is None:
        return None
    if not isinstance(caption, str):
        raise BadRequest("'caption' must be a string or null.")
    caption = caption.strip()
    if len(caption) > MAX_CAPTION_CHARS:
        raise BadRequest(f"'caption' must be at most {MAX_CAPTION_CHARS} characters.")
    return caption or None
