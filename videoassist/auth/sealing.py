"""Sealing data at rest: AES-256-GCM, with associated data that names where the
sealed bytes belong, so that a blob moved to another row does not open.

A sealed blob is ``version (1 byte) || nonce (12 bytes) || ciphertext and tag``.
``derive_key`` gives a key of its own to each use of one master key (HKDF-SHA256,
``info`` naming the use): the snapshot key-encryption key also seals what the notify
webhook is to send (``videoassist.notify``), under a key no snapshot is sealed with.
"""

from __future__ import annotations

import secrets

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

FORMAT = b"\x01"
NONCE_BYTES = 12
KEY_BYTES = 32


def seal(key: bytes, data: bytes, context: bytes) -> bytes:
    nonce = secrets.token_bytes(NONCE_BYTES)
    return FORMAT + nonce + AESGCM(key).encrypt(nonce, data, context)


def unseal(key: bytes, sealed: bytes, context: bytes) -> bytes:
    """The data ``seal`` sealed under ``key`` and ``context``; ValueError for a blob of
    no known format, ``cryptography.exceptions.InvalidTag`` for one that does not open
    (another key, another context, altered)."""
    if sealed[:1] != FORMAT or len(sealed) < 1 + NONCE_BYTES + 16:
        raise ValueError("not a sealed blob of a known format")
    nonce, body = sealed[1:1 + NONCE_BYTES], sealed[1 + NONCE_BYTES:]
    return AESGCM(key).decrypt(nonce, body, context)


def derive_key(master: bytes, info: bytes) -> bytes:
    """A 32-byte key for the use ``info`` names, from ``master`` (HKDF-SHA256, no salt:
    the master key is random already)."""
    return HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=None,
                info=info).derive(master)
