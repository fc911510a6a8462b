"""API keys for integrations: create, revoke, and what a request with one may do.
Used by the HTTP API (``api/apikeys.py``; ``api/guard.py`` asks ``live_key`` and
``authorize`` on each request) and the CLI.

A key is shown once, when it is made; the server keeps its hash (``auth/apikeys.py``),
a four-character hint, a name and its scopes (``storage/apikeys.py``). Every use of a
key is audited; a refusal anyone can cause (an unknown or revoked key) is counted per
client rather than written a row each (``videoassist.domain.refusals``).
"""

from __future__ import annotations

import logging
from typing import Any, NoReturn

from videoassist.actors import Actor
from videoassist.auth.apikeys import SCOPES, hash_api_key, hint, new_api_key
from videoassist.domain.refusals import Refusals
from videoassist.errors import BadRequest, Forbidden, Unauthorized
from videoassist.storage import Store
from videoassist.storage.records import ApiKey

logger = logging.getLogger(__name__)

MAX_NAME_CHARS = 100


def check_name(name: object) -> str:
    if not isinstance(name, str) or not name.strip():
        raise BadRequest("name is required.")
    name = name.strip()
    if len(name) > MAX_NAME_CHARS:
        raise BadRequest(f"name must be at most {MAX_NAME_CHARS} characters.")
    return name


def check_scopes(scopes: object) -> tuple[str, ...]:
    if (not isinstance(scopes, list | tuple) or not scopes
            or not all(isinstance(s, str) and s in SCOPES for s in scopes)):
        raise BadRequest(f"scopes must be a non-empty list of {', '.join(SCOPES)}.")
    return tuple(s for s in SCOPES if s in scopes)


async def create(store: Store, name: object, scopes: object, actor: Actor
                 ) -> tuple[ApiKey, str]:
    """A new key and its secret value, which is not kept and cannot be shown again."""
    name = check_name(name)
    checked = check_scopes(scopes)
    key = new_api_key()
    key_hash = hash_api_key(key)
    assert key_hash is not None
    record = await store.api_keys.create(key_hash, name, hint(key), checked, actor.user_id)
    await store.audit.record(actor, "apikey.created", f"apikey:{record.id}", name=name,
                             scopes=list(checked))
    logger.info("API key %d (%r) created by %s", record.id, name, actor)
    return record, key


async def revoke(store: Store, key_id: int, actor: Actor) -> ApiKey:
    """Revoke a key at once; revoking a revoked key changes nothing."""
    record, revoked = await store.api_keys.revoke(key_id)
    if revoked:
        await store.audit.record(actor, "apikey.revoked", f"apikey:{record.id}")
        logger.info("API key %d revoked by %s", record.id, actor)
    return record


async def live_key(store: Store, refusals: Refusals, token: str, client: str,
                   method: str, path: str) -> ApiKey:
    """The live key ``token`` is; Unauthorized for a malformed, unknown or revoked one,
    counted against ``client`` (an address)."""
    key_hash = hash_api_key(token)
    key = await store.api_keys.find(key_hash) if key_hash is not None else None
    who = f"client:{client}"
    if key is None:
        await refusals.record(who, "apikey.refused", None, reason="unknown",
                              method=method, path=path)
        raise Unauthorized("This API key is not valid.")
    if not key.active:
        await refusals.record(who, "apikey.refused", f"apikey:{key.id}",
                              reason="revoked", method=method, path=path)
        raise Unauthorized("This API key has been revoked.")
    return key


async def authorize(store: Store, key: ApiKey, scope: str, **request: Any) -> None:
    """Let ``key`` do what ``scope`` allows, or Forbidden; either is audited with the
    ``request`` (method, path, client), and a use stamps the key's ``last_used_at``."""
    actor = Actor.api_key(key.id)
    if scope not in key.scopes:
        await store.audit.record(actor, "apikey.refused", str(actor), reason="scope",
                                 scope=scope, **request)
        raise Forbidden(f"This API key does not have the {scope} scope.")
    await store.api_keys.touch(key.id)
    await store.audit.record(actor, "apikey.used", str(actor), scope=scope, **request)


async def refuse_staff_route(store: Store, key: ApiKey, **request: Any) -> NoReturn:
    """A live key on a route for staff only: audited, then Forbidden."""
    await store.audit.record(Actor.api_key(key.id), "apikey.refused", f"apikey:{key.id}",
                             reason="staff_only", **request)
    raise Forbidden("API keys cannot use this route: it needs a staff session.")
