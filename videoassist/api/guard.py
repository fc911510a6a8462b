"""Who is asking: the staff user behind a Bearer token, checked on every request."""

from __future__ import annotations

from aiohttp import web

from videoassist.appkeys import SETTINGS, STORE, TOKENS
from videoassist.errors import Forbidden, NotFound, Unauthorized
from videoassist.storage.records import User


async def staff_user(request: web.Request, *roles: str) -> User:
    """The active user a valid staff token names; 401 otherwise, 403 for a wrong role."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("Sign in first (Authorization: Bearer TOKEN).")
    claims = request.app[TOKENS].verify_staff(token.strip())
    try:
        user = await request.app[STORE].users.get(claims.user_id)
    except NotFound:
        raise Unauthorized() from None
    if not user.active:
        raise Unauthorized("This account is disabled.")
    if roles and user.role not in roles:
        raise Forbidden()
    return user


def client_address(request: web.Request) -> str:
    """The client's address, from X-Forwarded-For only when configured to trust it."""
    if request.app[SETTINGS].trust_forwarded_for:
        forwarded = request.headers.get("X-Forwarded-For", "")
        first = forwarded.split(",")[0].strip()
        if first:
            return first[:64]
    return request.remote or "unknown"
