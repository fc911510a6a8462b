"""Who is asking: the staff user behind a session token, or an integration behind an
API key, checked on every request.

Both come as ``Authorization: Bearer ...``; an API key starts with ``vak_``, so the
two are told apart without trying both. Staff routes refuse API keys (403); the few
routes open to integrations (``staff_or_api_key``) take either.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from videoassist import accounts
from videoassist.actors import Actor
from videoassist.appkeys import REFUSALS, SETTINGS, STORE, TOKENS
from videoassist.auth.apikeys import PREFIX, hash_api_key, looks_like_api_key
from videoassist.errors import Forbidden, Unauthorized
from videoassist.refusals import cut
from videoassist.storage.records import ApiKey, User


@dataclass(frozen=True)
class Caller:
    """A staff user or an API key: exactly one is set."""

    user: User | None = None
    api_key: ApiKey | None = None

    @property
    def actor(self) -> Actor:
        """Who the caller is, as the audit log names them."""
        if self.user is not None:
            return Actor.user(self.user.id)
        assert self.api_key is not None
        return Actor.api_key(self.api_key.id)

    @property
    def user_id(self) -> int | None:
        return self.user.id if self.user is not None else None


def _bearer(request: web.Request) -> str:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        if PREFIX in header or "X-Api-Key" in request.headers:
            raise Unauthorized("Send the API key as Authorization: Bearer KEY.")
        raise Unauthorized("Sign in first (Authorization: Bearer TOKEN).")
    return token.strip()


async def staff_user(request: web.Request, *roles: str) -> User:
    """The active user a valid staff token names; 401 otherwise, 403 for a wrong role
    or an API key."""
    token = _bearer(request)
    if looks_like_api_key(token):
        key = await _api_key(request, token)
        await request.app[STORE].audit.record(
            Actor.api_key(key.id), "apikey.refused", f"apikey:{key.id}", reason="staff_only",
            method=request.method, path=cut(request.path), client=client_address(request))
        raise Forbidden("API keys cannot use this route: it needs a staff session.")
    return await _staff(request, token, roles)


async def staff_or_api_key(request: web.Request, scope: str) -> Caller:
    """Any active staff user, or a live API key that has ``scope``; every use of a key
    is audited and stamps its ``last_used_at``."""
    token = _bearer(request)
    if not looks_like_api_key(token):
        return Caller(user=await _staff(request, token, ()))
    key = await _api_key(request, token)
    store = request.app[STORE]
    actor = Actor.api_key(key.id)
    detail = {"method": request.method, "path": cut(request.path), "scope": scope,
              "client": client_address(request)}
    if scope not in key.scopes:
        await store.audit.record(actor, "apikey.refused", str(actor), reason="scope", **detail)
        raise Forbidden(f"This API key does not have the {scope} scope.")
    await store.api_keys.touch(key.id)
    await store.audit.record(actor, "apikey.used", str(actor), **detail)
    return Caller(api_key=key)


async def _staff(request: web.Request, token: str, roles: tuple[str, ...]) -> User:
    claims = request.app[TOKENS].verify_staff(token)
    user = await accounts.staff_user_for(request.app[STORE], claims)
    if roles and user.role not in roles:
        raise Forbidden()
    return user


async def _api_key(request: web.Request, token: str) -> ApiKey:
    """The live key; 401 for a malformed, unknown or revoked one (audited)."""
    store = request.app[STORE]
    key_hash = hash_api_key(token)
    key = await store.api_keys.find(key_hash) if key_hash is not None else None
    client = f"client:{client_address(request)}"
    # Anyone can send these: counted per client and window, not a row each.
    refusals = request.app[REFUSALS]
    if key is None:
        await refusals.record(client, "apikey.refused", None, reason="unknown",
                              method=request.method, path=request.path)
        raise Unauthorized("This API key is not valid.")
    if not key.active:
        await refusals.record(client, "apikey.refused", f"apikey:{key.id}",
                              reason="revoked", method=request.method, path=request.path)
        raise Unauthorized("This API key has been revoked.")
    return key


def client_address(request: web.Request) -> str:
    """The client's address, from X-Forwarded-For only when configured to trust it."""
    if request.app[SETTINGS].trust_forwarded_for:
        forwarded = request.headers.get("X-Forwarded-For", "")
        first = forwarded.split(",")[0].strip()
        if first:
            return first[:64]
    return request.remote or "unknown"
