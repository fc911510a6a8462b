"""Jobs and their record. Open to staff and to integrations' API keys (scopes
``jobs:create``, ``jobs:read``)."""

from __future__ import annotations

from aiohttp import web

from videoassist.actors import Actor
from videoassist.api.body import int_param, read_json, text_field
from videoassist.api.guard import staff_or_api_key, staff_user
from videoassist.appkeys import CLOCK, HUB, SNAPSHOTS, STORE, WEBHOOKS
from videoassist.domain import jobrecord, jobs
from videoassist.errors import BadRequest
from videoassist.storage.records import JOB_STATUSES, MAX_NOTE_CHARS, storable

MAX_QUERY_CHARS = 100

routes = web.RouteTableDef()


@routes.post("/api/jobs")
async def create_job(request: web.Request) -> web.Response:
    caller = await staff_or_api_key(request, "jobs:create")
    body = await read_json(request)
    title = text_field(body, "title", max_len=jobs.MAX_TITLE_CHARS)
    external_ref = text_field(body, "external_ref", max_len=jobs.MAX_EXTERNAL_REF_CHARS,
                              required=False)
    assert title is not None
    job = await jobs.create(request.app[STORE], request.app[WEBHOOKS].emit, title,
                            external_ref, caller.actor)
    return web.json_response(job.public(), status=201)


@routes.get("/api/jobs")
async def list_jobs(request: web.Request) -> web.Response:
    await staff_or_api_key(request, "jobs:read")
    status = request.query.get("status")
    if status is not None and status not in JOB_STATUSES:
        raise BadRequest(f"status must be one of {', '.join(JOB_STATUSES)}.")
    limit = int_param(request.query.get("limit", "100"), "limit")
    offset = int_param(request.query.get("offset", "0"), "offset")
    if not 1 <= limit <= 500:
        raise BadRequest("limit must be between 1 and 500.")
    q = request.query.get("q", "")
    if len(q) > MAX_QUERY_CHARS:
        raise BadRequest(f"q must be at most {MAX_QUERY_CHARS} characters.")
    if not storable(q):
        raise BadRequest("q must not hold a NUL character.")
    store = request.app[STORE]
    found = await store.jobs.list(status, limit, offset, q or None)
    # Read from the database, which every process writes: the console polls this to say
    # "Customer is waiting" whichever process holds the call.
    waiting = await store.calls.waiting(j.id for j in found)
    return web.json_response({"jobs": [j.public() | {"waiting_since": waiting.get(j.id)}
                                       for j in found]})


@routes.get("/api/jobs/{id}")
async def get_job(request: web.Request) -> web.Response:
    await staff_or_api_key(request, "jobs:read")
    job_id = int_param(request.match_info["id"], "job id")
    return web.json_response(await jobrecord.record(request.app[STORE], job_id))


@routes.patch("/api/jobs/{id}")
async def update_job(request: web.Request) -> web.Response:
    """Admins set a job's own retention (``null``: the server's default)."""
    user = await staff_user(request, "admin")
    job_id = int_param(request.match_info["id"], "job id")
    body = await read_json(request)
    if set(body) != {"retention_days"}:
        raise BadRequest("Send {\"retention_days\": DAYS or null}.")
    job = await jobs.set_retention(request.app[STORE], job_id, body["retention_days"],
                                   Actor.user(user.id))
    return web.json_response(job.public())


@routes.post("/api/jobs/{id}/close")
async def close_job(request: web.Request) -> web.Response:
    """Close a job: its links stop working and its live call, if any, ends."""
    user = await staff_user(request)
    job_id = int_param(request.match_info["id"], "job id")
    job = await jobs.close(request.app[STORE], request.app[WEBHOOKS].emit, request.app[HUB],
                           job_id, Actor.user(user.id))
    return web.json_response(job.public())


@routes.delete("/api/jobs/{id}")
async def delete_job(request: web.Request) -> web.Response:
    """Erase a job: every row of its record, and its data key, so that any copy of its
    snapshots' ciphertext (in a backup, say) can no longer be decrypted. Admins only."""
    user = await staff_user(request, "admin")
    job_id = int_param(request.match_info["id"], "job id")
    await jobs.erase(request.app[STORE], job_id, Actor.user(user.id))
    return web.Response(status=204)


@routes.post("/api/jobs/{id}/notes")
async def add_note(request: web.Request) -> web.Response:
    user = await staff_user(request)
    job_id = int_param(request.match_info["id"], "job id")
    body = await read_json(request)
    text = text_field(body, "text", max_len=MAX_NOTE_CHARS)
    assert text is not None
    store = request.app[STORE]
    await store.jobs.get(job_id)
    note = await store.jobs.add_note(job_id, user.id, user.name, text)
    return web.json_response(note.public(), status=201)


@routes.get("/api/jobs/{id}/export")
async def export_job(request: web.Request) -> web.Response:
    """The job's record and snapshot images as a ZIP, for the company's archive."""
    user = await staff_user(request)
    job_id = int_param(request.match_info["id"], "job id")
    store = request.app[STORE]
    data = await jobrecord.export_zip(store, request.app[SNAPSHOTS], job_id, request.app[CLOCK],
                                      Actor.user(user.id))
    return web.Response(body=data, content_type="application/zip", headers={
        "Content-Disposition": f'attachment; filename="job-{job_id}.zip"',
        "Cache-Control": "no-store",
    })
