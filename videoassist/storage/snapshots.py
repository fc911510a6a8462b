"""Snapshots, the frames they were taken from, and each job's wrapped data key.

This module stores sealed bytes and never sees an image in the clear: sealing
and unsealing are the vault's (``videoassist.snapshots.vault``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

from videoassist.errors import NotFound
from videoassist.storage.db import Database, Row
from videoassist.storage.errors import ForeignKeyViolation
from videoassist.storage.records import Author, Snapshot

# A snapshot in progress longer than this is one whose process died meanwhile: it no
# longer holds up erasing its job (a capture and its rendering take well under a second).
IN_PROGRESS_MAX_S = 60.0

_COLUMNS = (
    "id, job_id, call_id, frame_id, original_id, version, author_participant, author_user,"
    " author_name, author_role, camera_participant, camera_name, camera_role,"
    " (SELECT captured_at FROM frames f WHERE f.id = frame_id), created_at, width, height,"
    " shapes, caption, sha256, byte_size"
)


def _snapshot(row: Row) -> Snapshot:
    (id_, job_id, call_id, frame_id, original_id, version, a_part, a_user, a_name, a_role,
     c_part, c_name, c_role, captured_at, created_at, width, height, shapes, caption, sha256,
     byte_size) = row
    return Snapshot(
        id_, job_id, call_id, frame_id, original_id, version,
        Author(a_name, a_role, a_part, a_user), Author(c_name, c_role, c_part),
        captured_at, created_at, width, height, json.loads(shapes), caption, sha256, byte_size,
    )


@dataclass(frozen=True)
class WrappedKey:
    kek_id: str
    wrapped: bytes


@dataclass(frozen=True)
class NewImage:
    """An image about to be stored: sealed bytes and what is known of the clear JPEG."""

    sealed: bytes
    sha256: str
    byte_size: int
    width: int
    height: int


class Snapshots:
    def __init__(self, db: Database, clock: Callable[[], float]) -> None:
        self._db = db
        self._clock = clock

    # -- job keys --------------------------------------------------------------

    async def job_key(self, job_id: int) -> WrappedKey | None:
        row = await self._db.fetchone(
            "SELECT kek_id, wrapped_key FROM job_keys WHERE job_id = ?", (job_id,))
        return None if row is None else WrappedKey(row[0], bytes(row[1]))

    async def add_job_key(self, job_id: int, key: WrappedKey) -> WrappedKey:
        """Store a job's wrapped key unless it has one; return the one that is stored."""
        try:
            await self._db.execute(
                "INSERT INTO job_keys (job_id, kek_id, wrapped_key, created_at)"
                " VALUES (?, ?, ?, ?) ON CONFLICT (job_id) DO NOTHING",
                (job_id, key.kek_id, key.wrapped, self._clock()),
            )
        except ForeignKeyViolation:  # the job is gone
            raise NotFound("No such job.") from None
        stored = await self.job_key(job_id)
        assert stored is not None
        return stored

    async def kek_ids(self) -> set[str]:
        """The key-encryption keys that wrapped the stored job keys."""
        rows = await self._db.fetchall("SELECT DISTINCT kek_id FROM job_keys")
        return {r[0] for r in rows}

    # -- snapshots in progress, in any process ----------------------------------

    async def begin(self, job_id: int) -> int:
        """Mark a snapshot of the job as being made, until ``done``; NotFound if the job
        is gone (erased). Erasing the job waits for it (``Jobs.erase``)."""
        try:
            return await self._db.insert(
                "INSERT INTO snapshots_in_progress (job_id, started_at) VALUES (?, ?)"
                " RETURNING id", (job_id, self._clock()))
        except ForeignKeyViolation:  # the job is gone
            raise NotFound("No such job.") from None

    async def done(self, mark: int) -> None:
        await self._db.execute("DELETE FROM snapshots_in_progress WHERE id = ?", (mark,))

    async def in_progress(self, job_id: int) -> bool:
        """Whether a snapshot of the job is being made, by any process."""
        row = await self._db.fetchone(
            "SELECT 1 FROM snapshots_in_progress WHERE job_id = ? AND started_at > ? LIMIT 1",
            (job_id, self._clock() - IN_PROGRESS_MAX_S))
        return row is not None

    # -- snapshots -------------------------------------------------------------

    async def add(
        self,
        job_id: int,
        call_id: int | None,
        frame: NewImage,
        captured_at: float,
        image: NewImage,
        author: Author,
        camera: Author,
        shapes: list[dict[str, object]],
    ) -> Snapshot:
        """Store a new capture: its clean frame and the first annotated version."""
        now = self._clock()
        try:
            return await self._add(job_id, call_id, frame, captured_at, image, author, camera,
                                   shapes, now)
        except ForeignKeyViolation:  # the job was erased meanwhile
            raise NotFound("No such job.") from None

    async def _add(
        self, job_id: int, call_id: int | None, frame: NewImage, captured_at: float,
        image: NewImage, author: Author, camera: Author, shapes: list[dict[str, object]],
        now: float,
    ) -> Snapshot:
        async with self._db.transaction() as tx:
            # The id first: its lock before the job's row is shared (Jobs.delete takes
            # them in that order too).
            snapshot_id = await tx.next_id("snapshots")
            frame_id = await tx.insert(
                "INSERT INTO frames (job_id, width, height, captured_at, sealed)"
                " VALUES (?, ?, ?, ?, ?) RETURNING id",
                (job_id, frame.width, frame.height, captured_at, frame.sealed),
            )
            await tx.execute(
                "INSERT INTO snapshots (id, job_id, call_id, frame_id, original_id, version,"
                " author_participant, author_user, author_name, author_role,"
                " camera_participant, camera_name, camera_role, created_at, width, height,"
                " shapes, sha256, byte_size, sealed)"
                " VALUES (?, ?, ?, ?, NULL, 1, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (snapshot_id, job_id, call_id, frame_id,
                 author.participant_id, author.user_id, author.name, author.role,
                 camera.participant_id, camera.name, camera.role, now, image.width, image.height,
                 _json(shapes), image.sha256, image.byte_size, image.sealed),
            )
            await tx.execute(
                "INSERT INTO events (job_id, call_id, type, data, created_at) VALUES"
                " (?, ?, 'snapshot.saved', ?, ?)",
                (job_id, call_id, _json({"snapshot": snapshot_id, "version": 1}), now),
            )
        return await self.get(snapshot_id)

    async def add_version(
        self, original: Snapshot, image: NewImage, author: Author,
        shapes: list[dict[str, object]], caption: str | None,
    ) -> Snapshot:
        """Store another annotation of the same frame as the next version."""
        root = original.original_id or original.id
        now = self._clock()
        async with self._db.transaction() as tx:
            # The id's lock first: no other version is numbered until this one is in.
            snapshot_id = await tx.next_id("snapshots")
            row = await tx.fetchone(
                "SELECT max(version) FROM snapshots WHERE id = ? OR original_id = ?",
                (root, root))
            if row is None or row[0] is None:
                raise NotFound("No such snapshot.")
            version = int(row[0]) + 1
            await tx.execute(
                "INSERT INTO snapshots (id, job_id, call_id, frame_id, original_id, version,"
                " author_participant, author_user, author_name, author_role,"
                " camera_participant, camera_name, camera_role, created_at, width, height,"
                " shapes, caption, sha256, byte_size, sealed)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (snapshot_id, original.job_id, original.call_id,
                 original.frame_id, root, version,
                 author.participant_id, author.user_id, author.name, author.role,
                 original.camera.participant_id, original.camera.name, original.camera.role,
                 now, image.width, image.height, _json(shapes), caption, image.sha256,
                 image.byte_size, image.sealed),
            )
            await tx.execute(
                "INSERT INTO events (job_id, call_id, type, data, created_at) VALUES"
                " (?, ?, 'snapshot.annotated', ?, ?)",
                (original.job_id, original.call_id,
                 _json({"snapshot": snapshot_id, "original": root, "version": version}), now),
            )
        return await self.get(snapshot_id)

    async def get(self, snapshot_id: int) -> Snapshot:
        row = await self._db.fetchone(
            f"SELECT {_COLUMNS} FROM snapshots WHERE id = ?", (snapshot_id,))
        if row is None:
            raise NotFound("No such snapshot.")
        return _snapshot(row)

    async def of_job(self, job_id: int) -> list[Snapshot]:
        rows = await self._db.fetchall(
            f"SELECT {_COLUMNS} FROM snapshots WHERE job_id = ?"
            " ORDER BY coalesce(original_id, id), version",
            (job_id,),
        )
        return [_snapshot(r) for r in rows]

    async def set_caption(self, snapshot_id: int, caption: str | None) -> Snapshot:
        count = await self._db.execute(
            "UPDATE snapshots SET caption = ? WHERE id = ?", (caption, snapshot_id))
        if not count:
            raise NotFound("No such snapshot.")
        return await self.get(snapshot_id)

    async def sealed_image(self, snapshot_id: int) -> bytes:
        row = await self._db.fetchone("SELECT sealed FROM snapshots WHERE id = ?", (snapshot_id,))
        if row is None:
            raise NotFound("No such snapshot.")
        return bytes(row[0])

    async def sealed_frame(self, frame_id: int) -> bytes:
        row = await self._db.fetchone("SELECT sealed FROM frames WHERE id = ?", (frame_id,))
        if row is None:
            raise NotFound("The snapshot's frame is gone.")
        return bytes(row[0])


def _json(value: object) -> str:
    return json.dumps(value, separators=(",", ":"))
