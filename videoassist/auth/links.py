"""One-time link tokens: 256 random bits, kept by the server only as a SHA-256 hash.

A hash without salt or stretching is enough here: the token is random and long, so
the hash cannot be searched back to it.
"""

from __future__ import annotations

import hashlib
import re
import secrets

# secrets.token_urlsafe(32) gives 43 characters of the URL-safe base64 alphabet.
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{43}$")


def new_link_token() -> str:
    return secrets.token_urlsafe(32)


def hash_link_token(token: str) -> bytes | None:
    """The stored form of a token, or None if it is not even shaped like one."""
    if not isinstance(token, str) or not _TOKEN.match(token):
        return None
    return hashlib.sha256(token.encode("ascii")).digest()
