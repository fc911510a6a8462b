"""The audit log, for admins: a page at a time newest first, or every matching row as
JSON lines, oldest first, for export."""

from __future__ import annotations

import contextlib
import math

from aiohttp import web
from multidict import MultiMapping

from videoassist.actors import Actor
from videoassist.api.body import int_param
from videoassist.api.guard import staff_user
from videoassist.appkeys import STORE
from videoassist.domain import auditlog
from videoassist.errors import BadRequest, NotFound
from videoassist.storage import Store
from videoassist.storage.audit import AuditFilter
from videoassist.storage.chain import canonical
from videoassist.storage.records import AuditEntry, storable

MAX_LIMIT = 1000
MAX_TEXT_CHARS = 200
CHUNK_BYTES = 64 * 1024
FILTERS = ("actor", "action", "target", "since", "until")
PAGING = ("before", "limit")

routes = web.RouteTableDef()


def _seconds(query: MultiMapping[str], name: str) -> float | None:
    raw = query.get(name)
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0 or len(raw) > 30:
        raise BadRequest(f"{name} must be a time in Unix seconds, like 1767258000.")
    return value


def _text(query: MultiMapping[str], name: str) -> str | None:
    value = query.get(name)
    if value is not None and not 1 <= len(value) <= MAX_TEXT_CHARS:
        raise BadRequest(f"{name} must be 1 to {MAX_TEXT_CHARS} characters.")
    if value is not None and not storable(value):
        raise BadRequest(f"{name} must not hold a NUL character.")
    return value


def audit_filter(query: MultiMapping[str]) -> AuditFilter:
    """The filters of a query string, checked."""
    since, until = _seconds(query, "since"), _seconds(query, "until")
    if since is not None and until is not None and until <= since:
        raise BadRequest("until must be later than since.")
    return AuditFilter(_text(query, "actor"), _text(query, "action"), _text(query, "target"),
                       since, until)


@routes.get("/api/audit")
async def list_audit(request: web.Request) -> web.StreamResponse:
    """Newest first, ``limit`` at a time, ``before`` an id to page back; or, with
    ``format=jsonl``, every matching row oldest first as JSON lines (audited)."""
    admin = await staff_user(request, "admin")
    query = request.query
    fmt = query.get("format", "json")
    if fmt not in ("json", "jsonl"):
        raise BadRequest("format must be json or jsonl.")
    known = {*FILTERS, *PAGING, "format"} if fmt == "json" else {*FILTERS, "format"}
    for name in query:
        if name not in known:
            if fmt == "jsonl" and name in PAGING:
                raise BadRequest(f"{name} does not apply to format=jsonl, which returns "
                                 "every matching row.")
            raise BadRequest(f"Unknown parameter {name!r}; use {', '.join(sorted(known))}.")
        if len(query.getall(name)) > 1:
            raise BadRequest(f"Give {name} once.")
    where = audit_filter(query)
    store = request.app[STORE]
    if fmt == "jsonl":
        rows = await auditlog.export(store, Actor.user(admin.id), where,
                                     {k: query[k] for k in FILTERS if k in query})
        response = web.StreamResponse(headers={
            "Content-Type": "application/x-ndjson",
            "Content-Disposition": 'attachment; filename="audit.jsonl"',
        })
        await response.prepare(request)
        chunk = bytearray()
        async for entry in rows:
            chunk += canonical(entry.public()) + b"\n"
            if len(chunk) >= CHUNK_BYTES:
                await response.write(bytes(chunk))
                chunk.clear()
        await response.write(bytes(chunk))
        await response.write_eof()
        return response
    before = int_param(query["before"], "before") if "before" in query else None
    limit = int_param(query.get("limit", "100"), "limit")
    if not 1 <= limit <= MAX_LIMIT:
        raise BadRequest(f"limit must be between 1 and {MAX_LIMIT}.")
    entries = await store.audit.page(where, before, limit + 1)
    more = len(entries) > limit
    entries = entries[:limit]
    return web.json_response({
        "entries": [e.public() for e in entries],
        "next_before": entries[-1].id if more else None,
        "names": await names(store, entries),
    })


async def names(store: Store, entries: list[AuditEntry]) -> dict[str, str]:
    """What the page's actors and targets are called today, for people to read:
    ``user:3`` a username, ``apikey:2`` a key's name, ``job:12`` a job's title. One
    that is gone (an erased job) is left out; the rows keep the ids either way."""
    refs = {ref for e in entries for ref in (e.actor, e.target) if ref}
    known: dict[str, str] = {}
    if any(ref.startswith("apikey:") for ref in refs):  # a handful, read at once
        known |= {f"apikey:{k.id}": k.name for k in await store.api_keys.list()}
    # Users and jobs one by one: a page names a few of the many there are.
    for ref in sorted(refs):
        kind, _, number = ref.partition(":")
        if kind in ("user", "job") and number.isdigit():
            with contextlib.suppress(NotFound):  # an erased job
                known[ref] = ((await store.users.get(int(number))).username if kind == "user"
                              else (await store.jobs.get(int(number))).title)
    return {ref: name for ref, name in known.items() if ref in refs}
