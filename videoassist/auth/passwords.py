"""Password hashing with scrypt and a per-user salt.

Hashing costs ~16 MiB and tens of milliseconds on purpose: call it through
``asyncio.to_thread`` from the event loop.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

from videoassist.errors import BadRequest

# RFC 7914 parameters: N=2^14, r=8, p=1 needs 16 MiB, the interactive-login cost.
_N, _R, _P, _DKLEN = 2**14, 8, 1, 32
MIN_LENGTH = 10
MAX_LENGTH = 1024


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def check_policy(password: str) -> None:
    if len(password) < MIN_LENGTH:
        raise BadRequest(f"The password must be at least {MIN_LENGTH} characters long.")
    if len(password) > MAX_LENGTH:
        raise BadRequest(f"The password must be at most {MAX_LENGTH} characters long.")


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=_N, r=_R, p=_P, dklen=_DKLEN)
    return f"scrypt${_N}${_R}${_P}${_b64(salt)}${_b64(digest)}"


# Verifying against this keeps the time of a sign-in for an unknown user the same: an
# encoded hash of the same parameters, salt and length as ``hash_password`` makes (of a
# random password nobody kept), so the same scrypt runs. Made once and written here,
# not at import: every CLI command imports this module, and a hash costs tens of
# milliseconds. tests/auth/test_passwords.py checks it matches ``hash_password``'s.
_DUMMY = "scrypt$16384$8$1$diFvgIGpf8iYkVUYMygh5Q$UwLICGZe7wI9tfDGmIAclBaiQqV5yCJoNrYLFnMBZKU"


def verify_password(password: str, encoded: str | None) -> bool:
    """Constant-time check; ``encoded`` None (no such user, no password) is always False."""
    target = encoded or _DUMMY
    try:
        scheme, n, r, p, salt, digest = target.split("$")
        if scheme != "scrypt":
            return False
        expected = _unb64(digest)
        actual = hashlib.scrypt(
            password.encode(), salt=_unb64(salt), n=int(n), r=int(r), p=int(p),
            dklen=len(expected), maxmem=64 * 1024 * 1024,
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected) and encoded is not None
