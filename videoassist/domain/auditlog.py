"""The audit log as the company reads it out: an export of its rows (``GET /api/audit``
as JSON lines, ``videoassist audit export``), which is itself audited, with the filters
it was given, whichever door it went through."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from videoassist.actors import Actor
from videoassist.storage import Store
from videoassist.storage.audit import AuditFilter
from videoassist.storage.records import AuditEntry


async def export(store: Store, actor: Actor, where: AuditFilter,
                 filters: dict[str, Any]) -> AsyncIterator[AuditEntry]:
    """Every row ``where`` matches, oldest first, to read once ``audit.exported`` is
    recorded, which it is before this returns (``filters``: as the caller was given
    them)."""
    await store.audit.record(actor, "audit.exported", None, filters=filters)
    return store.audit.stream(where)
