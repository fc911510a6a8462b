"""API keys for integrations: create, revoke. Used by the HTTP API and the CLI.

A key is shown once, when it is made; the server keeps its hash, a four-character
hint, a name and its scopes. Checking a key on a request is the guard's
(``videoassist.api.guard``).
"""

from __future__ import annotations

import logging

from videoassist.actors import Actor
from videoassist.auth.apikeys import SCOPES, hash_api_key, hint, new_api_key
from videoassist.errors import BadRequest
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
