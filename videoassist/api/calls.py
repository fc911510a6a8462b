"""Calls: who is in one now (for admins), and what the expert recorded at its end."""

from __future__ import annotations

from aiohttp import web

from videoassist.api.body import int_param, read_json
from videoassist.api.guard import staff_user
from videoassist.appkeys import STORE
from videoassist.domain import jobrecord

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
    call = await jobrecord.record_outcome(request.app[STORE], call_id,
                                          body.get("first_time_fix"), user)
    return web.json_response({"call_id": call_id, "job_id": call.job_id,
                              "first_time_fix": body["first_time_fix"]})
