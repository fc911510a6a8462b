"""The signature on a webhook delivery: HMAC-SHA256 of the exact body bytes.

Receivers recompute it and compare in constant time (docs/api.md shows how)."""

from __future__ import annotations

import hashlib
import hmac

SIGNATURE_HEADER = "X-Videoassist-Signature"
EVENT_HEADER = "X-Videoassist-Event"
DELIVERY_HEADER = "X-Videoassist-Delivery"
ATTEMPT_HEADER = "X-Videoassist-Attempt"


def sign(secret: bytes, body: bytes) -> str:
    """The signature header's value: ``sha256=`` and the hex HMAC of the body."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()
