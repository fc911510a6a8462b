"""TURN REST credentials for coturn's ``use-auth-secret`` mode.

The server and coturn share a secret; for each participant the server hands out a
short-lived username ``EXPIRY:ID`` (EXPIRY in Unix seconds) and the password
``base64(HMAC-SHA1(secret, username))``. coturn recomputes the password from the
username and refuses it once EXPIRY has passed, so nothing is stored anywhere.
See turn/README.md for the coturn side.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Sequence
from typing import TypedDict

MAX_TTL_S = 600


class IceServer(TypedDict):
    """One entry of ``RTCConfiguration.iceServers`` (W3C RTCIceServer)."""

    urls: list[str]
    username: str
    credential: str


def turn_credentials(
    secret: str, urls: Sequence[str], ttl_s: int, user_id: str, now: float
) -> IceServer:
    """An RTCIceServer for ``user_id`` valid for ``ttl_s`` seconds after ``now``."""
    if not 0 < ttl_s <= MAX_TTL_S:
        raise ValueError(f"TURN credential lifetime must be 1..{MAX_TTL_S} s, got {ttl_s}")
    if isinstance(urls, str):
        raise TypeError("urls is a sequence of URLs, not one string")
    if not secret:
        raise ValueError("the TURN secret is empty")
    if not user_id:
        raise ValueError("a TURN user id must not be empty")
    username = f"{int(now) + ttl_s}:{user_id}"
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return {
        "urls": list(urls),
        "username": username,
        "credential": base64.b64encode(digest).decode("ascii"),
    }
