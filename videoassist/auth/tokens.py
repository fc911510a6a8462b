"""Signed tokens: staff sessions and call participants.

JWT, HS256 only, with a ``kid`` header naming one of the live keys so a key can be
rotated with no one signed out: the first key signs, every key verifies. Required
claims: exp, iat, aud, iss, jti, sub. The audience tells the two kinds apart, so a
participant token is never accepted as a staff session or the other way round.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from videoassist.errors import Unauthorized

# PyJWT, and the cryptography package it loads, are imported where a token is made or
# read: the CLI, which imports this module for its records only, starts without them.

ALGORITHM = "HS256"
STAFF_AUDIENCE = "videoassist:staff"
PARTICIPANT_AUDIENCE = "videoassist:participant"
MIN_KEY_BYTES = 32
MAX_TOKEN_CHARS = 4096
_REQUIRED = ["exp", "iat", "aud", "iss", "jti", "sub"]


@dataclass(frozen=True)
class SigningKey:
    kid: str
    secret: bytes

    def __post_init__(self) -> None:
        if len(self.secret) < MIN_KEY_BYTES:
            raise ValueError(f"signing key {self.kid!r} is shorter than {MIN_KEY_BYTES} bytes")
        if not self.kid or len(self.kid) > 64:
            raise ValueError("a key id must be 1 to 64 characters")

    def __repr__(self) -> str:
        return f"SigningKey(kid={self.kid!r}, secret=<hidden>)"


@dataclass(frozen=True)
class StaffClaims:
    user_id: int
    role: str
    jti: str
    expires_at: float
    session_version: int = 0  # the user's session version when the token was issued


@dataclass(frozen=True)
class ParticipantClaims:
    invite_id: int
    job_id: int
    role: str
    jti: str
    expires_at: float


class TokenService:
    def __init__(
        self,
        keys: Sequence[SigningKey],
        issuer: str,
        leeway_s: int,
        clock: Callable[[], float],
    ) -> None:
        if not keys:
            raise ValueError("at least one signing key is needed")
        if len({k.kid for k in keys}) != len(keys):
            raise ValueError("key ids must be unique")
        if not 0 <= leeway_s <= 30:
            raise ValueError("leeway must be 0..30 s")
        self._keys = {k.kid: k for k in keys}
        self._signing = keys[0]
        self._issuer = issuer
        self._leeway = leeway_s
        self._clock = clock
        import jwt  # lazily: see the module's imports

        self._jwt = jwt.PyJWT(options={"enforce_minimum_key_length": True})

    # -- issuing ---------------------------------------------------------------

    def issue_staff(
        self, user_id: int, role: str, ttl_s: float, session_version: int = 0
    ) -> tuple[str, float]:
        return self._issue(STAFF_AUDIENCE, f"user:{user_id}",
                           {"role": role, "sv": session_version}, ttl_s)

    def issue_participant(
        self, invite_id: int, job_id: int, role: str, ttl_s: float
    ) -> tuple[str, float]:
        return self._issue(
            PARTICIPANT_AUDIENCE, f"invite:{invite_id}", {"job": job_id, "role": role}, ttl_s
        )

    def _issue(
        self, audience: str, subject: str, extra: dict[str, Any], ttl_s: float
    ) -> tuple[str, float]:
        now = int(self._clock())
        expires_at = now + int(ttl_s)
        claims = {
            "iss": self._issuer,
            "aud": audience,
            "sub": subject,
            "iat": now,
            "exp": expires_at,
            "jti": secrets.token_urlsafe(12),
            **extra,
        }
        token = self._jwt.encode(
            claims, self._signing.secret, algorithm=ALGORITHM, headers={"kid": self._signing.kid}
        )
        return token, float(expires_at)

    # -- verifying -------------------------------------------------------------

    def verify_staff(self, token: str) -> StaffClaims:
        claims = self._decode(token, STAFF_AUDIENCE)
        user_id = _subject_id(claims, "user")
        role = claims.get("role")
        version = claims.get("sv", 0)
        if not isinstance(role, str) or not isinstance(version, int) or isinstance(version, bool):
            raise Unauthorized()
        return StaffClaims(user_id, role, str(claims["jti"]), float(claims["exp"]), version)

    def verify_participant(self, token: str) -> ParticipantClaims:
        claims = self._decode(token, PARTICIPANT_AUDIENCE)
        invite_id = _subject_id(claims, "invite")
        job_id, role = claims.get("job"), claims.get("role")
        if not isinstance(job_id, int) or isinstance(job_id, bool) or not isinstance(role, str):
            raise Unauthorized()
        return ParticipantClaims(invite_id, job_id, role, str(claims["jti"]),
                                 float(claims["exp"]))

    def audience_of(self, token: str) -> str | None:
        """The unverified audience, to route a token to the right verify_*; never trust it."""
        import jwt  # lazily: see the module's imports

        try:
            aud = jwt.decode(token, options={"verify_signature": False}).get("aud")
        except jwt.PyJWTError:
            return None
        return aud if isinstance(aud, str) else None

    def _decode(self, token: str, audience: str) -> dict[str, Any]:
        if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_CHARS:
            raise Unauthorized()
        import jwt  # lazily: see the module's imports

        try:
            header = jwt.get_unverified_header(token)
            if header.get("alg") != ALGORITHM:
                raise Unauthorized()
            key = self._keys.get(header.get("kid"))  # type: ignore[arg-type]
            if key is None:
                raise Unauthorized()
            claims: dict[str, Any] = self._jwt.decode(
                token,
                key.secret,
                algorithms=[ALGORITHM],
                audience=audience,
                issuer=self._issuer,
                # Times are checked below against the injected clock, not the wall clock.
                options={"require": _REQUIRED, "verify_exp": False, "verify_iat": False,
                         "verify_nbf": False},
            )
        except (jwt.PyJWTError, TypeError, ValueError):
            raise Unauthorized() from None
        self._check_times(claims)
        return claims

    def _check_times(self, claims: dict[str, Any]) -> None:
        now = self._clock()
        for name in ("exp", "iat", "nbf"):
            value = claims.get(name)
            if name == "nbf" and value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise Unauthorized()
        if now >= claims["exp"] + self._leeway:
            raise Unauthorized("The session has expired; sign in again.")
        if claims["iat"] > now + self._leeway or claims.get("nbf", now) > now + self._leeway:
            raise Unauthorized()


def _subject_id(claims: dict[str, Any], kind: str) -> int:
    prefix, _, number = str(claims.get("sub", "")).partition(":")
    if prefix != kind or not number.isdigit():
        raise Unauthorized()
    return int(number)
