"""Snapshots at rest: AES-256-GCM under a data key per job, itself wrapped by the
key-encryption key (KEK), which lives outside the database (a 0600 file in the data
dir or an environment variable; see ``keyfiles.snapshot_key``).

Blobs are sealed as ``auth.sealing`` seals them; the associated data names the job,
so a blob moved to another job's row does not open. Erasing a job deletes its wrapped
key: what is left of its ciphertext, in a backup or anywhere else, can no longer be
decrypted, even with the KEK.
"""

from __future__ import annotations

import hashlib
import logging

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from videoassist.auth.sealing import seal, unseal
from videoassist.errors import ConfigError, NotFound, Unavailable
from videoassist.storage.snapshots import Snapshots, WrappedKey

logger = logging.getLogger(__name__)

def kek_id(kek: bytes) -> str:
    """A short public name of a KEK, stored beside what it wrapped."""
    return hashlib.sha256(b"videoassist kek id\x00" + kek).hexdigest()[:16]


def image_context(job_id: int) -> bytes:
    return f"videoassist image job {job_id}".encode()


def _key_context(job_id: int) -> bytes:
    return f"videoassist data key job {job_id}".encode()


class Vault:
    """Hands out each job's data key: unwrapped from the database, or made on first use."""

    def __init__(self, kek: bytes, snapshots: Snapshots) -> None:
        if len(kek) != 32:
            raise ValueError("the key-encryption key must be 32 bytes")
        self._kek = kek
        self._kek_id = kek_id(kek)
        self._snapshots = snapshots

    async def check(self) -> None:
        """At start: refuse a KEK that wrapped none of the stored job keys (a database
        restored without its key, a key file lost and generated afresh)."""
        stored = await self._snapshots.kek_ids()
        if stored and self._kek_id not in stored:
            raise ConfigError(
                f"the snapshot key-encryption key (id {self._kek_id}) wrapped none of the "
                f"stored job keys (wrapped by {', '.join(sorted(stored))}): restore the "
                "DATA_DIR/snapshot-key or VIDEOASSIST_SNAPSHOT_KEY that goes with this "
                "database")

    async def key_for_new(self, job_id: int) -> bytes:
        """The job's data key, made and stored if the job has none yet."""
        stored = await self._snapshots.job_key(job_id)
        if stored is None:
            key = AESGCM.generate_key(bit_length=256)
            wrapped = WrappedKey(self._kek_id, seal(self._kek, key, _key_context(job_id)))
            stored = await self._snapshots.add_job_key(job_id, wrapped)
        return self._unwrap(job_id, stored)

    async def key(self, job_id: int) -> bytes:
        """The job's existing data key; NotFound once the job was erased."""
        stored = await self._snapshots.job_key(job_id)
        if stored is None:
            raise NotFound("This job's images were erased.")
        return self._unwrap(job_id, stored)

    def _unwrap(self, job_id: int, stored: WrappedKey) -> bytes:
        if stored.kek_id != self._kek_id:
            logger.error("[job %d] its data key was wrapped by key-encryption key %s, "
                         "but the server has %s: restore VIDEOASSIST_SNAPSHOT_KEY or "
                         "DATA_DIR/snapshot-key", job_id, stored.kek_id, self._kek_id)
            raise Unavailable("The snapshot key of this server does not match; tell an admin.")
        try:
            return unseal(self._kek, stored.wrapped, _key_context(job_id))
        except (InvalidTag, ValueError):
            logger.error("[job %d] its data key does not unwrap", job_id)
            raise Unavailable("This job's images cannot be decrypted; tell an admin.") from None

    @staticmethod
    def open_image(key: bytes, job_id: int, sealed: bytes) -> bytes:
        try:
            return unseal(key, sealed, image_context(job_id))
        except (InvalidTag, ValueError):
            logger.error("[job %d] a stored image does not decrypt", job_id)
            raise Unavailable("This image cannot be decrypted; tell an admin.") from None

    @staticmethod
    def seal_image(key: bytes, job_id: int, data: bytes) -> bytes:
        return seal(key, data, image_context(job_id))
