"""Attacks on session tokens, through the real server: every forgery gets 401."""

from __future__ import annotations

import base64
import json
import secrets
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.support.server import Server
from videoassist import keyfiles
from videoassist.auth.tokens import PARTICIPANT_AUDIENCE, STAFF_AUDIENCE


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _claims(server: Server, user_id: int, **changes: Any) -> dict[str, Any]:
    now = int(server.clock())
    claims: dict[str, Any] = {
        "iss": server.settings.public_url, "aud": STAFF_AUDIENCE, "sub": f"user:{user_id}",
        "iat": now, "exp": now + 600, "jti": secrets.token_urlsafe(8), "role": "admin",
    }
    for key, value in changes.items():
        if value is None:
            claims.pop(key, None)
        else:
            claims[key] = value
    return claims


def _sign(server: Server, claims: dict[str, Any], kid: str | None = None,
          key: bytes | None = None) -> str:
    real = keyfiles.signing_keys(server.settings)[0]
    return jwt.encode(claims, key or real.secret, algorithm="HS256",
                      headers={"kid": kid or real.kid})


async def _status(server: Server, token: str) -> int:
    status, body, _ = await server.request("GET", "/api/session", token=token)
    if status == 401:
        assert body["error"]["code"] == "unauthorized"
    return status


async def test_a_genuine_token_is_accepted(server: Server) -> None:
    """The control: the forging helpers make a token the server accepts."""
    user = await server.add_user("admin")
    assert await _status(server, _sign(server, _claims(server, user.id))) == 200


def _forgeries(server: Server, user_id: int) -> dict[str, str]:
    real = keyfiles.signing_keys(server.settings)[0]
    good = _claims(server, user_id)
    header_none = _b64(json.dumps({"alg": "none", "typ": "JWT", "kid": real.kid}).encode())
    alg_none = f"{header_none}.{_b64(json.dumps(good).encode())}."

    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    rs256 = jwt.encode(good, private, algorithm="RS256", headers={"kid": real.kid})
    public_pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    # HS/RS confusion: HMAC "signed" with a public key, as if the server verified with one.
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": real.kid}).encode())
    import hashlib
    import hmac
    body = f"{header}.{_b64(json.dumps(good).encode())}"
    hs_with_public = body + "." + _b64(hmac.new(public_pem, body.encode(), hashlib.sha256).digest())

    signed = _sign(server, good)
    head, _payload, signature = signed.split(".")
    tampered_payload = _b64(json.dumps(good | {"sub": f"user:{user_id + 1}"}).encode())
    now = int(server.clock())
    return {
        "alg none": alg_none,
        "wrong key": _sign(server, good, key=secrets.token_bytes(48)),
        "RS256 with the kid of an HMAC key": rs256,
        "HS256 keyed with an RSA public key": hs_with_public,
        "no exp": _sign(server, _claims(server, user_id, exp=None)),
        "no iat": _sign(server, _claims(server, user_id, iat=None)),
        "no jti": _sign(server, _claims(server, user_id, jti=None)),
        "no sub": _sign(server, _claims(server, user_id, sub=None)),
        "no aud": _sign(server, _claims(server, user_id, aud=None)),
        "no iss": _sign(server, _claims(server, user_id, iss=None)),
        "expired beyond the leeway": _sign(server, _claims(server, user_id, iat=now - 3600,
                                                           exp=now - 31)),
        "issued in the future": _sign(server, _claims(server, user_id, iat=now + 3600,
                                                      exp=now + 7200)),
        "wrong audience": _sign(server, _claims(server, user_id, aud="someone-else")),
        "participant audience on a staff route": _sign(
            server, _claims(server, user_id, aud=PARTICIPANT_AUDIENCE)),
        "wrong issuer": _sign(server, _claims(server, user_id, iss="https://evil.example")),
        "unknown kid": _sign(server, good, kid="nosuchkid"),
        "no kid": jwt.encode(good, real.secret, algorithm="HS256"),
        "tampered payload": f"{head}.{tampered_payload}.{signature}",
        "garbage": "not.a.token",
        "empty segments": "..",
        "oversized": "a" * 5000,
    }


async def test_every_forgery_is_refused(server: Server) -> None:
    user = await server.add_user("admin")
    await server.add_user("expert")  # user_id + 1 exists, so tampering has a target
    results = {name: await _status(server, token)
               for name, token in _forgeries(server, user.id).items()}
    assert results == dict.fromkeys(results, 401)


async def test_an_expired_session_is_refused_by_the_injected_clock(server: Server) -> None:
    user = await server.add_user("expert")
    token = await server.sign_in(user.username)
    assert await _status(server, token) == 200
    server.clock.advance(server.settings.session_ttl_s + server.settings.token_leeway_s + 1)
    assert await _status(server, token) == 401


async def test_a_participant_token_is_not_a_staff_session(server: Server) -> None:
    _, staff_token = await server.staff("expert")
    job_id = await server.job(staff_token)
    participant = await server.participant(staff_token, job_id)
    assert await _status(server, participant) == 401
    status, _, _ = await server.request("GET", "/api/jobs", token=participant)
    assert status == 401


async def test_a_disabled_user_is_refused_at_once(server: Server) -> None:
    _admin, admin_token = await server.staff("admin")
    user, token = await server.staff("expert")
    assert await _status(server, token) == 200
    status, body, _ = await server.request("POST", f"/api/users/{user.id}/disable",
                                           token=admin_token)
    assert status == 200, body
    assert await _status(server, token) == 401


@pytest.mark.parametrize("header", ["Bearer", "Basic abc", "bearer  ", "Token x"])
async def test_malformed_authorization_headers(server: Server, header: str) -> None:
    status, body, _ = await server.request("GET", "/api/jobs",
                                           headers={"Authorization": header})
    assert status == 401
    assert body["error"]["code"] == "unauthorized"
