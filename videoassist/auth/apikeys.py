"""API keys: ``vak_`` and 256 random bits, kept by the server only as a SHA-256 hash.

The prefix tells a key from a staff session token (a JWT) at a glance, for the server
and for secret scanners, without trying both. As with one-time links, a plain hash
is enough: the key is random and long, so the hash cannot be searched back to it.
"""

from __future__ import annotations

import hashlib
import re
import secrets

PREFIX = "vak_"
SCOPES: tuple[str, ...] = ("jobs:create", "jobs:read", "analytics:read")

# secrets.token_urlsafe(32) gives 43 characters of the URL-safe base64 alphabet.
_KEY = re.compile(r"^vak_[A-Za-z0-9_-]{43}$")


def new_api_key() -> str:
    return PREFIX + secrets.token_urlsafe(32)


def looks_like_api_key(token: str) -> bool:
    """Whether a bearer token is meant as an API key (well formed or not)."""
    return token.startswith(PREFIX)


def hash_api_key(key: str) -> bytes | None:
    """The stored form of a key, or None if it is not even shaped like one."""
    if not isinstance(key, str) or not _KEY.match(key):
        return None
    return hashlib.sha256(key.encode("ascii")).digest()


def hint(key: str) -> str:
    """The part of a key shown in lists: its last four characters."""
    return key[-4:]
