"""Jobs and their record. Open to staff and to integrations' API keys (scopes
``jobs:create``, ``jobs:read``)."""

from __future__ import annotations

from aiohttp import web

from videoassist.api.body import int_param, read_json, text_field
from videoassist.api.guard import staff_or_api_key
from videoassist.appkeys import STORE, WEBHOOKS
from videoassist.errors import BadRequest
from videoassist.storage.records import JOB_STATUSES

routes = web.RouteTableDef()


@routes.post("/api/jobs")
async def create_job(request: web.Request) -> web.Response:
    caller = await staff_or_api_key(request, "jobs:create")
    body = await read_json(request)
    title = text_field(body, "title", max_len=200)
    external_ref = text_field(body, "external_ref", max_len=100, required=False)
    assert title is not None
    store = request.app[STORE]
    job = await store.jobs.create(title, external_ref, caller.user_id)
    await store.audit.record(caller.actor, "job.created", f"job:{job.id}")
    await request.app[WEBHOOKS].emit("job.created", {"job": job.public()})
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
    jobs = await request.app[STORE].jobs.list(status, limit, offset)
    return web.json_response({"jobs": [j.public() for j in jobs]})


@routes.get("/api/jobs/{id}")
async def get_job(request: web.Request) -> web.Response:
    await staff_or_api_key(request, "jobs:read")
    job_id = int_param(request.match_info["id"], "job id")
    store = request.app[STORE]
    job = await store.jobs.get(job_id)
    record = job.public()
    record["calls"] = await store.calls.calls_of_job(job_id)
    record["participants"] = [p.public() for p in await store.calls.participants_of_job(job_id)]
    record["events"] = await store.jobs.events(job_id)
    record["messages"] = [m.public() for m in await store.calls.messages_of_job(job_id)]
    return web.json_response(record)
