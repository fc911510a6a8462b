"""Who is asking: the staff user behind a session token, or an integration behind an
API key, checked on every request.

Both come as ``Authorization: Bearer ...``; an API key starts with ``vak_``, so the
two are told apart without trying both. Staff routes refuse API keys (403); the few
routes open to integrations (``staff_or_api_key``) take either.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from videoassist.actors import Actor
from videoassist.appkeys import REFUSALS, SETTINGS, STORE, TOKENS
from videoassist.auth.apikeys import PREFIX, looks_like_api_key
from videoassist.domain import accounts, apikeys
from videoassist.domain.refusals import cut
from videoassist.errors import Forbidden, Unauthorized
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
        await apikeys.refuse_staff_route(request.app[STORE], key, method=request.method,
                                         path=cut(request.path),
                                         client=client_address(request))
    return await _staff(request, token, roles)


async def staff_or_api_key(request: web.Request, scope: str) -> Caller:
    """Any active staff user, or a live API key that has ``scope`` (``apikeys``: every
    use of a key is audited and stamps its ``last_used_at``)."""
    token = _bearer(request)
    if not looks_like_api_key(token):
        return Caller(user=await _staff(request, token, ()))
    key = await _api_key(request, token)
    await apikeys.authorize(request.app[STORE], key, scope, method=request.method,
                            path=cut(request.path), client=client_address(request))
    return Caller(api_key=key)


async def _staff(request: web.Request, token: str, roles: tuple[str, ...]) -> User:
    claims = request.app[TOKENS].verify_staff(token)
    user = await accounts.staff_user_for(request.app[STORE], claims)
    if roles and user.role not in roles:
        raise Forbidden()
    return user


async def _api_key(request: web.Request, token: str) -> ApiKey:
    """The live key; 401 for a malformed, unknown or revoked one (counted per client)."""
    return await apikeys.live_key(request.app[STORE], request.app[REFUSALS], token,
                                  client_address(request), request.method, request.path)


def client_address(request: web.Request) -> str:
    """The client's address, from X-Forwarded-For only when configured to trust it."""
    if request.app[SETTINGS].trust_forwarded_for:
        forwarded = request.headers.get("X-Forwarded-For", "")
        first = forwarded.split(",")[0].strip()
        if first:
            return first[:64]
    return request.remote or "unknown"
