"""Calls: who is in one now (for admins), and what the expert recorded at its end."""

from __future__ import annotations

from aiohttp import web

from videoassist.actors import Actor
from videoassist.api.body import int_param, read_json
from videoassist.api.guard import staff_user
from videoassist.appkeys import STORE
from videoassist.errors import BadRequest, Forbidden

routes = web.RouteTableDef()


@routes.get("/api/calls/live")
async def live_calls(request: web.Request) -> web.Response:
    """The calls in progress on the server, whichever of its processes holds each, and
    everyone connected to them, with whether their media connection is up: read from
    the database, which every process writes."""
    await staff_user(request, "admin")
    return web.json_response({"calls": [
        {"call_id": call.id,
         "job": {"id": call.job_id, "title": call.job_title},
         "participants": [p.participant.public() | {"user_id": p.participant.user_id,
                                                    "media": p.media_connected}
                          for p in call.participants]}
        for call in await request.app[STORE].calls.live()]})


@routes.post("/api/calls/{id}/outcome")
async def record_outcome(request: web.Request) -> web.Response:
    """{"first_time_fix": true|false}: was the problem fixed on this visit? Recorded by
    an expert who was in the call, or any admin; a later answer replaces an earlier
    one."""
    user = await staff_user(request, "expert", "admin")
    call_id = int_param(request.match_info["id"], "call id")
    body = await read_json(request)
    fixed = body.get("first_time_fix")
    if not isinstance(fixed, bool):
        raise BadRequest("first_time_fix must be true or false.")
    store = request.app[STORE]
    # Membership first: an expert learns nothing of calls they were not in.
    if user.role != "admin" and not await store.calls.was_in(call_id, user.id):
        raise Forbidden("Only someone who was in the call records its outcome.")
    call = await store.calls.get(call_id)
    await store.calls.set_outcome(call_id, fixed, user.id)
    await store.audit.record(Actor.user(user.id), "call.outcome", f"job:{call.job_id}",
                             call=call_id, first_time_fix=fixed)
    return web.json_response({"call_id": call_id, "job_id": call.job_id,
                              "first_time_fix": fixed})
